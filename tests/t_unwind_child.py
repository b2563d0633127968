#!/usr/bin/env python3
"""A fork child whose program frames its parent or an earlier sibling
already unwound takes its stacks without libunwind searching an unwind
table.

libunwind learns the rule of each return address the first time a thread
meets it: a search of the unwind tables, with signals masked around its
locks (rt_sigprocmask calls whose backtrace goes through libunwind). Our
walk by the rules (preload/unwind_cache.c) asks libunwind for the rule of
each return address once per stack group: the table is shared memory, so
what a child learns its parent and its later siblings know. unw_backtrace
is what is left when the rules cannot walk, and a fork child inherits what
its parent's libunwind learnt. Our own frames are left out of what
libunwind steps through (the capture starts at the program's frame), so
the call sites of our hooks, which the parent never runs on the child's
side (fork's child branch, a child's first malloc), cost no search.
tests/progs/unwind_child forks each round, parent and child then allocate
through the same frames, the child also through a function only children
call, and the child marks the end of that part with getppid before it
_exits. Under `strace -f -k`, from the second round on, no child may make
an rt_sigprocmask call under unw_backtrace or under rule_learn before its
marker (our stack cache learning a stack the child repeats steps with
unw_step, which masks signals too: not counted); the first child, whose
frames nobody had unwound yet, shows what such a call looks like (it must
make some, or the check could not fail). With a rules table of its own in
each process, every child learnt child_only's frames again."""
import os
import re
import shutil
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402

ROUNDS = 4


def children_calls(path):
    """{pid: [sigprocmask calls under unw_backtrace or rule_learn before
    its getppid, saw getppid]} for every pid of the strace -f -k output at
    path, in order of first appearance. Those of our stack cache learning a
    stack a child repeats (unw_step, cache_walk) are not counted: they are
    no search."""
    out, cur, marked = {}, None, set()
    calls = []  # [pid, under unw_backtrace, under cache_walk], in file order
    for line in open(path, errors="replace"):
        m = re.match(r"^(\d+) +(\w+)\(", line)
        if m:
            pid, name = int(m.group(1)), m.group(2)
            out.setdefault(pid, [0, False])
            cur = None
            if name == "getppid":
                marked.add(pid)
                out[pid][1] = True
            elif name == "rt_sigprocmask" and pid not in marked:
                cur = pid
                calls.append([pid, False, False])
            continue
        if cur is not None and line.startswith(" > "):
            calls[-1][1] |= "(unw_backtrace+" in line or "(rule_learn+" in line
            calls[-1][2] |= "(cache_walk" in line
    for pid, trace, walk in calls:
        out[pid][0] += trace and not walk
    return out


def main():
    fsk.require(fsk.prog("unwind_child"))
    if not shutil.which("strace"):
        fsk.skip("strace is not installed")
    log = os.path.join(fsk.tmpdir(), "unwind_child.strace")
    # LeakSanitizer cannot run under ptrace: the runner's leak check is off here
    asan = os.environ.get("ASAN_OPTIONS", "").replace("detect_leaks=1", "detect_leaks=0")
    r = fsk.run_traced([fsk.prog("unwind_child"), str(ROUNDS)], timeout=120, cwd=fsk.tmpdir(),
                       env={"ASAN_OPTIONS": asan},
                       wrap=("strace", "-f", "-k", "-qq", "-o", log,
                             "-e", "trace=rt_sigprocmask,getppid,clone,clone3,fork"))
    if not check("ran", r.rc == 0, r.describe()):
        fsk.finish()
        return
    if not check("strace-k", any(line.startswith(" > ") for line in open(log, errors="replace")),
                 "strace printed no backtraces (-k unsupported?)"):
        fsk.finish()
        return
    # the program's children are the last to reach a getppid (the runner
    # calls it too)
    kids = [(pid, v) for pid, v in children_calls(log).items() if v[1]][-ROUNDS:]
    if not check("children", len(kids) == ROUNDS, "%d processes reached the marker, want %d: %r"
                 % (len(kids), ROUNDS, kids)):
        fsk.finish()
        return
    first, later = kids[0][1][0], [v[0] for _, v in kids[1:]]
    fsk.note("libunwind rt_sigprocmask calls before the marker, child by child: %r" % ([first] + later,))
    check("first-child-searches", first > 0,
          "the first child made no rt_sigprocmask call under unw_backtrace or rule_learn before its "
          "marker: the check below could not fail")
    check("later-children-none", all(n == 0 for n in later),
          "children of later rounds made %r rt_sigprocmask calls under unw_backtrace or rule_learn "
          "before their marker" % later)
    fsk.finish()


if __name__ == "__main__":
    main()
