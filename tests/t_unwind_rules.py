#!/usr/bin/env python3
"""Stacks walked by the learnt rules of return addresses
(preload/unwind_cache.c) are exactly libunwind's.

tests/progs/unwind_rules allocates from stacks made to trip such a walk:
a frame that realigns its stack (its rsp + c rule holds once, then not),
DRAP frames, a leaf under 1 to 4 frames of two functions in turn (walks
that join the last one at another position), stacks cut at 32 frames
from a recursion 40 to 43 deep, two threads at once, and a frame with no
unwind information (never learnt: unw_backtrace takes such stacks). It prints the
bytes each chain of its own functions allocated; `forkscope export
--format collapsed` must give exactly those chains and bytes (with the
normal and the strict library).

FORKSCOPE_UNWIND_CHECK=1 makes the library compare each walk with
unw_backtrace and say at exit, in a NOTE record, how many it compared and
how many differed. That must be some and none for unwind_rules,
tests/progs/stack_cache (stale frames, signal frames, longjmp, 80
threads, a fork child), gcc -O2 (cc1 takes hundreds of thousands of
stacks) and python3. A walk that ignored the rbp of the frame it joins
at, or trusted rsp + c where the two rules disagree, fails both parts."""
import glob
import os
import re
import shutil
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check  # noqa: E402
from cgen import gen_c  # noqa: E402

PROG_FUNCS = {"main", "thread_main", "case_realign", "case_drap", "case_shift", "case_deep",
              "pad", "realigned", "drap_fn", "shift_run", "s_a", "s_b", "down", "leaf",
              "case_nocfi", "nocfi_fn", "nocfi_call"}
CHECK_ENV = {"FORKSCOPE_UNWIND_CHECK": "1"}
NOTE = re.compile(rb"unwind check: (\d+) stacks compared, (\d+) differed")
FIRST = re.compile(rb"unwind check: first difference: [ -~]*")


def program_chain(frames):
    """The frames from the outermost of the program's own; None when a
    foreign frame sits among them (a stack the program never had)."""
    first = [i for i, f in enumerate(frames) if f in PROG_FUNCS]
    if not first:
        return None
    chain = frames[first[0]:]
    if any(f not in PROG_FUNCS for f in chain):
        return None
    return ";".join(chain)


def chains_case(tag, lib=None):
    r = fsk.run_traced([fsk.prog("unwind_rules")], timeout=120, cwd=fsk.tmpdir(), lib=lib)
    if not check(tag + ".ran", r.rc == 0 and not r.timed_out, r.describe()):
        return
    got = fsk.collapsed(r.trace)
    if not check(tag + ".export", got is not None, "export failed"):
        return
    want = fsk.expected_chains(r.out)
    if not check(tag + ".one-process", len(want) == 1 and set(want) <= set(got),
                 "expected pids %r, trace pids %r" % (sorted(want), sorted(got))):
        return
    pid = next(iter(want))
    fsk.check_chains(tag, want[pid], got.get(pid, {}), "leaf".__eq__, program_chain)


def notes(trace):
    """[(stream file name, compared, differed, [first-difference notes])]."""
    out = []
    for path in sorted(glob.glob(os.path.join(trace, "*.fst"))):
        data = open(path, "rb").read()
        firsts = [m.group(0).decode() for m in FIRST.finditer(data)]
        for m in NOTE.finditer(data):
            out.append((os.path.basename(path), int(m.group(1)), int(m.group(2)), firsts))
    return out


def check_case(tag, argv, least, cwd=None, timeout=120):
    """Runs argv with the check on: some process compared at least `least`
    stacks, and no process found a difference."""
    r = fsk.run_traced(argv, timeout=timeout, cwd=cwd or fsk.tmpdir(), env=CHECK_ENV,
                       options=["-q"])
    if not check(tag + ".ran", r.rc == 0 and not r.timed_out, r.describe()):
        return
    found = notes(r.trace)
    fsk.note("%s: %r" % (tag, [(f, c, d) for f, c, d, _ in found]))
    check(tag + ".compared", found and max(c for _, c, _, _ in found) >= least,
          "want a process with at least %d stacks compared: %r" % (least, found))
    bad = [(f, c, d, firsts) for f, c, d, firsts in found if d or firsts]
    check(tag + ".none-differed", not bad, "walks that differ from unw_backtrace: %r" % bad)


def main():
    fsk.require(fsk.prog("unwind_rules"), fsk.prog("stack_cache"))
    chains_case("chains")
    chains_case("strict", lib=fsk.env("FSK_STRICT_LIB"))
    check_case("rules", [fsk.prog("unwind_rules")], 1000)
    check_case("cache", [fsk.prog("stack_cache")], 1000)
    cc = shutil.which("gcc")
    if cc:
        d = fsk.tmpdir()
        src = os.path.join(d, "rules_big.c")
        gen_c(src, 150)
        check_case("gcc", [cc, "-O2", "-c", src, "-o", os.path.join(d, "rules_big.o")], 10000,
                   timeout=300)
    else:
        fsk.note("gcc not installed: its case is left out")
    py = shutil.which("python3")
    if py:
        check_case("python3", [py, "-c", "d = {}\nfor i in range(20000):\n d[i] = [i] * 3\nprint(len(d))"],
                   100)
    fsk.finish()


if __name__ == "__main__":
    main()
