#!/usr/bin/env python3
"""The scans around fork and wait, with malloc tracing on and off.

tests/progs/scan_cost maps and touches 8 MiB, then three times forks a
child that _exits at once and reaps it. A parent that forks has the
flusher thread (with --no-malloc too, unless RLIMIT_NPROC is low), so the
WAIT scan after a reap is not made on the wait path: the next fork's
prefork scan makes it, or a flusher tick, and after the last reap the
EXIT scan stands for it. Either way, in the parent's stream: one
FORK_PARENT scan per fork, in which the 8 MiB are resident and all shared
with the child at fork; two or three WAIT scans (the third only when a
tick came before exit) and the EXIT scan, in which they are resident and
the parent's alone, none copied. As root and as nobody."""
import glob
import os
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check  # noqa: E402

FORK_PARENT, EXIT, WAIT = 2, 5, 6
MIB, ROUNDS = 8, 3
PAGES = MIB * 256


def case(tag, wrap, options):
    r = fsk.run_traced([fsk.prog("scan_cost"), "cost", str(MIB), "0", str(ROUNDS)], wrap=wrap,
                       cwd=fsk.tmpdir(), options=options)
    mem = fsk.at_dicts(r.out, "mem") if r.rc == 0 else []
    if not check(tag + ".ran", len(mem) == 1, r.describe()):
        return
    addr = int(mem[0]["addr"], 16)
    streams = [p for p in glob.glob(os.path.join(r.trace, "*.fst"))
               if any(reg["start"] <= addr < reg["end"] for s in fsk.stream_scans(p) for reg in s[3])]
    parent = None
    for p in streams:
        if any(s[0] == FORK_PARENT for s in fsk.stream_scans(p)):
            parent = p
    if not check(tag + ".parent-stream", parent is not None, "%d streams map the buffer" % len(streams)):
        return
    scans = fsk.stream_scans(parent)

    def region(s):
        return next((reg for reg in s[3] if reg["start"] <= addr < reg["end"]), None)

    forks = [region(s) for s in scans if s[0] == FORK_PARENT]
    after = [(s[0], region(s)) for s in scans if s[0] in (WAIT, EXIT)]
    waits = sum(1 for t, _ in after if t == WAIT)
    check(tag + ".fork-scans", len(forks) == ROUNDS and
          all(g and g["resident"] >= PAGES and g["shared_at_fork"] >= PAGES for g in forks),
          "%d FORK_PARENT scans (want %d), buffer regions %r" % (len(forks), ROUNDS, forks[:1]))
    check(tag + ".wait-scans", waits in (ROUNDS - 1, ROUNDS) and after and after[-1][0] == EXIT,
          "triggers after the forks: %r" % [t for t, _ in after])
    bad = [(t, g) for t, g in after
           if not g or g["resident"] < PAGES or g["shared"] != 0 or g["copied"] != 0]
    check(tag + ".parent-alone", not bad,
          "%d of %d WAIT/EXIT scans show the buffer not resident or still shared, first %r"
          % (len(bad), len(after), bad[:1]))


def main():
    fsk.require(fsk.prog("scan_cost"))
    for utag, wrap in fsk.user_runs():
        case(utag + ".malloc", wrap, [])
        case(utag + ".no-malloc", wrap, ["--no-malloc"])
    fsk.finish()


main()
