#!/usr/bin/env python3
"""A young process that starts threads and joins them once old, having
recorded nothing in between, must not hang (tests/progs/young_join).

glibc frees a joined thread's TLS from the dynamic linker while it holds
the lock of its stack cache (once the cache passes 40 MiB: eight threads
of 8 MiB). That free is the process's first record after its youth, and
the flusher it would start needs pthread_create, which takes the same
lock: the flusher waits until a call that does not come from the dynamic
linker (preload/init.c, called_by_ldso). Run as a new image and as a fork
child, with stacks and events only; each run must end with the program's
line and exit status 0, with its eight TLS callocs and the frees made
under that lock in the report, nothing dropped and clean streams."""
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402

THREADS = 8


def main():
    prog = fsk.prog("young_join")
    fsk.require(prog)
    for how in ("image", "fork"):
        for depth in ("32", "0"):
            tag = "%s.depth%s" % (how, depth)
            argv = [prog, str(THREADS)] + (["fork"] if how == "fork" else [])
            r = fsk.run_traced(argv, timeout=60, options=("--stack-depth", depth))
            if not check(tag + ".ran", r.rc == 0 and not r.timed_out and
                         "@ joined threads=%d" % THREADS in r.out, r.describe()):
                continue
            procs = fsk.report_procs(tag, r)
            if procs is None:
                continue
            worker = procs[-1] if procs else None
            # each thread's TLS vector is a calloc of the dynamic linker's;
            # the frees are those made under the stack cache's lock
            m = (worker or {}).get("malloc") or {}
            check(tag + ".recorded", worker is not None and worker["exit"] == {"kind": "exited", "code": 0}
                  and m.get("calls", 0) >= THREADS and m.get("frees", 0) >= 1 and worker["dropped"] == 0,
                  worker and (worker["exit"], m, worker["dropped"]))
            fsk.check_clean(tag + ".clean", procs)


if __name__ == "__main__":
    try:
        main()
    finally:
        fsk.finish()
