#!/usr/bin/env python3
"""Region kinds of thread stacks and malloc arenas (tests/progs/arenas).

A PROT_NONE guard right below a writable anonymous mapping of at least
1 MiB is how the scan tells a thread stack. But glibc's arenas made one
after another lie next to each other: each 64 MiB-aligned heap starts
right above the PROT_NONE rest of the arena below, and was called a
thread stack in the viewer and the report. arenas runs 4 threads that
each fill an arena of their own past 1 MiB, then end (glibc keeps their
stacks and arenas mapped), and prints an address in each thread's stack
and one of its blocks. In the exit scan each stack's region must be a
thread_stack and no arena's (its block's region, 64 MiB-aligned) may be;
at least 2 of the arenas must lie right above another's PROT_NONE rest,
or the case was not made. With the previous library 3 of the 4 arenas
were thread stacks. A thread stack that starts 64 MiB-aligned (a guard
below, no PROT_NONE rest above) must be a thread_stack too: the alignment
alone made it "anon" before."""
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402


def region_at(regions, addr):
    for g in regions:
        if int(g["start"], 16) <= addr < int(g["end"], 16):
            return g
    return None


def attempt():
    """One traced run; None when no two arenas came out next to each
    other (glibc sometimes gives two threads one arena)."""
    prog = fsk.prog("arenas")
    r = fsk.run_traced([prog, "4"], timeout=60)
    got = fsk.at_dicts(r.out, "arena")
    if not check("ran", r.rc == 0 and len(got) == 4, r.describe()):
        return False
    procs = fsk.report_procs("arenas", r)
    if not procs:
        return False
    regions = procs[0]["regions"]
    heaps = {}
    for kv in got:
        g = region_at(regions, int(kv["block"], 16))
        if g and int(g["start"], 16) % (64 << 20) == 0:
            heaps[int(g["start"], 16)] = g
    # an arena whose heap starts where the one below reserved its 64 MiB
    # to: right above that one's PROT_NONE rest
    above = [g for a, g in heaps.items() if a - (64 << 20) in heaps]
    if not above:
        return None
    aligned = fsk.at_dicts(r.out, "aligned")
    if check("aligned.ran", len(aligned) == 1, r.out[-300:]):
        g = region_at(regions, int(aligned[0]["stack"], 16))
        check("aligned.thread_stack", g and g["kind"] == "thread_stack" and int(g["start"], 16) % (64 << 20) == 0,
              g and (g["start"], g["end"], g["kind"]))
    stacks = [region_at(regions, int(kv["stack"], 16)) for kv in got]
    check("stacks", all(g and g["kind"] == "thread_stack" for g in stacks),
          [(g and (g["start"], g["kind"])) for g in stacks])
    check("arenas", all(g["kind"] == "anon" for g in heaps.values()),
          [(g["start"], g["end"], g["kind"]) for g in heaps.values()])
    fsk.check_clean("clean", procs)
    return True


def main():
    fsk.require(fsk.prog("arenas"))
    for _ in range(8):
        done = attempt()
        if done is not None:
            return
    check("adjacent", False, "no run had two arenas next to each other")


if __name__ == "__main__":
    try:
        main()
    finally:
        fsk.finish()
