"""Copy-on-write ground truth read from the raw streams (the SCAN/REGION
records themselves, before any viewer code): tests/progs/cow_truth's child
writes a known number of pages in .data, .bss, the heap, an anonymous mmap
and a big malloc after fork; its last scan (EXIT) must count exactly those
as unshared, as cow_faults (where page-fault sampling works), and where
PFNs are visible (root) as copied; the parent copied none of them. Once
more with an execve() that fails between the child's writes: the faults
the exec's scan read from the sampler are not read again after it. tests/progs/scan_cost smaps: the child's EXIT scan must agree
with the /proc/self/smaps it printed just before, within two pages.
Runs as root and, via setpriv, as nobody."""
import os
import struct
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check, note, num  # noqa: E402

REC_FAULT, FAULT_COW = 20, 1  # FSK_REC_FAULT, FSK_FAULT_COW (trace.h)
EXPECT_KIND = {"data": "data", "bss": "bss", "heap": "heap", "anon": "anon", "big": "anon"}
PFN_VISIBLE = fsk.SCAN_PFN_VISIBLE
scans = fsk.stream_scans


def stream_of(trace, pid):
    for name in sorted(os.listdir(trace)):
        if name.startswith("%d." % pid) and name.endswith(".fst"):
            return os.path.join(trace, name)
    return None


def region_at(regions, addr):
    for r in regions:
        if r["start"] <= addr < r["end"]:
            return r
    return None


def traced(tag, argv, wrap, options=(), env=None):
    d = fsk.fresh_dir(tag)
    os.mkdir(d)
    os.chmod(d, 0o777)
    return fsk.run_traced(argv, timeout=120, cwd=d, wrap=wrap, trace=os.path.join(d, "trace"),
                          options=options, env=env)


