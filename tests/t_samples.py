"""Runs every sample under `forkscope run` and checks the report against
what the sample says about itself in its "@ " lines (samples/sample.h):
the process tree, exit codes, signals and core flags, who reaped whom,
zombie time, orphans, exec chains, malloc totals; and that its output and
exit status are those of an untraced run."""
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check, note, num  # noqa: E402

SAMPLES = ["fork_twice", "cow_variable", "exit_vs_exit", "exit_codes", "zombie", "orphan",
           "malloc_threshold", "demand_paging", "stack_growth", "prefork"]
# Samples whose processes print concurrently: compare their lines as a multiset.
UNORDERED = {"prefork"}


def same_output(name, plain, traced):
    a, b = fsk.normalize(plain.out), fsk.normalize(traced.out)
    if name in UNORDERED:
        a, b = sorted(a.splitlines()), sorted(b.splitlines())
    if a != b:
        la, lb = (a if isinstance(a, list) else a.splitlines()), (b if isinstance(b, list) else b.splitlines())
        diff = [(x, y) for x, y in zip(la + [""] * len(lb), lb + [""] * len(la)) if x != y][:2]
        why = "untraced vs traced differ, first: %r" % diff
    else:
        why = ""
    check("%s.stdout-same-as-untraced" % name, a == b, why)
    check("%s.rc-same-as-untraced" % name, plain.rc == traced.rc,
          "untraced rc=%s traced rc=%s" % (plain.rc, traced.rc))


def cow_available(doc):
    return any(p.get("regions") for p in fsk.processes(doc))


