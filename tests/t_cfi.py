#!/usr/bin/env python3
"""The unwind rules read straight from the objects' unwind tables
(preload/cfi.c) are libunwind's.

The walk by the rules (preload/unwind_cache.c) learns the rule of each
return address from the FDE that covers it: a binary search of the
object's .eh_frame_hdr and a run of its CFA program up to the call. Only
where the table says something that reader does not follow (a CFA by
expression, gcc's DRAP; no FDE at all, where libunwind guesses from rbp;
a signal frame) does one libunwind step decide, as every rule was learnt
before. FORKSCOPE_UNWIND_CHECK=3 makes the library take that step for
every rule too and compare what the two give for the frame at hand (its
CFA, where its caller's rbp is, or that the stack ends there); the NOTE
at exit says how many were compared, how many differed and how many the
tables left to libunwind.

Run over tests/progs/unwind_rules (realigned and DRAP frames, a frame
with no unwind information, recursion, two threads), tests/progs/
stack_cache (signal frames, longjmp, 80 threads, a fork child), gcc -O2
(cc1: thousands of rules, long CFA programs with remember/restore_state),
a C++ program, python3, bash running a pipeline, and make -j2
of a small project (every process of the build): rules compared in each,
none differed, the frames of unwind_rules that the tables cannot give
(DRAP, no FDE) left to libunwind, and in cc1 nearly every rule from the
tables (libunwind set up in no image that needs none of its rules).
Each program's status, and the output of those that print no pid, are
the untraced ones."""
import glob
import os
import re
import shutil
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check  # noqa: E402
from cgen import gen_c  # noqa: E402

NOTE = re.compile(rb"unwind check: (\d+) rules from the unwind tables compared with libunwind's step, "
                  rb"(\d+) differed, (\d+) left to libunwind( \(first: [ -~]*\))?")
ENV = {"FORKSCOPE_UNWIND_CHECK": "3"}


def counts(trace):
    """{stream file: (compared, differed, left, first difference)}."""
    out = {}
    for path in sorted(glob.glob(os.path.join(trace, "*.fst"))):
        for m in NOTE.finditer(open(path, "rb").read()):
            out[os.path.basename(path)] = (int(m.group(1)), int(m.group(2)), int(m.group(3)),
                                           (m.group(4) or b"").decode())
    return out


def case(tag, argv, least, cwd=None, timeout=300, left_least=0, same_output=True):
    """argv traced with the comparison on: its output and status as
    untraced, at least `least` rules compared in all, none differed, at
    least `left_least` left to libunwind. Returns the counts."""
    cwd = cwd or fsk.tmpdir()
    plain = fsk.run_plain(argv, timeout=timeout, cwd=cwd)
    r = fsk.run_traced(argv, timeout=timeout, cwd=cwd, env=ENV, options=["-q"])
    if not check(tag + ".ran", r.rc == plain.rc and not r.timed_out, r.describe()):
        return {}
    if same_output:
        check(tag + ".same-output", r.out == plain.out, "traced:\n%s\nuntraced:\n%s" % (r.out, plain.out))
    got = counts(r.trace)
    total = sum(c for c, _, _, _ in got.values())
    fsk.note("%s: (compared, differed, left) per stream: %r" % (tag, {k: v[:3] for k, v in got.items()}))
    check(tag + ".compared", total >= least, "want at least %d rules compared: %r" % (least, got))
    bad = {k: v for k, v in got.items() if v[1]}
    check(tag + ".none-differed", not bad, "rules from the tables that differ from libunwind's: %r" % bad)
    if left_least:
        left = sum(v[2] for v in got.values())
        check(tag + ".left-to-libunwind", left >= left_least,
              "want at least %d rules left to libunwind (the frames the tables cannot give): %r"
              % (left_least, got))
    return got


def main():
    fsk.require(fsk.prog("unwind_rules"), fsk.prog("stack_cache"))
    # DRAP frames and nocfi_call: their rules are libunwind's
    # (both print their pids: their chains are t_unwind_rules.py's)
    case("rules", [fsk.prog("unwind_rules")], 10, left_least=2, same_output=False)
    case("cache", [fsk.prog("stack_cache")], 10, same_output=False)
    cc = shutil.which("gcc")
    if cc:
        d = fsk.tmpdir()
        src = os.path.join(d, "cfi_big.c")
        gen_c(src, 150)
        got = case("gcc", [cc, "-O2", "-c", src, "-o", os.path.join(d, "cfi_big.o")], 1000, cwd=d)
        cc1 = [v for k, v in got.items() if v[0] >= 1000]
        check("gcc.cc1-from-tables", cc1 and all(v[2] * 100 <= v[0] for v in cc1),
              "want a process with 1000 rules or more, under 1%% of them left to libunwind: %r" % got)
        mk = os.path.join(fsk.tmpdir(), "mkproj")
        shutil.copytree(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mkproj"), mk)
        case("make", ["make", "-s", "-B", "-j2", "-C", mk], 1000)
    else:
        fsk.note("gcc not installed: its cases are left out")
    if os.path.exists(fsk.prog("cxx_alloc")):
        case("cxx", [fsk.prog("cxx_alloc")], 5)
    py = shutil.which("python3")
    if py:
        case("python3", [py, "-c", "import json\nd = {i: [i] * 3 for i in range(20000)}\n"
                                   "print(len(json.dumps({str(k): v for k, v in d.items()})))"], 100)
    case("bash", ["bash", "-c", "for i in 1 2 3; do printf '%s\\n' $i x y | sort | uniq -c; done"], 50)
    fsk.finish()


if __name__ == "__main__":
    main()
