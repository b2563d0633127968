#!/usr/bin/env python3
"""forkscope export: Chrome trace-event JSON, folded stacks and massif
files of real traces, checked against the report of the same trace, and
the COW sites of the prefork sample.

- chrome: valid JSON; every event has ph, name, pid, tid and a numeric ts
  (microseconds); one named track and one lifetime slice per process of the
  report; one fork instant and one flow (s -> f, same id) per child with a
  traced parent, from the parent's pid to the child's; one wait instant per
  reaped process on its reaper's track; the largest "heap" counter value of
  each process is its peak live heap; the last "pages" counter of each
  process is its last scan's resident and unshared pages.
- collapsed: "frame;frame N" lines; per process, bytes sum to the report's
  malloc bytes (plus reallocs), COW pages to its sampled COW faults, and
  malloc_count's own byte count is the difference of two runs' totals; the stacks program's
  known sites appear with their function names.
- massif: ms_print accepts the file, and its peak snapshot's total equals
  the report's peak live heap of that process.
- the report's process-tree section: subtree sums, orphans, untraced
  processes and cut streams against the JSON of the same trace.
- sites.cow of prefork: each worker's top COW site is worker() with as
  many pages as it wrote; the parent's cow_children sums them; no site is
  in forkscope's own code (its faults are counted apart: the children's
  cow_fault_samples_tracer sum to the parent's cow_children.tracer_pages).
(Perfetto's trace_processor is not installed offline, so the trace-event
structure is checked here instead.)
"""
import collections
import json
import os
import re
import shutil
import subprocess

import fsk
from fsk import check, note

KIND_SKIP = "forkscope"


def export(trace, *args):
    p = subprocess.run([fsk.fsk(), "export", trace] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=300)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def traced(tag, argv, **kw):
    r = fsk.run_traced(argv, timeout=120, **kw)
    if not check(tag + ".ran", r.rc == 0 or kw.get("any_rc"), r.describe()):
        return None, None
    doc = r.report()
    if not check(tag + ".report", doc is not None, r.report_error):
        return None, None
    return r, doc


def chrome(tag, r, doc):
    rc, out, err = export(r.trace, "--format", "chrome")
    if not check(tag + ".chrome.rc", rc == 0, err[-300:]):
        return
    try:
        d = json.loads(out)
    except ValueError as e:
        check(tag + ".chrome.json", False, e)
        return
    ev = d.get("traceEvents")
    check(tag + ".chrome.json", isinstance(ev, list) and ev, "no traceEvents")
    bad = [e for e in ev if not (isinstance(e.get("ph"), str) and isinstance(e.get("name"), str)
                                 and isinstance(e.get("pid"), int) and isinstance(e.get("tid"), int)
                                 and isinstance(e.get("ts"), (int, float)) and e["ts"] >= 0)]
    check(tag + ".chrome.fields", not bad, bad[:3])
    check(tag + ".chrome.phases", {e["ph"] for e in ev} <= set("MXiCsf"),
          {e["ph"] for e in ev})
    bad = [e for e in ev if e["ph"] == "X" and not (isinstance(e.get("dur"), (int, float))
                                                    and e["dur"] >= 0)]
    check(tag + ".chrome.durations", not bad, bad[:3])
    procs = fsk.processes(doc)
    pids = {p["pid"] for p in procs}
    named = {e["pid"] for e in ev if e["ph"] == "M" and e["name"] == "process_name"}
    named.discard(fsk.runner_pid(doc))
    check(tag + ".chrome.tracks", named == pids, "tracks %r, report %r" % (sorted(named), sorted(pids)))
    lives = collections.Counter(e["pid"] for e in ev if e["ph"] == "X" and e.get("cat") == "process"
                                and e["pid"] != fsk.runner_pid(doc))
    check(tag + ".chrome.lifetimes", lives == collections.Counter(pids), lives)
    # fork flows: one per child whose parent is traced, parent -> child
    kids = sorted((p["ppid"], p["pid"]) for p in procs if p.get("parent_traced"))
    s = {e["id"]: e for e in ev if e["ph"] == "s"}
    f = {e["id"]: e for e in ev if e["ph"] == "f"}
    flows = sorted((s[i]["pid"], f[i]["pid"]) for i in s if i in f)
    check(tag + ".chrome.flows", flows == kids and len(s) == len(f) == len(kids),
          "flows %r, tree %r" % (flows, kids))
    forks = sorted((e["pid"], e["args"]["child"]) for e in ev if e["ph"] == "i" and e["name"] == "fork")
    check(tag + ".chrome.fork-instants", forks == kids, "%r vs %r" % (forks, kids))
    waits = sorted((e["pid"], e["args"]["child"]) for e in ev if e["ph"] == "i" and e["name"] == "wait")
    reaped = sorted((p["reaped_by"], p["pid"]) for p in procs if p.get("reaped_by") is not None)
    check(tag + ".chrome.waits", waits == reaped, "%r vs %r" % (waits, reaped))
    exits = {e["pid"] for e in ev if e["ph"] == "i" and e["name"] == "exit"}
    ended = {p["pid"] for p in procs if p.get("end_ns") is not None}
    check(tag + ".chrome.exits", exits == ended, "%r vs %r" % (sorted(exits), sorted(ended)))
    zomb = {e["pid"]: e["dur"] for e in ev if e["ph"] == "X" and e.get("cat") == "zombie"}
    want = {p["pid"]: p["zombie_ns"] / 1000.0 for p in procs if p.get("zombie_ns")}
    check(tag + ".chrome.zombies", zomb.keys() == want.keys() and
          all(abs(zomb[k] - want[k]) < 0.002 for k in want), "%r vs %r" % (zomb, want))
    heap = collections.defaultdict(int)
    for e in ev:
        if e["ph"] == "C" and e["name"] == "heap":
            heap[e["pid"]] = max(heap[e["pid"]], e["args"]["live bytes"])
    peaks = {p["pid"]: p["malloc"]["peak_live_bytes"] for p in procs if p["malloc"]["traced"]}
    check(tag + ".chrome.heap-peaks", {k: heap.get(k, 0) for k in peaks} == peaks,
          "%r vs %r" % (dict(heap), peaks))
    last = {}
    for e in sorted((e for e in ev if e["ph"] == "C" and e["name"] == "pages"), key=lambda e: e["ts"]):
        last[e["pid"]] = (e["args"]["resident"], e["args"]["unshared"])
    want = {p["pid"]: (sum(g["resident_pages"] for g in p["regions"] if g["kind"] != KIND_SKIP),
                       sum(g["unshared_pages"] for g in p["regions"] if g["kind"] != KIND_SKIP))
            for p in procs if p.get("regions")}
    check(tag + ".chrome.pages", last == want, "%r vs %r" % (last, want))
    return ev


