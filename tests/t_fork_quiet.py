#!/usr/bin/env python3
"""A process that forks keeps no flusher while it forks (preload/init.c,
init_fork_quiet): a second thread, even one that only ever existed, makes
every later fork of the process glibc's slow one. tests/progs/fork_quiet
forks 30 times with mallocs between fork and waitpid, then mallocs in a
burst and 6 times 2 ms apart, then makes 200 mallocs after a fork and
blocks in waitpid while its child looks at its stream file, then mallocs
again after 120 ms without a fork. Checks: no second thread while it
forks; the 200 mallocs are in the stream file while it blocks in waitpid
(its thread wrote them first; no flusher would have); a second thread
(the flusher) once it stopped forking; every malloc of each size class is
in the stream exactly as often as made; the thread's records are in time
order; the 6 mallocs 2 ms apart after the burst carry the time of their
own call (a stamp reused from the burst would be 2 ms early: nothing ends
a reused stamp's epoch without a flusher). Events only and with stacks,
as root and as nobody."""
import glob
import importlib.util
import os
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402

ROUNDS, PER, BURST, SPARSE, MARKS, LATE = 30, 20, 200, 6, 200, 100
ALLOC, STACK, FAULT, MODULE = 1, 13, 20, 21
SLACK_NS = 20000  # a TSC stamp next to a clock_gettime one (t_malloc_clock)


def decoder():
    """t_malloc_clock's decoder of raw streams (one decoder, two tests)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "t_malloc_clock.py")
    spec = importlib.util.spec_from_file_location("t_malloc_clock", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.decode


def size_class(size):
    for name, lo, n in (("loop", 3000, PER), ("burst", 5000, 1), ("sparse", 6100, SPARSE),
                        ("marks", 7000, MARKS), ("late", 8000, LATE)):
        if lo <= size < lo + n:
            return name
    return None


def run(tag, wrap, options, decode):
    argv = [fsk.prog("fork_quiet")]
    plain = fsk.run_plain(argv, wrap=wrap)
    r = fsk.run_traced(argv, wrap=wrap, options=options)
    if not check(tag + ".ran", r.rc == 0 == plain.rc and "@ done" in r.out and not r.timed_out,
                 r.describe() + " / plain " + plain.describe()):
        return
    loop = fsk.at_dicts(r.out, "loop")
    check(tag + ".same-loop", loop and loop == fsk.at_dicts(plain.out, "loop"),
          "traced %r, untraced %r" % (loop, fsk.at_dicts(plain.out, "loop")))
    check(tag + ".no-thread-while-forking", loop and fsk.num(loop[0]["most"]) == 1,
          "threads seen between forks: %r" % loop)
    vis = fsk.at_dicts(r.out, "visible")
    grew = fsk.num(vis[0]["after"]) - fsk.num(vis[0]["before"]) if vis else -1
    check(tag + ".written-before-blocking-wait", vis and fsk.num(vis[0]["before"]) > 0 and grew >= 4 * MARKS,
          "the stream grew by %d bytes while the process blocked in waitpid after %d mallocs: %r"
          % (grew, MARKS, vis))
    after = fsk.at_dicts(r.out, "after")
    check(tag + ".flusher-after-forks", after and fsk.num(after[0]["threads"]) == 2,
          "threads after %s: %r" % ("120 ms without a fork", after))

    doc = r.report()
    procs = fsk.processes(doc) if doc else []
    roots = [p for p in procs if p.get("ppid") not in {q.get("pid") for q in procs}]
    if not check(tag + ".report", doc is not None and len(roots) == 1,
                 r.report_error or "%d roots" % len(roots)):
        return
    pid = roots[0]["pid"]
    streams = sorted(glob.glob(os.path.join(r.trace, "%d.*.fst" % pid)))
    if not check(tag + ".stream", len(streams) == 1, streams):
        return
    try:
        recs = decode(streams[0])
    except (ValueError, KeyError) as e:
        check(tag + ".decode", False, str(e))
        return
    got = {}
    for typ, _, _, f in recs:
        if typ == ALLOC and size_class(f["size"]):
            got[size_class(f["size"])] = got.get(size_class(f["size"]), 0) + 1
    want = {"loop": ROUNDS * PER, "burst": BURST, "sparse": SPARSE, "marks": MARKS, "late": LATE}
    check(tag + ".every-malloc", got == want, "recorded %r, made %r" % (got, want))
    last, back = {}, 0
    for typ, tid, ts, _ in recs:
        if typ in (STACK, FAULT, MODULE):
            continue
        if ts < last.get(tid, 0):
            back += 1
        last[tid] = ts
    check(tag + ".time-order", back == 0, "%d records earlier than the one before them" % back)
    sp = {fsk.num(d["k"]): (fsk.num(d["before"]), fsk.num(d["after"])) for d in fsk.at_dicts(r.out, "sparse")}
    stamps = {f["size"] - 6100: ts for typ, _, ts, f in recs if typ == ALLOC and size_class(f["size"]) == "sparse"}
    off = sorted(max(sp[k][0] - ts, ts - sp[k][1], 0) for k, ts in stamps.items() if k in sp)
    check(tag + ".sparse-own-time", len(sp) == SPARSE and len(off) == SPARSE and off[-1] <= SLACK_NS,
          "%d timed, %d recorded; stamps outside their call by up to %.3f ms"
          % (len(sp), len(off), off[-1] / 1e6 if off else -1))


def main():
    fsk.require(fsk.prog("fork_quiet"))
    decode = decoder()
    for tag, wrap in fsk.user_runs():
        run(tag + ".events", wrap, ["--stack-depth", "0"], decode)
        run(tag + ".stacks", wrap, [], decode)
    fsk.finish()


if __name__ == "__main__":
    main()