def cow_truth(tag, wrap, args=()):
    # LD_BIND_NOW, as in t_cow: with lazy binding the child's first call
    # of _exit writes a GOT page of the data region, a real COW copy when
    # the child gets there before the parent's own first calls after fork.
    r = traced(tag, [fsk.prog("cow_truth")] + list(args), wrap, env={"LD_BIND_NOW": "1"})
    if not check(tag + ".ran", r.rc == 0, r.describe()):
        return
    roles = {kv["role"]: num(kv["pid"]) for kv in fsk.at_dicts(r.out, "proc")}
    cs, ps = stream_of(r.trace, roles.get("child", -1)), stream_of(r.trace, roles.get("parent", -1))
    if not check(tag + ".streams", cs and ps, "roles %r, files %r" % (roles, os.listdir(r.trace))):
        return
    child, parent = scans(cs), scans(ps)
    if not check(tag + ".child-scans", child and child[-1][0] == 5 and child[0][0] == 3,
                 "child triggers %r (want FORK_CHILD first, EXIT last)" % [s[0] for s in child]):
        return
    last = child[-1][3]
    pfn = bool(child[-1][1] & PFN_VISIBLE)
    note("%s: PFNs %svisible" % (tag, "" if pfn else "not "))
    check(tag + ".pfn-visible-as-root", pfn == (os.geteuid() == 0 and not wrap),
          "scan flags say PFNs visible=%s" % pfn)
    # after the child exited: WAIT, or EXIT when the parent exits before
    # the deferred WAIT scan is made (the exit scan makes it then)
    pwait = [s for s in parent if s[0] in (5, 6)]
    pfork = [s for s in parent if s[0] == 2]
    # cow_faults: the COW faults the child's sampler saw, each read once
    # (with "execfail", some before the failed exec's scan, the rest after)
    with_faults = sum(x["cow_faults"] for x in last) > 0
    if not with_faults and fsk.perf_expected():
        check(tag + ".cow-faults-sampled", False,
              "perf_event_paranoid <= 2 but the child's EXIT scan has no cow_faults in any region")
    # the FAULT records themselves (struct fsk_fault: addr, ip, stack,
    # class): one COW fault per page the child wrote in each array
    cow_addrs = [struct.unpack_from("<Q", p)[0] for typ, p in fsk.stream_records(cs)
                 if typ == REC_FAULT and struct.unpack_from("<H", p, 20)[0] & 0xff == FAULT_COW]
    for kv in fsk.at_dicts(r.out, "region"):
        name, addr, pages, written = kv["name"], num(kv["addr"]), num(kv["pages"]), num(kv["written"])
        t = "%s.%s" % (tag, name)
        if with_faults:
            recs = [a for a in cow_addrs if addr <= a < addr + pages * 4096]
            check(t + ".fault-records", len(recs) == written and len(set(a >> 12 for a in recs)) == written,
                  "%d COW FAULT records on %d pages of the array, the child wrote %d pages"
                  % (len(recs), len(set(a >> 12 for a in recs)), written))
        cr = region_at(last, addr)
        if not check(t + ".kind", cr and cr["kind"] == EXPECT_KIND[name],
                     "child region at %#x: %r" % (addr, cr)):
            continue
        # Exact for .data too: cow_truth is linked with -z now, so nothing
        # but the child's writes touches its data region after fork.
        check(t + ".unshared", cr["unshared"] == written,
              "child unshared=%d, it wrote %d pages" % (cr["unshared"], written))
        if pfn:
            check(t + ".copied", cr["copied"] == written,
                  "child copied=%d, it wrote %d pages" % (cr["copied"], written))
        if with_faults:
            check(t + ".cow-faults", cr["cow_faults"] == written,
                  "child cow_faults=%d, it wrote %d pages" % (cr["cow_faults"], written))
        check(t + ".first-touch", cr["first_touch"] == 0, "child first_touch=%d" % cr["first_touch"])
        check(t + ".shared-at-fork", cr["shared_at_fork"] >= pages,
              "child shared_at_fork=%d < %d pages" % (cr["shared_at_fork"], pages))
        if pfork:
            pr = region_at(pfork[0][3], addr)
            # The baseline is taken just before fork; by the parent's fork
            # scan the child may have copied (even exited), which makes the
            # parent's frames exclusive (unshared) without a copy here.
            check(t + ".parent-fork", pr and pr["shared_at_fork"] >= pages and pr["first_touch"] == 0
                  and (not pfn or pr["copied"] == 0), "parent at fork: %r" % pr)
        if pwait and pfn:
            pr = region_at(pwait[-1][3], addr)
            check(t + ".parent-copied-none", pr and pr["copied"] == 0,
                  "parent after the child exited: %r" % pr)


def parse_smaps(text):
    out, cur = [], None
    for line in text.splitlines():
        f = line.split()
        if f and "-" in f[0] and len(f) >= 5 and ":" in f[3]:
            s, e = f[0].split("-")
            cur = dict(start=int(s, 16), end=int(e, 16))
            out.append(cur)
        elif cur is not None and len(f) >= 2 and f[0].endswith(":") and f[1].isdigit():
            cur[f[0][:-1]] = int(f[1])
    return out


