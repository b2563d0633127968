#!/usr/bin/env python3
"""A fork child whose program frames its parent or an earlier sibling
already unwound takes its stacks without libunwind searching an unwind
table.

libunwind learns the rule of each return address the first time a thread
meets it: a search of the unwind tables (dl_iterate_phdr with its own
callback). Our walk by the rules (preload/unwind_cache.c) asks libunwind
for the rule of each return address once per stack group: the table is
shared memory, so what a child learns its parent and its later siblings
know. unw_backtrace is what is left when the rules cannot walk, and a fork
child inherits what its parent's libunwind learnt. Our own frames are left
out of what libunwind steps through (the capture starts at the program's
frame), so the call sites of our hooks, which the parent never runs on the
child's side (fork's child branch, a child's first malloc), cost no
search. tests/progs/unwind_child forks each round, parent and child then
allocate through the same frames, the child also through a function only
children call, and _exits.

The library counts libunwind's searches (FORKSCOPE_UNWIND_CHECK=2: a NOTE
at exit; the libunwind archive linked into it calls dl_iterate_phdr
through a wrapper), apart from those of our stack cache learning a stack
the child repeats (unw_step after the capture, not counted here). From the
second round on, no child may search; the first child, whose frames nobody
had unwound yet, must (or the check could not fail). With a rules table of
its own in each process, every child learnt child_only's frames again.

Where the library was linked with the system's libunwind.so (no network
to build the archive), the searches are seen as that build makes them:
under `strace -f -k`, rt_sigprocmask calls (Debian's libunwind masks
signals around its locks) under unw_backtrace or rule_step (the one step
that learns a rule), before the child's marker (a getppid)."""
import glob
import os
import re
import shutil
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402

ROUNDS = 4
SEARCHES = re.compile(rb"unwind check: \d+ stacks compared, \d+ differed, "
                      rb"(?:(\d+) unwind-table searches \(\+(\d+) by the stack cache\)"
                      rb"|(unwind-table searches not counted))")


def counted(r):
    """[(searches, by the stack cache)] of the program's children in fork
    order, from their NOTEs; None where the library does not count them."""
    out = []
    for d in fsk.at_dicts(r.out, "child"):
        data = b"".join(open(p, "rb").read()
                        for p in glob.glob(os.path.join(r.trace, "%d.*.fst" % fsk.num(d["pid"]))))
        ms = list(SEARCHES.finditer(data))
        if not ms:
            out.append((-1, -1))
        elif ms[-1].group(3):
            return None
        else:
            out.append((int(ms[-1].group(1)), int(ms[-1].group(2))))
    return out


def children_calls(path):
    """{pid: [sigprocmask calls under unw_backtrace or rule_step before
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
            calls[-1][1] |= "(unw_backtrace+" in line or "(rule_step+" in line
            calls[-1][2] |= "(cache_walk" in line
    for pid, trace, walk in calls:
        out[pid][0] += trace and not walk
    return out


def judge(first, later, what):
    fsk.note("%s, child by child: %r" % (what, [first] + later))
    check("first-child-searches", first > 0,
          "the first child made no %s: the check below could not fail" % what)
    check("later-children-none", all(n == 0 for n in later),
          "children of later rounds made %r %s" % (later, what))


def by_count():
    """True when the library counted the searches (and they were judged)."""
    r = fsk.run_traced([fsk.prog("unwind_child"), str(ROUNDS)], timeout=120, cwd=fsk.tmpdir(),
                       env={"FORKSCOPE_UNWIND_CHECK": "2"})
    if not check("ran", r.rc == 0, r.describe()):
        return True
    got = counted(r)
    if got is None:
        return False
    if not check("children", len(got) == ROUNDS and all(n >= 0 for n, _ in got),
                 "%d children printed, want %d; (searches, by the cache) %r" % (len(got), ROUNDS, got)):
        return True
    fsk.note("searches by the stack cache's learning (not judged): %r" % [c for _, c in got])
    judge(got[0][0], [n for n, _ in got[1:]], "unwind-table searches by libunwind")
    return True


def by_strace():
    if not shutil.which("strace"):
        fsk.skip("the library uses libunwind.so and strace is not installed")
    log = os.path.join(fsk.tmpdir(), "unwind_child.strace")
    # LeakSanitizer cannot run under ptrace: the runner's leak check is off here
    asan = os.environ.get("ASAN_OPTIONS", "").replace("detect_leaks=1", "detect_leaks=0")
    r = fsk.run_traced([fsk.prog("unwind_child"), str(ROUNDS)], timeout=120, cwd=fsk.tmpdir(),
                       env={"ASAN_OPTIONS": asan},
                       wrap=("strace", "-f", "-k", "-qq", "-o", log,
                             "-e", "trace=rt_sigprocmask,getppid,clone,clone3,fork"))
    if not check("strace.ran", r.rc == 0, r.describe()):
        return
    if not check("strace-k", any(line.startswith(" > ") for line in open(log, errors="replace")),
                 "strace printed no backtraces (-k unsupported?)"):
        return
    # the program's children are the last to reach a getppid (the runner
    # calls it too)
    kids = [(pid, v) for pid, v in children_calls(log).items() if v[1]][-ROUNDS:]
    if not check("strace.children", len(kids) == ROUNDS, "%d processes reached the marker, want %d: %r"
                 % (len(kids), ROUNDS, kids)):
        return
    judge(kids[0][1][0], [v[0] for _, v in kids[1:]],
          "rt_sigprocmask calls under unw_backtrace or rule_step before the marker")


def main():
    fsk.require(fsk.prog("unwind_child"))
    if not by_count():
        by_strace()
    fsk.finish()


if __name__ == "__main__":
    main()