def specific(name, out, doc, procs, traced):
    """What only this sample can tell."""
    ps = fsk.processes(doc)
    root = fsk.roots(doc)
    runner = fsk.runner_pid(doc)
    if name == "fork_twice":
        check(name + ".two-processes", len(ps) == 2, "report has %d processes" % len(ps))
        fk = {kv["side"]: kv for kv in fsk.at_dicts(out, "fork")}
        child = procs.get(num(fk.get("parent", {}).get("returned_pid", "-1")))
        check(name + ".child-is-fork-result", child is not None and child.get("ppid") == root[0]["pid"]
              if root else False, "fork returned %s; report %s" % (fk.get("parent"), [(p["pid"], p["ppid"]) for p in ps]))
    elif name == "cow_variable":
        v = {kv["who"]: kv for kv in fsk.at_dicts(out, "var")}
        check(name + ".same-address", v["child"]["addr"] == v["parent"]["addr"], str(v))
        check(name + ".values", v["child"]["value"] == "800" and v["parent"]["value"] == "1000", str(v))
        if cow_available(doc):
            child = procs.get(num(v["child"]["pid"]))
            r = fsk.region_of(child, num(v["child"]["addr"])) if child else None
            check(name + ".child-data-region", r is not None and r.get("kind") == "data",
                  "region holding g_val: %r" % r)
            if r:
                check(name + ".child-unshared", r.get("unshared_pages", 0) >= 1,
                      "child's data region unshared_pages=%r" % r.get("unshared_pages"))
        else:
            note("%s: report has no regions yet; COW checks not run" % name)
    elif name == "exit_vs_exit":
        check(name + ".exit-flushed", "flushed by exit()" in traced.out, "missing the exit() sentence")
        check(name + ".exit-lost", "is lost" not in traced.out, "the _exit() sentence appeared")
    elif name == "exit_codes":
        ret7 = [kv for kv in fsk.at_dicts(out, "expect") if kv.get("case") == "ret7"]
        p = procs.get(num(ret7[0]["pid"])) if ret7 else None
        if p and len(p.get("images") or []) == 2:
            check(name + ".ret7.second-image-argv", "ret7" in (p["images"][1].get("argv") or []),
                  "second image argv %r" % p["images"][1].get("argv"))
            check(name + ".ret7.image-times", p["images"][1].get("t_ns", 0) >= p["images"][0].get("t_ns", 0),
                  "image times %r" % [i.get("t_ns") for i in p["images"]])
        check(name + ".process-count", len(ps) == 10, "report has %d processes, expected 10: %r"
              % (len(ps), [(p["pid"], p.get("ppid"), p.get("argv"), fsk.exit_str(p)) for p in ps]))
    elif name == "zombie":
        z = fsk.at_dicts(out, "zombie")[0]
        check(name + ".was-zombie", z["state_before"] == "Z" and z["state_after_sleep"] == "Z", str(z))
    elif name == "orphan":
        o = fsk.at_dicts(out, "orphan")[0]
        child = procs.get(num(o["pid"]))
        parent = procs.get(num(o["old_ppid"]))
        if runner is not None:
            check(name + ".adopted-by-runner", num(o["new_ppid"]) == runner,
                  "new ppid %s, runner %s" % (o["new_ppid"], runner))
        if child:
            check(name + ".reaped-by-adopter", child.get("reaped_by") == num(o["new_ppid"]),
                  "child reaped_by=%r, adopter %s" % (child.get("reaped_by"), o["new_ppid"]))
        if parent and child:
            pe, ce = parent.get("end_ns"), child.get("end_ns")
            check(name + ".parent-ended-first", isinstance(pe, int) and isinstance(ce, int) and pe < ce,
                  "parent end_ns %r, child end_ns %r" % (pe, ce))
    elif name == "malloc_threshold":
        plan = fsk.at_dicts(out, "plan")[0]
        blocks = fsk.at_dicts(out, "block")
        small, big = num(plan["small_size"]), num(plan["big_size"])
        check(name + ".small-on-heap", all(b["where"] == "heap" for b in blocks if num(b["size"]) == small),
              "under forkscope some small block is not in [heap]")
        check(name + ".big-mmapped", all(b["where"] == "mmap" for b in blocks if num(b["size"]) == big),
              "under forkscope some big block is in [heap]")
        p = root[0] if root else {}
        m = p.get("malloc") or {}
        n = num(plan["small_n"]) + num(plan["big_n"])
        total = num(plan["small_n"]) * small + num(plan["big_n"]) * big
        check(name + ".malloc-calls", m.get("calls", 0) >= n, "calls=%r, the sample made %d" % (m.get("calls"), n))
        check(name + ".malloc-bytes", m.get("bytes", 0) >= total, "bytes=%r, expected >= %d" % (m.get("bytes"), total))
        check(name + ".live-at-exit", m.get("live_at_exit_bytes", 0) >= total and m.get("live_at_exit_blocks", 0) >= n,
              "live_at_exit %r bytes / %r blocks, the sample keeps %d bytes in %d blocks"
              % (m.get("live_at_exit_bytes"), m.get("live_at_exit_blocks"), total, n))
        check(name + ".peak", m.get("peak_live_bytes", 0) >= total, "peak_live_bytes=%r" % m.get("peak_live_bytes"))
        if cow_available(doc):
            for b in blocks:
                r = fsk.region_of(p, num(b["addr"]))
                want = "heap" if b["where"] == "heap" else "anon"
                if not check(name + ".region-%s-%s" % (b["size"], b["addr"][-5:]), r is not None and r.get("kind") == want,
                             "block at %s: region %r, expected kind %s" % (b["addr"], r, want)):
                    break
    elif name == "demand_paging":
        steps = fsk.at_dicts(out, "step")
        rss = [num(s["rss_kib"]) for s in steps]
        check(name + ".rss-grows", all(b > a for a, b in zip(rss, rss[1:])), "rss per step %r" % rss)
        a = fsk.at_dicts(out, "alloc")[0]
        p = root[0] if root else {}
        m = p.get("malloc") or {}
        check(name + ".malloc-bytes", m.get("bytes", 0) >= num(a["size"]), "bytes=%r" % m.get("bytes"))
        if cow_available(doc):
            r = fsk.region_of(p, num(a["addr"]))
            pages = num(a["size"]) // num(a["page"])
            check(name + ".region", r is not None and r.get("kind") == "anon", "region %r" % r)
            if r:
                check(name + ".first-touch", r.get("first_touch_pages", 0) >= pages,
                      "first_touch_pages=%r, the sample touched %d" % (r.get("first_touch_pages"), pages))
                check(name + ".resident", r.get("resident_pages", 0) >= pages,
                      "resident_pages=%r, the sample touched %d" % (r.get("resident_pages"), pages))
    elif name == "stack_growth":
        kib = [num(d["stack_kib"]) for d in fsk.at_dicts(out, "depth")]
        check(name + ".stack-grows", len(kib) >= 4 and all(b > a for a, b in zip(kib, kib[1:])), "stack KiB %r" % kib)
        plan = fsk.at_dicts(out, "plan")[0]
        if cow_available(doc):
            p = root[0] if root else {}
            st = [r for r in p.get("regions") or [] if r.get("kind") == "stack"]
            size = int(st[0]["end"], 16) - int(st[0]["start"], 16) if st else 0
            want = num(plan["depth"]) * num(plan["frame"])
            check(name + ".stack-region", size >= want, "stack regions %r, expected >= %d bytes" % (st, want))
    elif name == "prefork":
        t = fsk.at_dicts(out, "table")[0]
        workers = fsk.at_dicts(out, "worker")
        check(name + ".process-count", len(ps) == 1 + num(t["workers"]),
              "report has %d processes, expected %d" % (len(ps), 1 + num(t["workers"])))
        if cow_available(doc):
            wrote = num(workers[0]["wrote_pages"]) if workers else 0
            for w in workers:
                p = procs.get(num(w["pid"]))
                r = fsk.region_of(p, num(t["addr"])) if p else None
                tag = "%s.worker%s" % (name, w["pid"])
                if check(tag + ".table-region", r is not None, "no region holds the table at %s" % t["addr"]):
                    # Each written page was copied; the rest are still shared
                    # with the parent (which waits). A few pages of slack for
                    # malloc's chunk header and the page rounding.
                    u = r.get("unshared_pages", 0)
                    check(tag + ".unshared", wrote <= u <= wrote + 4, "unshared_pages=%r, wrote %d" % (u, wrote))
                    s = r.get("shared_pages", 0)
                    check(tag + ".still-shared", s >= num(t["pages"]) - wrote - 4,
                          "shared_pages=%r, expected about %d" % (s, num(t["pages"]) - wrote))
        else:
            note("%s: report has no regions yet; COW checks not run" % name)


def main():
    paths = [fsk.sample(s) for s in SAMPLES]
    fsk.require(*paths)
    only = sys.argv[1:] or SAMPLES
    for name in only:
        path = fsk.sample(name)
        cwd = fsk.tmpdir()
        plain = fsk.run_plain([path], timeout=30, cwd=cwd)
        traced = fsk.run_traced([path], timeout=60, cwd=cwd)
        if not check(name + ".ran", not traced.timed_out and traced.rc is not None and traced.rc >= 0,
                     "forkscope run: " + traced.describe()):
            continue
        same_output(name, plain, traced)
        doc = traced.report()
        if not check(name + ".report", doc is not None, traced.report_error):
            continue
        fsk.check_unique_pids(name, doc)
        procs = fsk.by_pid(doc)
        fsk.check_proc_lines(name, traced.out, procs)
        fsk.check_expect_lines(name, traced.out, procs)
        try:
            specific(name, traced.out, doc, procs, traced)
        except (KeyError, IndexError, ValueError, TypeError) as e:
            check(name + ".sample-output", False, "could not read the sample's @ lines or the report: %r" % e)
    fsk.finish()


if __name__ == "__main__":
    main()
