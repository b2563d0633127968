#!/usr/bin/env python3
"""A fork child whose program frames its parent or an earlier sibling
already unwound takes its stacks without learning a rule.

Our walk by the rules (preload/unwind_cache.c) learns the rule of each
return address once per stack group (from the object's unwind table, or
from one libunwind step where the table says something it does not
follow): the table is shared memory, so what a child learns its parent
and its later siblings know. Our own frames are left out of the walk (it
starts at the program's frame), so the call sites of our hooks, which the
parent never runs on the child's side (fork's child branch, a child's
first malloc), need no rule. tests/progs/unwind_child forks each round,
parent and child then allocate through the same frames, the child also
through a function only children call, and _exits.
The library counts the rules each process learnt (FORKSCOPE_UNWIND_CHECK=2:
a NOTE at exit). From the second round on, no child may learn one; the
first child, whose frames nobody had unwound yet, must (or the check could
not fail). With a rules table of its own in each process, every child
learnt child_only's frames again."""
import glob
import os
import re
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402

ROUNDS = 4
LEARNT = re.compile(rb"unwind check: \d+ stacks compared, \d+ differed, (\d+) rules learnt "
                    rb"\((\d+) of them by libunwind's step\)")


def learnt(r):
    """[(rules learnt, of them by libunwind)] of the program's children in
    fork order, from their NOTEs; (-1, -1) where a child has none."""
    out = []
    for d in fsk.at_dicts(r.out, "child"):
        data = b"".join(open(p, "rb").read()
                        for p in glob.glob(os.path.join(r.trace, "%d.*.fst" % fsk.num(d["pid"]))))
        ms = list(LEARNT.finditer(data))
        out.append((int(ms[-1].group(1)), int(ms[-1].group(2))) if ms else (-1, -1))
    return out


def main():
    fsk.require(fsk.prog("unwind_child"))
    r = fsk.run_traced([fsk.prog("unwind_child"), str(ROUNDS)], timeout=120, cwd=fsk.tmpdir(),
                       env={"FORKSCOPE_UNWIND_CHECK": "2"})
    if check("ran", r.rc == 0, r.describe()):
        got = learnt(r)
        if check("children", len(got) == ROUNDS and all(n >= 0 for n, _ in got),
                 "%d children printed, want %d; (learnt, by libunwind) %r" % (len(got), ROUNDS, got)):
            fsk.note("rules learnt child by child (of them by libunwind): %r" % got)
            check("first-child-learns", got[0][0] > 0,
                  "the first child learnt no rule: the check below could not fail")
            check("later-children-none", all(n == 0 for n, _ in got[1:]),
                  "children of later rounds learnt %r rules" % [n for n, _ in got[1:]])
    fsk.finish()


if __name__ == "__main__":
    main()
