#!/usr/bin/env python3
"""Allocations made before forkscope's constructor ran (tests/progs/ctor_alloc).

A preloaded library's constructor runs after those of the libraries the
program needs, and theirs allocate: clang (LLVM's option objects) showed
2 241 frees of blocks the trace never saw allocated. The hooks now keep
such calls (as full records with their time, no stack) until the
constructor writes them out ahead of its START scan.

libctor_alloc's constructor makes 251 allocation calls (malloc, calloc,
posix_memalign, aligned_alloc) and 50 reallocs, and frees 50 of the
blocks; the program frees the rest. With stacks and events only, the
report must count those calls and reallocs, no unknown free, nothing
dropped, clean streams. With CTOR_ALLOC_N=5000 (25 001 calls) the buffer
for them overflows: the loss must be said (dropped records), the stream
stay clean and the program's output and status stay its own. Under
--sample-bytes nothing is kept (its weights start with the constructor).
With the previous library the counts miss all of the constructor's calls
(unknown frees: 201; the 50 blocks freed inside the constructor are not seen at all)."""
import glob
import os
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402


ALLOC, FREE, REALLOC, SCAN = 1, 2, 3, 17


def kept(trace):
    """Malloc-family records ahead of each stream's first scan: the calls
    kept before the constructor (its START scan comes right after them)."""
    n = 0
    for path in glob.glob(os.path.join(trace, "*.fst")):
        for typ, _ in fsk.stream_records(path):
            if typ == SCAN:
                break
            n += typ in (ALLOC, FREE, REALLOC)
    return n


def run(tag, options=(), env=None):
    prog = fsk.prog("ctor_alloc")
    plain = fsk.run_plain([prog], env=env)
    r = fsk.run_traced([prog], options=options, env=env)
    got = fsk.at_dicts(r.out, "ctor_alloc")
    if not check(tag + ".ran", r.rc == 0 and r.out == plain.out and len(got) == 1, r.describe()):
        return None, None, 0
    procs = fsk.report_procs(tag, r)
    if not procs:
        return None, None, 0
    fsk.check_clean(tag + ".clean", procs)
    return procs[-1], fsk.num(got[0]["calls"]), kept(r.trace)


def main():
    fsk.require(fsk.prog("ctor_alloc"))
    for depth in ("32", "0"):
        tag = "depth" + depth
        p, calls, n = run(tag, ("--stack-depth", depth))
        if not p:
            continue
        m = p["malloc"]
        # stdio's buffer for the program's line is one more malloc
        check(tag + ".counted", calls <= m["calls"] <= calls + 3 and m["reallocs"] == 50 and
              m["unknown_frees"] == 0 and p["dropped"] == 0,
              (calls, m["calls"], m["reallocs"], m["unknown_frees"], p["dropped"]))
        # 251 calls, 50 reallocs and 50 frees, ahead of the START scan
        check(tag + ".before-scan", n >= 351, n)
    p, calls, n = run("overflow", env={"CTOR_ALLOC_N": "5000"})
    if p:
        check("overflow.said", p["dropped"] > 0 and 0 < p["malloc"]["calls"] < calls and n > 1000,
              (calls, p["malloc"]["calls"], p["dropped"], n))
    p, calls, n = run("sampled", ("--sample-bytes", "4096"))
    if p:
        check("sampled.none-kept", p["dropped"] == 0 and n == 0, (p["dropped"], n))


if __name__ == "__main__":
    try:
        main()
    finally:
        fsk.finish()