FOLDED = re.compile(r"^(.+) \[(\d+)\](;[^;\n]+)+ (\d+)$")


def folded(tag, r, what):
    rc, out, err = export(r.trace, "--format", "collapsed", "--what", what)
    if not check("%s.collapsed-%s.rc" % (tag, what), rc == 0, err[-300:]):
        return None
    lines = out.splitlines()
    bad = [ln for ln in lines if not FOLDED.match(ln)]
    check("%s.collapsed-%s.format" % (tag, what), not bad, bad[:3])
    per = collections.defaultdict(int)
    for ln in lines:
        m = FOLDED.match(ln)
        if m:
            per[int(m.group(2))] += int(m.group(4))
    return lines, per


def collapsed_totals(tag, r, doc):
    got = folded(tag, r, "alloc")
    if got:
        # folded bytes also count what reallocs of live blocks requested,
        # which the report's malloc.bytes counts apart (malloc.reallocs)
        procs = [p for p in fsk.processes(doc) if p["malloc"]["bytes"]]
        want = {p["pid"]: p["malloc"]["bytes"] for p in procs if not p["malloc"]["reallocs"]}
        have = {k: v for k, v in got[1].items() if k in want}
        check(tag + ".collapsed-alloc.bytes", have == want, "%r vs %r" % (have, want))
        more = [p["pid"] for p in procs if p["malloc"]["reallocs"] and got[1][p["pid"]] <= p["malloc"]["bytes"]]
        check(tag + ".collapsed-alloc.reallocs", not more, more)
    got_cow = folded(tag, r, "cow")
    if got_cow:
        want = {p["pid"]: p["cow"]["cow_fault_samples"] for p in fsk.processes(doc)
                if p["cow"]["cow_fault_samples"]}
        check(tag + ".collapsed-cow.pages", dict(got_cow[1]) == want,
              "%r vs %r" % (dict(got_cow[1]), want))
    return got, got_cow


ROW = re.compile(r"^\s+(\d+)\s+[\d.,]+\s+([\d,]+)\s")


