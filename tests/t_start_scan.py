#!/usr/bin/env python3
"""What the cheaper start path of every traced image must keep.

Signals: the constructor takes the fatal signals over with one
rt_sigaction each, reading the action it replaces in the same call, and
puts an inherited SIG_IGN back. tests/progs/sig_inherit, started with
SIGSEGV, SIGBUS and SIGFPE ignored by the image that exec'd it (and
once with nothing ignored), must
print exactly what it prints untraced: the actions sigaction reports, the
kernel's ignored set (so an ignored signal is really ignored, not caught),
raises of the ignored ones returning, the same set in an image it execs,
and a child killed by SIGFPE once the default is back.

START scan: its buffers now come from one mapping, the pagemap batch
shares the maps read buffer, and whether PFNs are visible is learnt from
its own pages. For a traced /bin/true (as root and as nobody) the stream
holds a START and an EXIT scan listing the same program regions, and for
each the pages the EXIT scan counts as resident less those it counts as
first touched since the START baseline are exactly the START scan's
resident pages (nothing is unmapped or freed in between); the PFN flag
says visible exactly as root. tests/progs/many_maps makes later scans
outgrow those buffers: its 1500 mappings are all listed, with exact
bounds and resident pages, by the fork and exit scans of both sides."""
import os
import signal
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check, num  # noqa: E402

SCAN_START, SCAN_EXIT = 1, 5
IGNORED = (signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE)


def signals_case(tag, args, ignored):
    argv = [fsk.prog("sig_inherit")] + args
    plain = fsk.run_plain(argv)
    r = fsk.run_traced(argv)
    check(tag + ".ran", r.rc == 0 == plain.rc and not r.timed_out, r.describe() + " / plain " + plain.describe())
    check(tag + ".same-output", r.out == plain.out and r.out,
          "traced:\n%s\nuntraced:\n%s" % (r.out, plain.out))
    want = sum(1 << (s - 1) for s in ignored)
    kern = [num(d["ignored"]) for d in fsk.at_dicts(plain.out, "kernel") if d["who"] != "after"]
    check(tag + ".untraced-ground-truth", kern == [want, want], "untraced SigIgn %r, want %#x twice" % (kern, want))
    raised = sorted(num(d["sig"]) for d in fsk.at_dicts(r.out, "raised"))
    check(tag + ".raised-ignored", raised == sorted([int(s) for s in ignored] * 2),
          raised)
    doc = r.report()
    if not check(tag + ".report", doc is not None, r.report_error):
        return
    exits = sorted(fsk.exit_str(q) for q in fsk.processes(doc))
    check(tag + ".exits", len(exits) == 3 and exits.count("exited 0") == 2 and exits[-1].startswith("signaled 8")
          if exits else False, exits)
    check(tag + ".streams-clean", all(q["stream_state"] == "clean" for q in fsk.processes(doc)),
          [q["stream_state"] for q in fsk.processes(doc)])


def program_regions(scan):
    return [g for g in scan[3] if g["kind"] != "forkscope"]


def start_vs_exit(tag, wrap):
    d = fsk.fresh_dir(tag)
    os.mkdir(d)
    os.chmod(d, 0o777)
    r = fsk.run_traced(["/bin/true"], cwd=d, wrap=wrap, trace=os.path.join(d, "trace"))
    if not check(tag + ".ran", r.rc == 0, r.describe()):
        return
    doc = r.report()
    procs = fsk.processes(doc) if doc else []
    if not check(tag + ".one-process", len(procs) == 1, r.report_error or len(procs)):
        return
    stream = os.path.join(r.trace, "%d.0.fst" % procs[0]["pid"])
    if not check(tag + ".stream", os.path.exists(stream), sorted(os.listdir(r.trace))):
        return
    scans = fsk.stream_scans(stream)
    if not check(tag + ".triggers", [s[0] for s in scans] == [SCAN_START, SCAN_EXIT],
                 [s[0] for s in scans]):
        return
    start, end = scans
    root = os.geteuid() == 0 and not wrap
    for name, s in (("start", start), ("exit", end)):
        check("%s.%s.pfn-flag" % (tag, name), bool(s[1] & fsk.SCAN_PFN_VISIBLE) == root,
              "flags %#x, root=%s" % (s[1], root))
    check(tag + ".start-lists-own", any(g["kind"] == "forkscope" for g in start[3]),
          sorted({g["kind"] for g in start[3]}))
    a, b = program_regions(start), program_regions(end)
    key = lambda g: (g["start"], g["end"], g["kind"], g["perms"], g["path"])  # noqa: E731
    check(tag + ".same-regions", [key(g) for g in a] == [key(g) for g in b],
          "start %d regions, exit %d" % (len(a), len(b)))
    check(tag + ".stack-counted", any(g["kind"] == "stack" and g["resident"] > 0 for g in a),
          [(g["kind"], g["resident"]) for g in a])
    bad = [(g["path"] or g["kind"], g["resident"], h["resident"], h["first_touch"])
           for g, h in zip(a, b) if key(g) == key(h) and h["resident"] - h["first_touch"] != g["resident"]]
    check(tag + ".counts-match-baseline", not bad and len(a) == len(b),
          "(region, start resident, exit resident, exit first_touch): %r" % bad)
    check(tag + ".start-nothing-shared", all(g["shared"] == 0 and g["unshared"] == 0 for g in a),
          [(g["path"] or g["kind"], g["shared"], g["unshared"]) for g in a if g["shared"] or g["unshared"]])


def grown_buffers(tag, n):
    """Scans after many_maps mapped n regions: more than the first scan's
    maps entries (256) and output (64 KiB) hold, so each grew out of its
    place in the first mapping; every mapping is listed with its exact
    bounds and resident pages, in the parent and in the fork child."""
    r = fsk.run_traced([fsk.prog("many_maps"), str(n)], timeout=120)
    if not check(tag + ".ran", r.rc == 0, r.describe()):
        return
    want = {num(d["addr"]): num(d["resident"]) for d in fsk.at_dicts(r.out, "map")}
    child = num(fsk.at_dicts(r.out, "wait")[0]["pid"])
    doc = r.report()
    procs = fsk.by_pid(doc) if doc else {}
    if not check(tag + ".report", len(want) == n and child in procs and len(procs) == 2,
                 "%d maps, processes %r, %s" % (len(want), sorted(procs), r.report_error)):
        return
    parent = [pid for pid in procs if pid != child][0]
    for side, pid, triggers in (("parent", parent, (2, 5)), ("child", child, (3, 5))):
        scans = fsk.stream_scans(os.path.join(r.trace, "%d.0.fst" % pid))
        later = [s for s in scans if s[0] in triggers]
        if not check("%s.%s.scans" % (tag, side), len(later) == 2, [s[0] for s in scans]):
            continue
        for s in later:
            got = {g["start"]: (g["end"] - g["start"], g["kind"], g["resident"]) for g in s[3]}
            bad = [(hex(a), got.get(a)) for a, res in sorted(want.items()) if got.get(a) != (8192, "anon", res)]
            check("%s.%s.trigger%d" % (tag, side, s[0]), not bad and len(s[3]) > n,
                  "%d of %d mappings wrong, first: %r" % (len(bad), n, bad[:3]))


def main():
    fsk.require(fsk.prog("sig_inherit"), fsk.prog("many_maps"))
    signals_case("signals.ignored", ["ignore"], IGNORED)
    signals_case("signals.default", [], ())
    for tag, wrap in fsk.user_runs():
        start_vs_exit("scan." + tag, wrap)
    grown_buffers("grown", 1500)
    fsk.finish()


main()
