"""Sampled malloc tracing (--sample-bytes N) gives unbiased estimates.

Two programs whose every allocation size this test can recompute run with
--sample-bytes N and a fixed FORKSCOPE_SAMPLE_SEED (deterministic):
tests/progs/malloc_count (mixed malloc/calloc/realloc/aligned calls, one
thread) and build/bench/malloc_bench (malloc/free pairs of 16 B .. 2 KiB).
Their untraced-by-sampling totals are the program's own counts (sizes
recomputed from the same generators) plus what a zero-iteration run
records unsampled (glibc and startup allocations).

A call of s bytes is recorded with probability p = 1 - exp(-s/N) and
weighted 1/p (calls) and s/p (bytes), so each estimate's variance is known
exactly from the sizes (a record counts I/p, I recorded or not, of
variance (1-p)/p): sum (1-p)/p for counts, sum s^2 (1-p)/p for bytes.
For the baseline's calls, whose sizes the test does not know, it takes the
worst case s = 1 (counts) and s^2/(e^(s/N)-1) <= s*N (bytes).
Each estimate must lie within 4 standard deviations of the truth (5 for
a 4-thread run of malloc_count, whose per-thread seeds follow the threads'
start order).
The allocation sites of malloc_bench (no realloc) must add up to the same
bounds. The report must say the numbers are estimates, and no FREE of an
unrecorded block may reach the stream (unknown_frees stays 0).
"""
import math
import os
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check  # noqa: E402

N = 1024
SEED = "12345"
SIGMAS = 4.0
MC_ITERS = 100000
MB_PAIRS = 400000
M64 = (1 << 64) - 1


def var_count(s):
    p = -math.expm1(-max(s, 1) / N)
    return (1 - p) / p


def var_bytes(s):
    p = -math.expm1(-max(s, 1) / N)
    return s * s * (1 - p) / p


class Truth:
    """Exact totals and the variance of their estimates."""
    def __init__(self):
        self.v = {k: 0 for k in ("calls", "bytes", "frees", "reallocs")}
        self.var = dict(self.v)

    def call(self, s):
        self.v["calls"] += 1
        self.v["bytes"] += s
        self.var["calls"] += var_count(s)
        self.var["bytes"] += var_bytes(s)

    def free(self, s):
        self.v["frees"] += 1
        self.var["frees"] += var_count(s)

    def realloc(self, s):
        self.v["reallocs"] += 1
        self.var["reallocs"] += var_count(s)

    def baseline(self, m):
        """An unsampled run's counts, sizes unknown: worst-case variance."""
        for k in self.v:
            self.v[k] += m.get(k, 0)
        for k in ("calls", "frees", "reallocs"):
            self.var[k] += m.get(k, 0) * var_count(1)
        self.var["bytes"] += N * m.get("bytes", 0)


def malloc_count_truth(threads=1):
    t = Truth()
    for th in range(threads):
        malloc_count_thread(t, th)
    return t


def malloc_count_thread(t, th):
    seed = (th * 2654435761 + 1) & 0xffffffff  # as tests/progs/malloc_count.c
    for _ in range(MC_ITERS):
        seed = (seed * 1103515245 + 12345) & 0xffffffff
        a, b = 16 + (seed >> 8) % 512, 8 + (seed >> 16) % 256
        t.call(a)
        t.call(2 * b)
        t.realloc(a + 64)
        t.free(a + 64)
        t.free(2 * b)
    for _ in range(100):  # EXTRA: reallocarray(NULL), posix_memalign, aligned_alloc, memalign
        for s in (128, 200, 256, 96):
            t.call(s)
            t.free(s)


def malloc_bench_truth():
    t = Truth()
    x, keep = 1, [0] * 16  # thread 0 of tests/bench/malloc_bench.c
    for _ in range(MB_PAIRS):
        x = (x * 6364136223846793005 + 1442695040888963407) & M64
        sz, slot = 16 << ((x >> 33) % 8), (x >> 40) & 15
        if keep[slot]:
            t.free(keep[slot])
        keep[slot] = sz
        t.call(sz)
    for s in keep:
        if s:
            t.free(s)
    return t