def massif(tag, r, doc):
    if not shutil.which("ms_print"):
        note("ms_print not installed (valgrind): massif checked for shape only")
    rc, out, err = export(r.trace, "--format", "massif")
    if not check(tag + ".massif.rc", rc == 0, err[-300:]):
        return
    path = os.path.join(fsk.tmpdir(), tag + ".massif.out")
    with open(path, "w") as f:
        f.write(out)
    check(tag + ".massif.header", out.startswith("desc: ") and "\ntime_unit: ms\n" in out
          and "\nsnapshot=0\n" in out, out[:200])
    peak = max(p["malloc"]["peak_live_bytes"] for p in fsk.processes(doc) if p["malloc"]["traced"])
    if not shutil.which("ms_print"):
        return
    p = subprocess.run(["ms_print", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    text = p.stdout.decode("utf-8", "replace")
    if not check(tag + ".massif.ms_print", p.returncode == 0, p.stderr.decode()[-300:]):
        return
    m = re.search(r"Detailed snapshots: \[([^\]]*)\]", text)
    pk = re.search(r"(\d+) \(peak\)", m.group(1)) if m else None
    rows = {int(x.group(1)): int(x.group(2).replace(",", "")) for x in map(ROW.match, text.splitlines())
            if x}
    got = rows.get(int(pk.group(1))) if pk else None
    check(tag + ".massif.peak", got == peak, "ms_print peak %r, report peak %r" % (got, peak))
    check(tag + ".massif.max", rows and max(rows.values()) == peak, "max row %r" % max(rows.values() or [0]))


def prefork_cow(r, doc):
    workers = fsk.at_dicts(r.out, "worker")
    procs = fsk.by_pid(doc)
    parent = procs.get(fsk.num(fsk.at_dicts(r.out, "proc")[0]["pid"]))
    if not check("prefork.workers", len(workers) == 4 and parent, "%r" % workers):
        return
    total = 0
    for w in workers:
        pid, wrote = fsk.num(w["pid"]), fsk.num(w["wrote_pages"])
        total += wrote
        cow = procs[pid]["sites"]["cow"]
        top = cow[0] if cow else {}
        fr = top.get("frames") or [{}]
        check("prefork.cow-site.%d" % pid, top.get("pages") == wrote and top.get("kind") == "anon"
              and fr[0].get("function") == "worker" and fr[0].get("file", "").endswith("prefork.c"),
              "top %r, wrote %d" % (top, wrote))
    # forkscope's own COW faults (its frames on the stack, its TLS) are no
    # sites of the program's: counted apart, and no site names its code
    lib = os.path.realpath(os.environ["FORKSCOPE_LIB"])
    ours = []
    for q in [parent] + [procs[fsk.num(w["pid"])] for w in workers]:
        sites = q["sites"]["cow"] + (q["sites"].get("cow_children") or {}).get("sites", [])
        ours += [(q["pid"], fr.get("function")) for st in sites for fr in st.get("frames") or []
                 if fr.get("module") and os.path.realpath(fr["module"]) == lib]
    check("prefork.no-tracer-sites", not ours, ours[:6])
    kids = [procs[fsk.num(w["pid"])] for w in workers]
    counts = [q["cow"].get("cow_fault_samples_tracer") for q in [parent] + kids]
    check("prefork.tracer-pages-counted", all(isinstance(c, int) and c >= 0 for c in counts) and
          (parent["sites"].get("cow_children") or {}).get("tracer_pages") == sum(counts[1:]), counts)
    cc = parent["sites"].get("cow_children") or {}
    top = (cc.get("sites") or [{}])[0]
    fr = top.get("frames") or [{}]
    check("prefork.cow-children", cc.get("children") == 4 and top.get("pages") == total
          and fr[0].get("function") == "worker", "%r, wrote %d" % (cc, total))
    rep = subprocess.run([fsk.fsk(), "report", r.trace], stdout=subprocess.PIPE, timeout=120)
    text = rep.stdout.decode("utf-8", "replace")
    check("prefork.cow-text", re.search(r"summed over 4 children:\n    %d pages of anon: worker \(prefork\.c:\d+\)"
                                        % total, text) is not None, text[-600:])


TREE_ROW = re.compile(r"^\s+(\d+)\s+(\d+)\s+[\d.]+ \S+\s+(\d+)\s+[\d.]+ \S+\s+(\d+)\s+(\d+)\s+[\d.]+ \S+\s+(\d+)\s+(\d+)$")


def tree(tag, r, doc):
    """The report's process-tree section: each root's subtree sums equal
    the sums over the JSON processes; the header counts orphans and
    untraced processes; every untraced or cut process is listed where the
    tree stops being observed."""
    p = subprocess.run([fsk.fsk(), "report", r.trace], stdout=subprocess.PIPE, timeout=120)
    text = p.stdout.decode("utf-8", "replace")
    procs = fsk.processes(doc)
    head = re.search(r"^process tree: (\d+) process(?:es)? in (\d+) trees? over .*; (\d+) orphans?; "
                     r"(\d+) untraced$", text, re.M)
    untraced = [q for q in procs if not q["traced"] or q["stream_state"] == "untraced"]
    orphans = [q for q in procs if q["orphaned"]]
    roots = [q for q in procs if not q["parent_traced"]]
    check(tag + ".tree.header", head and [int(x) for x in head.groups()] ==
          [len(procs), len(roots), len(orphans), len(untraced)], head and head.group(0))
    rows = {int(m.group(1)): [int(x) for x in m.groups()[1:]] for m in map(TREE_ROW.match, text.splitlines()) if m}
    for root in roots:
        if not root["children"]:
            continue
        want = [len(procs), sum(q["malloc"]["calls"] for q in procs),
                sum(q["cow"]["cow_fault_samples"] for q in procs),
                sum(q["cow"]["unshared_pages"] for q in procs), len(orphans), len(untraced)]
        check(tag + ".tree.subtree", len(roots) != 1 or rows.get(root["pid"]) == want,
              "row %r, want %r" % (rows.get(root["pid"]), want))
    stops = re.findall(r"^  (\d+)(?: <- \d+)* .*: (?:not traced|stream)", text, re.M)
    want = sorted(q["pid"] for q in procs if q in untraced or
                  any(i["stream_state"] in ("cut", "corrupt") for i in q["images"]))
    check(tag + ".tree.stops", sorted(int(x) for x in stops) == want, "%r vs %r" % (stops, want))


def main():
    fsk.require(fsk.sample("prefork"), fsk.prog("stacks"), fsk.prog("malloc_count"))
    perf = True
    try:
        with open("/proc/sys/kernel/perf_event_paranoid") as f:
            perf = int(f.read().strip()) <= 2
    except (OSError, ValueError):
        perf = False

    r, doc = traced("prefork", [fsk.sample("prefork")])
    if doc:
        chrome("prefork", r, doc)
        collapsed_totals("prefork", r, doc)
        massif("prefork", r, doc)
        if perf:
            prefork_cow(r, doc)
        else:
            note("perf_event_paranoid > 2: no sampled COW faults, COW sites not checked")
    if doc:
        tree("prefork", r, doc)
    for name in ("exit_codes", "zombie", "orphan", "fork_twice"):
        r, doc = traced(name, [fsk.sample(name)])
        if doc:
            chrome(name, r, doc)
            tree(name, r, doc)
    if os.path.exists("/sbin/ldconfig"):  # static: cannot be traced
        r, doc = traced("static", ["sh", "-c", "/sbin/ldconfig -p >/dev/null; exit 0"])
        if doc:
            tree("static", r, doc)
            chrome("static", r, doc)
    r, doc = traced("stacks", [fsk.prog("stacks")])
    if doc:
        got, _ = collapsed_totals("stacks", r, doc)
        sites = fsk.at_dicts(r.out, "site")
        text = "\n".join(got[0]) if got else ""
        missing = [s["func"] for s in sites if ";%s;" % s["func"] not in text and
                   not re.search(r";%s \d+$" % re.escape(s["func"]), text, re.M)]
        check("stacks.collapsed-functions", sites and not missing, "missing %r" % missing)
        massif("stacks", r, doc)
    # malloc_count prints what it requested (realloc's new sizes included):
    # the folded total of a run minus that of a run with no iterations
    r0, doc0 = traced("malloc_count0", [fsk.prog("malloc_count"), "0", "2"])
    r, doc = traced("malloc_count", [fsk.prog("malloc_count"), "2000", "2"])
    if doc and doc0:
        got0, _ = collapsed_totals("malloc_count0", r0, doc0)
        got, _ = collapsed_totals("malloc_count", r, doc)
        c0, c = fsk.at_dicts(r0.out, "counts")[0], fsk.at_dicts(r.out, "counts")[0]
        want = fsk.num(c["bytes"]) - fsk.num(c0["bytes"])
        diff = sum(got[1].values()) - sum(got0[1].values()) if got and got0 else None
        check("malloc_count.collapsed-program-bytes", diff == want, "%r vs %r" % (diff, want))
        massif("malloc_count", r, doc)
        chrome("malloc_count", r, doc)
    rc, _, err = export(fsk.tmpdir(), "--format", "nosuch")
    check("usage.bad-format", rc == 2 and "format" in err, err)
    fsk.finish()


if __name__ == "__main__":
    main()