def smaps_vs_scan(tag, wrap):
    # With call stacks on (the default): libunwind's own mappings, made
    # while the parent unwinds after fork, are registered as forkscope's
    # (preload/unwind.c, unwind_mmap) and must not show up as the program's.
    r = traced(tag + ".smaps", [fsk.prog("scan_cost"), "smaps", "300", "37"], wrap)
    if not check(tag + ".smaps.ran", r.rc == 0, r.describe()):
        return
    text = r.out.split("@ smaps-begin\n", 1)[-1].split("@ smaps-end", 1)[0]
    sm = parse_smaps(text)
    child = [kv for kv in fsk.at_dicts(r.out, "proc") if kv.get("role") == "child"]
    cs = stream_of(r.trace, num(child[0]["pid"])) if child else None
    sc = scans(cs) if cs else []
    if not check(tag + ".smaps.exit-scan", sm and sc and sc[-1][0] == 5, "smaps %d, scans %r"
                 % (len(sm), [s[0] for s in sc])):
        return
    regions = sc[-1][3]
    mem = fsk.at_dicts(r.out, "mem")[0]
    compared = 0
    for s in sm:
        g = [x for x in regions if x["start"] == s["start"] and x["end"] == s["end"]]
        if not g or g[0]["kind"] not in ("heap", "anon", "bss", "data", "stack") or "Rss" not in s:
            continue
        g = g[0]
        if g["resident"] and g["first_touch"] == g["resident"]:
            continue  # mapped after fork: the buffer smaps was read into
        compared += 1
        pk = 4  # KiB per page
        t = "%s.smaps.%s@%x" % (tag, g["kind"], g["start"])
        check(t + ".rss", abs(s["Rss"] - g["resident"] * pk) <= 2 * pk,
              "smaps Rss %d KiB, scan resident %d pages" % (s["Rss"], g["resident"]))
        sh = s.get("Shared_Clean", 0) + s.get("Shared_Dirty", 0)
        check(t + ".shared", abs(sh - g["shared"] * pk) <= 2 * pk,
              "smaps Shared_* %d KiB, scan shared %d pages" % (sh, g["shared"]))
        pd = s.get("Private_Dirty", 0) + s.get("Private_Clean", 0)
        check(t + ".private", abs(pd - (g["resident"] - g["shared"]) * pk) <= 2 * pk,
              "smaps Private_* %d KiB, scan resident-shared %d pages" % (pd, g["resident"] - g["shared"]))
    check(tag + ".smaps.compared", compared >= 2, "only %d regions compared" % compared)
    g = region_at(regions, num(mem["addr"]))
    check(tag + ".smaps.written", g and g["unshared"] == num(mem["written"]), "region %r" % g)


def wait_then_fork(tag, wrap):
    # scan_cost touches 16 MiB, then twice forks a child that _exits at
    # once and reaps it. The first reaping's WAIT scan is made by the
    # second fork's prefork scan (or the flusher, if it came first): it
    # must lie between the two fork scans and find every page of the
    # buffer unshared (its only sharer is gone), none copied or new.
    r = traced(tag + ".wait", [fsk.prog("scan_cost"), "cost", "16", "0", "2"], wrap)
    if not check(tag + ".wait.ran", r.rc == 0, r.describe()):
        return
    mem = fsk.at_dicts(r.out, "mem")[0]
    # the parent's stream: the one with fork scans (the children have none)
    streams = [scans(os.path.join(r.trace, n)) for n in sorted(os.listdir(r.trace)) if n.endswith(".fst")]
    ps = ([x for x in streams if any(s[0] == 2 for s in x)] or [[]])[0]
    trig = [s[0] for s in ps]
    forks = [i for i, t in enumerate(trig) if t == 2]
    between = [ps[i] for i in range(forks[0], forks[-1]) if trig[i] == 6] if len(forks) == 2 else []
    if not check(tag + ".wait.order", between, "parent scan triggers %r" % trig):
        return
    g = region_at(between[0][3], num(mem["addr"]))
    pages = num(mem["mib"]) * 256
    check(tag + ".wait.counts", g and g["resident"] == pages and g["shared"] == 0 and
          g["unshared"] == pages and g["copied"] == 0 and g["first_touch"] == 0 and
          g["shared_at_fork"] == pages, "buffer of %d pages in the WAIT scan: %r" % (pages, g))


def main():
    fsk.require(fsk.prog("cow_truth"), fsk.prog("scan_cost"))
    for tag, wrap in fsk.user_runs():
        cow_truth(tag, wrap)
        cow_truth(tag + ".execfail", wrap, ["execfail"])
        smaps_vs_scan(tag, wrap)
        wait_then_fork(tag, wrap)
    fsk.finish()


if __name__ == "__main__":
    main()
