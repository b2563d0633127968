#!/usr/bin/env python3
"""A traced fork costs each side about the page faults an untraced one
does: right after fork, each side copies in the pages of ours it writes at
every fork, and the child maps our code and the pages of libc and the
vDSO it calls for us, a few madvise(MADV_POPULATE_*) calls instead of a
fault each (preload/proc.c, fork_populate; preload/sys.c). A fault costs
12 to 16 us on the VMs this was measured on, a populated page ~5.
tests/progs/child_faults forks 50 children that _exit at once, then 50
that first write 16 heap pages their parent wrote (a copy-on-write fault
each, which the traced child's fault sampler records), and counts the
page faults of the whole tree with a software counter the children
inherit (user-mode faults: the populating is not counted, what it saves
is). Untraced, traced, and traced with FORKSCOPE_POPULATE=0 (the same
tracer without populating), with address-space randomization off (where
setarch is): traced takes at most 3 faults a fork more than untraced (6
with randomization on) (the pages it writes and calls, listed by hand, were ~7 a
child before libc's were), and at least 10 a fork fewer than without
populating (~30).
Events only and with stacks, as root and as nobody."""
import os
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402

FORKS = 50
SHAPES = ((0, "exit"), (16, "cow16"))  # pages each child writes


def faults(tag, r):
    return fsk.at_num(tag, r, r.out, "child_faults", "faults")


def main():
    prog = fsk.prog("child_faults")
    fsk.require(prog)
    if not fsk.kernel_populates():
        fsk.skip("kernel before 5.14: no MADV_POPULATE_*, forks are not populated")
    # address-space layout randomization off, where setarch can: the counts
    # are then the same from run to run (with it they vary by ~2 a fork)
    norand = ["setarch", "-R"] if fsk.tool("setarch") else []
    slack = 3 if norand else 6
    for tag, wrap in fsk.user_runs():
        wrap = tuple(wrap) + tuple(norand)
        for pages, shape in SHAPES:
            argv = [prog, str(FORKS), str(pages)]
            base = faults("%s.%s.untraced" % (tag, shape), fsk.run_plain(argv, wrap=wrap))
            if base is None:
                continue
            if base < 0:
                fsk.note("%s: no page-fault counter here (perf_event_open refused): not checked" % tag)
                break
            for mode, opts in (("events", ["--stack-depth", "0"]), ("stacks", [])):
                t = "%s.%s.%s" % (tag, shape, mode)
                on = faults(t + ".traced", fsk.run_traced(argv, wrap=wrap, options=opts))
                off = faults(t + ".unpopulated", fsk.run_traced(argv, wrap=wrap, options=opts,
                                                                env={"FORKSCOPE_POPULATE": "0"}))
                if on is None or off is None:
                    continue
                why = "%d forks, %d pages written: %d faults untraced, %d traced, %d traced without " \
                      "populating" % (FORKS, pages, base, on, off)
                check(t + ".near-untraced", 0 <= on <= base + slack * FORKS, why)
                check(t + ".populating-saves", on <= off - 10 * FORKS, why)
    fsk.finish()


if __name__ == "__main__":
    main()
