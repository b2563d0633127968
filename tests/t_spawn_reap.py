#!/usr/bin/env python3
"""Which reaped children get a WAIT scan (preload/proc.c, nocow_*).

A child made by vfork or posix_spawn shares its parent's address space
until it execs (CLONE_VM), never a page of it copy-on-write: its reaping
changes nothing a scan of the parent would show, so it gets no WAIT scan
(make, gcc's driver and python's subprocess spawn every child so). A fork
child's reaping still gets one. tests/progs/spawn_reap, run with
--no-malloc and a low RLIMIT_NPROC (so no flusher: each WAIT scan is made
on the wait path, right after its WAIT record), reaps in turn fork child
F1, spawned S1, vforked-and-exec'd V1, posix_spawnp'd S2, vforked V2
that _exits without exec, and fork child F2 (by waitpid(-1)). In the
parent's stream there must be exactly two WAIT scans, each right after
the WAIT record of F1 or F2; the library from before made six. With
malloc tracing on too (WAIT scans then wait for the flusher or the exit
scan): at most two. Every run prints what it prints untraced, every
child's exit status is in the report, every stream is clean (V2 has none:
a vfork child's hooks are off until it execs). As root and as nobody."""
import os
import struct
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import num  # noqa: E402

REC_WAIT, SCAN_WAIT = 11, 6


def records(path):
    """[("wait", pid) | ("scan", trigger)] of one raw stream, in order."""
    out = []
    for typ, p in fsk.stream_records(path):
        if typ == REC_WAIT:
            out.append(("wait", struct.unpack_from("<i", p, 4)[0]))
        elif typ == fsk.REC_SCAN:
            out.append(("scan", struct.unpack_from("<H", p, 4)[0]))
    return out


def case(tag, wrap, options):
    argv = [fsk.prog("spawn_reap")]
    plain = fsk.run_plain(argv, wrap=wrap)
    r = fsk.run_traced(argv, wrap=wrap, options=options)

    def check(name, ok, why=""):
        return fsk.check(tag + "." + name, ok, why)
    if not check("ran", r.rc == 0 == plain.rc and not r.timed_out,
                 r.describe() + " / plain " + plain.describe()):
        return

    def strip(out):  # pids differ from run to run
        return [" ".join(w for w in line.split() if not w.startswith("pid=")) for line in out.splitlines()]
    check("same-output", strip(r.out) == strip(plain.out) and "@ done" in r.out,
          "traced:\n%s\nuntraced:\n%s" % (r.out, plain.out))
    kids = {k["who"]: (num(k["pid"]), num(k["status"])) for k in fsk.at_dicts(r.out, "child")}
    want = {"F1": 0, "S1": 0, "V1": 0, "S2": 0, "V2": 3, "F2": 5}
    if not check("children", {w: s for w, (_, s) in kids.items()} == want, kids):
        return
    doc = r.report()
    if not check("report", doc is not None, r.report_error):
        return
    procs = fsk.by_pid(doc)
    # V2 never execs: a vfork child runs on its parent's state with the
    # hooks off, so it has no stream of its own
    check("streams-clean", all(q["stream_state"] == ("untraced" if p == kids["V2"][0] else "clean")
                               for p, q in procs.items()),
          [(q["pid"], q["stream_state"]) for q in procs.values()])
    parent = procs.get(kids["F1"][0], {}).get("ppid")
    check("exit-status-in-report",
          all(kids[w][0] in procs and procs[kids[w][0]]["ppid"] == parent and
              procs[kids[w][0]]["reaped_by"] == parent and
              fsk.exit_str(procs[kids[w][0]]) == "exited %d" % s for w, s in want.items()),
          {w: fsk.exit_str(procs[p]) if p in procs else None for w, (p, _) in kids.items()})
    recs = records(os.path.join(r.trace, "%d.0.fst" % parent))
    waits = [i for i, x in enumerate(recs) if x == ("scan", SCAN_WAIT)]
    fork_kids = {kids["F1"][0], kids["F2"][0]}
    if "--no-malloc" not in options:
        check("at-most-two-wait-scans", len(waits) <= 2, recs)
        return
    check("two-wait-scans", len(waits) == 2, recs)
    check("each-after-a-fork-child",
          all(i > 0 and recs[i - 1][0] == "wait" and recs[i - 1][1] in fork_kids for i in waits),
          "F1/F2 = %r: %r" % (sorted(fork_kids), recs))
    reaps = [x[1] for x in recs if x[0] == "wait"]
    check("six-waits", sorted(reaps) == sorted(p for p, _ in kids.values()), (reaps, kids))


def main():
    for tag, wrap in fsk.user_runs():
        case(tag + ".no-malloc", wrap, ["--no-malloc"])
        case(tag + ".malloc", wrap, [])


if __name__ == "__main__":
    try:
        main()
    finally:
        fsk.finish()
