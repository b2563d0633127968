"""The per-thread stack cache (preload/unwind_cache.c) must never return a
stale stack: tests/progs/stack_cache allocates from stacks that share their
top frame (same ip, sp and often rbp) with the stack the cache has just
learnt: f() under a() or b(), recursion entered through a twin, a leaf at
the same address under fewer frames (alloca) with the old return addresses
left in place, a signal handler, longjmp, two threads, 80 threads two at a
time (more than the cache has blocks) and a fork child. It prints the
bytes each chain of its own functions allocated; `forkscope export
--format collapsed` of the run must give exactly those chains and bytes,
per process, and nothing else ending in one of its allocating functions. Run with the normal and the strict library (a hook that
allocates aborts). A cache that checked only the top frame fails ab, rec,
jump, threads and fork; one that checked return addresses but not the
saved rbp fails vla."""
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check, num  # noqa: E402

PROG_FUNCS = {"main", "thread_main", "case_ab", "case_rec", "case_vla", "case_signal", "case_jump",
              "a", "b", "f", "rec", "rec_w", "leafv", "vr", "trap1", "trap2", "on_ill",
              "ja", "jb", "churn_main"}
ALLOC_FUNCS = {"f", "rec", "rec_w", "leafv", "on_ill"}


def program_chain(frames):
    """The frames from the outermost of the program's own, with the signal
    trampoline under on_ill left out; None when another foreign frame sits
    among them (a stack the program never had)."""
    first = [i for i, f in enumerate(frames) if f in PROG_FUNCS]
    if not first:
        return None
    chain = list(frames[first[0]:])
    for i, f in enumerate(chain):
        if f not in PROG_FUNCS:
            if i + 2 != len(chain) or chain[-1] != "on_ill":
                return None
    return ";".join(f for f in chain if f in PROG_FUNCS)


def check_run(tag, r):
    if not check(tag + ".ran", r.rc == 0 and not r.timed_out, r.describe()):
        return None
    got = fsk.collapsed(r.trace)
    if not check(tag + ".export", got is not None, "export failed"):
        return None
    want = fsk.expected_chains(r.out)
    check(tag + ".two-processes", len(want) == 2 and set(want) <= set(got),
          "expected pids %r, trace pids %r" % (sorted(want), sorted(got)))
    for role, pid in zip(("parent", "child"), sorted(want, key=lambda p: len(want[p]), reverse=True)):
        fsk.check_chains("%s.%s" % (tag, role), want[pid], got.get(pid, {}), ALLOC_FUNCS.__contains__,
                         program_chain)


def main():
    exe = fsk.prog("stack_cache")
    fsk.require(exe)
    check_run("cache", fsk.run_traced([exe], cwd=fsk.tmpdir(), timeout=120))
    check_run("strict", fsk.run_traced([exe], cwd=fsk.tmpdir(), timeout=120,
                                       lib=fsk.env("FSK_STRICT_LIB")))
    fsk.finish()


main()