def traced(tag, argv, options=(), env=None):
    r = fsk.run_traced(argv, timeout=300, cwd=fsk.tmpdir(), env=env,
                       options=("--stack-depth", "0") + tuple(options))
    if not check(tag + ".ran", r.rc == 0 and not r.timed_out, r.describe()):
        return None, r
    doc = r.report()
    if not check(tag + ".report", doc is not None, r.report_error or ""):
        return None, r
    procs = fsk.processes(doc)
    if not check(tag + ".one-process", len(procs) == 1, "%d processes" % len(procs)):
        return None, r
    m = dict(procs[0].get("malloc") or {})
    m["_sites"] = (procs[0].get("sites") or {}).get("alloc") or []
    return m, r


def estimate(tag, argv, zero_argv, truth, sigmas=SIGMAS):
    base, _ = traced(tag + ".baseline", zero_argv)
    if base is None:
        return None
    truth.baseline(base)
    env = {"FORKSCOPE_SAMPLE_SEED": SEED}
    m, r = traced(tag + ".sampled", argv, ("--sample-bytes", str(N)), env)
    if m is None:
        return None
    check(tag + ".marked", m.get("estimated") is True and m.get("sample_bytes") == N,
          "malloc: %r" % m)
    check(tag + ".no-unknown-frees", m.get("unknown_frees") == 0,
          "unknown_frees=%r: a free of an unrecorded block was written" % m.get("unknown_frees"))
    for k, want in truth.v.items():
        if tag == "malloc_bench" and k == "reallocs":
            continue
        sd = math.sqrt(truth.var[k])
        got = m.get(k)
        ok = isinstance(got, int) and abs(got - want) <= sigmas * sd + 1
        check("%s.%s" % (tag, k), ok, "estimate %r, true %d, sd %.0f (%.2f%%), bound %g sd"
              % (got, want, sd, 100.0 * sd / max(want, 1), sigmas))
    if tag == "malloc_bench":  # no realloc: the sites' sums are the calls and bytes
        for k in ("calls", "bytes"):
            got = sum(x.get(k, 0) for x in m["_sites"])
            sd = math.sqrt(truth.var[k])
            check("%s.sites-%s" % (tag, k), abs(got - truth.v[k]) <= SIGMAS * sd + 1,
                  "sites sum %r, true %d, sd %.0f" % (got, truth.v[k], sd))
    return m, r


def main():
    bench = os.path.join(os.path.dirname(fsk.prog("malloc_count")), os.pardir, "bench", "malloc_bench")
    fsk.require(fsk.prog("malloc_count"), bench)
    mc = fsk.prog("malloc_count")
    res = estimate("malloc_count", [mc, str(MC_ITERS), "1"], [mc, "0", "1"], malloc_count_truth())
    if res:
        m, r = res
        again, _ = traced("repeat", [mc, str(MC_ITERS), "1"], ("--sample-bytes", str(N)),
                          {"FORKSCOPE_SAMPLE_SEED": SEED})
        check("seed.deterministic", again is not None and
              all(again.get(k) == m.get(k) for k in ("calls", "bytes", "frees", "reallocs")),
              "same seed gave %r then %r" % (m, again))
        text = fsk.run_plain([fsk.fsk(), "report", r.trace]).out
        check("report.says-estimates", "sampled 1/%d bytes: totals are estimates" % N in text,
              text[-600:])
    # 4 threads share the table of recorded blocks; which thread gets which
    # seed depends on their start order, hence a wider bound
    estimate("threads4", [mc, str(MC_ITERS), "4"], [mc, "0", "4"], malloc_count_truth(4), 5.0)
    estimate("malloc_bench", [bench, str(MB_PAIRS), "1", "0"], [bench, "0", "1", "0"],
             malloc_bench_truth())
    fsk.finish()


if __name__ == "__main__":
    main()
