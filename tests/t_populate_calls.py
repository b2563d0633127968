#!/usr/bin/env python3
"""A traced fork copies in the pages of ours each side writes in a few
system calls, and still does where a sandbox refuses the call that
batches them.

Right after a fork, each side populates the pages of ours it is about to
write (MADV_POPULATE_WRITE) and the child the code pages it is about to
run (MADV_POPULATE_READ): a fault costs 12 to 16 us on the VMs this was
measured on. These pages lie in a dozen separate runs, and a system call
costs ~1 us here before any work: one madvise a run made 25 calls a fork.
process_madvise(2) on the calling process takes any advice since Linux
6.13 and PIDFD_SELF (no pidfd to open) since 6.14, so a list of runs now
goes in one call (preload/sys.c, populate_runs; preload/proc.c,
fork_populate_code); where the kernel or a seccomp filter refuses it, one
madvise a run, as before.

tests/bench/fork_bench 50 16 under the runner, address-space
randomization off where setarch is, as root and as nobody:
  - strace counts the madvise and process_madvise calls of the traced
    tree: at most 10 a fork where this kernel takes process_madvise on
    the calling process (`deny_call probe` says whether it does;
    measured 6.3, 25 a fork before), at least one a fork, none failing;
    where it does not, process_madvise is tried once;
  - under tests/progs/deny_call (a seccomp filter failing process_madvise
    with EPERM, as a container's default profile does for a call it does
    not list) the library falls back: more than 20 madvise calls a fork
    (measured 29), process_madvise tried once, the program exits 0;
  - the page faults of the program (tests/progs/fault_count) are the same
    with the call allowed and refused (measured 1 611 both), and more
    than 10 a fork fewer than with FORKSCOPE_POPULATE=0 (3 324), so that
    the equality says the fallback populates what the batched call did."""
import os
import re
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402

FORKS = 50
BATCHED_MAX = 10     # madvise-family calls a fork, batched
FALLBACK_MIN = 20    # madvise calls a fork, one a run
POPULATED_SAVES = 10  # faults a fork populating saves, at least
SLACK = 2 * FORKS    # faults, allowed against refused, randomization on


def calls(tag, wrap):
    """(madvise calls, process_madvise calls, of which failed) of the
    traced fork_bench, by strace; None when it did not run."""
    out = fsk.fresh_dir(tag + ".strace")
    st = ["strace", "-f", "-qq", "-e", "trace=madvise,process_madvise", "-o", out]
    # the runner's leak check cannot run under ptrace
    env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"}
    r = fsk.run_traced([fsk.bench_prog("fork_bench"), str(FORKS), "16"], wrap=tuple(wrap) + tuple(st),
                       options=["-q"], env=env)
    if not check(tag + ".ran", r.rc == 0, r.describe()):
        return None
    try:
        with open(out) as f:
            lines = f.read().splitlines()
    except OSError as e:
        check(tag + ".strace-output", False, str(e))
        return None
    mad = sum(1 for ln in lines if re.search(r"\bmadvise\(", ln) and "process_madvise(" not in ln)
    pm = [ln for ln in lines if "process_madvise(" in ln]
    return mad, len(pm), sum(1 for ln in pm if re.search(r"= -1 ", ln))


def faults(tag, wrap, env=None):
    """The page faults of the traced fork_bench (fault_count), None when
    it failed, -1 where the counter is not allowed."""
    r = fsk.run_traced([fsk.prog("fault_count"), fsk.bench_prog("fork_bench"), str(FORKS), "16"],
                       wrap=wrap, options=["-q"], env=env)
    return fsk.at_num(tag, r, r.err, "fault_count", "faults")


def main():
    deny = fsk.prog("deny_call")
    fsk.require(deny, fsk.prog("fault_count"), fsk.bench_prog("fork_bench"))
    if not fsk.kernel_populates():
        fsk.skip("kernel before 5.14: no MADV_POPULATE_READ/WRITE, nothing is populated")
    probe = fsk.run_plain([deny, "process_madvise", "true"])
    if probe.rc == 2 and "seccomp:" in probe.err:
        fsk.skip("seccomp filters cannot be installed here: " + probe.err.strip()[-200:])
    kv = fsk.at_dicts(fsk.run_plain([deny, "probe"]).out, "deny_call")
    batches = bool(kv) and kv[0].get("process_madvise") == "1"
    if not batches:
        fsk.note("this kernel refuses process_madvise on the calling process (before 6.14): "
                 "one madvise a run, the fallback alone is checked")
    norand = ("setarch", "-R") if fsk.tool("setarch") else ()
    slack = 0 if norand else SLACK
    for tag, wrap in fsk.user_runs():
        wrap = tuple(wrap) + norand
        denied = wrap + (deny, "process_madvise")
        if fsk.tool("strace"):
            got = calls(tag + ".allowed", wrap)
            if got:
                mad, pm, failed = got
                why = "%d madvise, %d process_madvise (%d failed) for %d forks" % (mad, pm, failed, FORKS)
                fsk.note("%s, allowed: %s" % (tag, why))
                if batches:
                    check(tag + ".allowed.batched", mad + pm <= BATCHED_MAX * FORKS and pm >= FORKS
                          and failed == 0, why)
                else:
                    check(tag + ".allowed.one-probe", pm <= 1, why)
            got = calls(tag + ".denied", denied)
            if got:
                mad, pm, failed = got
                why = "%d madvise, %d process_madvise (%d failed) for %d forks" % (mad, pm, failed, FORKS)
                fsk.note("%s, refused: %s" % (tag, why))
                check(tag + ".denied.fallback", mad >= FALLBACK_MIN * FORKS and pm == failed and pm <= 1, why)
        else:
            fsk.note("no strace: the calls were not counted")
        allowed = faults(tag + ".faults.allowed", wrap)
        refused = faults(tag + ".faults.denied", denied)
        off = faults(tag + ".faults.off", wrap, {"FORKSCOPE_POPULATE": "0"})
        if None in (allowed, refused, off):
            continue
        if -1 in (allowed, refused, off):
            fsk.note("%s: no page-fault counter here (perf_event_open refused): not checked" % tag)
            continue
        why = "faults: %d allowed, %d refused, %d without populating" % (allowed, refused, off)
        fsk.note(tag + ": " + why)
        check(tag + ".faults.same", abs(allowed - refused) <= slack, why)
        check(tag + ".faults.populated", off >= allowed + POPULATED_SAVES * FORKS, why)
    fsk.finish()


if __name__ == "__main__":
    main()
