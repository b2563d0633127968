#!/usr/bin/env python3
"""A program with its own allocator that maps memory while holding its
lock must not hang (tests/progs/own_alloc).

rustc links jemalloc, whose malloc then serves glibc and the dynamic
linker too, and which maps a new arena's memory while it holds its arenas
lock. When such an mmap was a process's first record after its youth
(preload/init.c), the hook started the flusher, pthread_create called
jemalloc's calloc for the new thread's TLS, and the program waited on
that lock for ever: rustc hung in about 1 run of 4 under forkscope, with
the library of this session's start too. Memory-mapping hooks now never
start the flusher (their records are written through).

own_alloc defines malloc and the rest itself, maps 1 MiB chunks with mmap
under a plain mutex, and maps its first chunks after the youth has ended.
Run as a new image and as a fork child, with stacks and events only: each
run must end with the program's line and status 0, with the chunks' mmaps
recorded (at least the 3 it maps after its youth, at most as many as it
says it mapped, and region changes caused by them in the report),
nothing dropped and clean streams.
With the previous library all four runs hang."""
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402


def main():
    prog = fsk.prog("own_alloc")
    fsk.require(prog)
    for how in ("image", "fork"):
        for depth in ("32", "0"):
            tag = "%s.depth%s" % (how, depth)
            argv = [prog] + (["fork"] if how == "fork" else [])
            r = fsk.run_traced(argv, timeout=60, options=("--stack-depth", depth))
            got = fsk.at_dicts(r.out, "own_alloc")
            if not check(tag + ".ran", r.rc == 0 and not r.timed_out and len(got) == 1, r.describe()):
                continue
            chunks = fsk.num(got[0]["chunks"])
            procs = fsk.report_procs(tag, r)
            if procs is None:
                continue
            worker = procs[-1] if procs else None
            # run() maps at least 3 chunks itself (3 MiB); a fork child's
            # count includes what its parent mapped before the fork
            mapped = [e for e in (worker or {}).get("region_events", []) if e["cause"] == "mmap"]
            check(tag + ".recorded", worker is not None and worker["exit"] == {"kind": "exited", "code": 0}
                  and chunks >= worker["maps"] >= 3 and mapped and worker["dropped"] == 0,
                  worker and (worker["exit"], worker["maps"], chunks, len(mapped), worker["dropped"]))
            fsk.check_clean(tag + ".clean", procs)


if __name__ == "__main__":
    try:
        main()
    finally:
        fsk.finish()
