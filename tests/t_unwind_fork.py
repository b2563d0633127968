#!/usr/bin/env python3
"""A fork child whose parent had another thread inside libunwind must not
hang.

libunwind's locks are not fork-safe: a child forked while another thread
held one (its global cache's, taken for the whole of a step that misses
it) waited forever at its own next step. Every call into libunwind is now
counted while it runs; a fork child that inherits a count above 0 does
not call libunwind, takes the stacks it can walk by the rules already
learnt, and says so once in a NOTE. tests/progs/unwind_fork has two
threads whose captures keep calling libunwind while the main thread forks
300 times; each child allocates and exits, and the parent kills a child
that has not ended within 2 s. No child may hang, the program's output
must be what it prints untraced, every stream must be clean, and some
child must have met the case (its NOTE), or the run could not fail: a run
where none did is repeated, up to four times. The library from before
hung 1 or 2 children in 200 forks."""
import glob
import os
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402

NOTE = b"forked while another thread was inside libunwind"


def main():
    prog = fsk.prog("unwind_fork")
    fsk.require(prog)
    plain = fsk.run_plain([prog, "300"], timeout=600)
    check("untraced", plain.rc == 0 and "hung=0" in plain.out, plain.describe())
    met = []
    for _ in range(4):
        r = fsk.run_traced([prog, "300"], timeout=600, options=["-q"])
        if not check("ran", r.rc == 0 and not r.timed_out, r.describe()):
            break
        check("no-child-hung", r.out == plain.out, "traced:\n%s\nuntraced:\n%s" % (r.out, plain.out))
        met.append(sum(open(p, "rb").read().count(NOTE) for p in glob.glob(os.path.join(r.trace, "*.fst"))))
        if met[-1]:
            doc, why = fsk.load_report(r.trace)
            if check("report", doc is not None, why):
                check("streams-clean", all(q["stream_state"] == "clean" for q in fsk.processes(doc)),
                      [(q["pid"], q["stream_state"]) for q in fsk.processes(doc) if q["stream_state"] != "clean"])
            break
    fsk.note("children that forked while a thread was inside libunwind, run by run: %r" % met)
    check("case-met", met and met[-1] > 0,
          "in %d runs of 300 forks no child was forked while a thread was inside libunwind" % len(met))


if __name__ == "__main__":
    try:
        main()
    finally:
        fsk.finish()
