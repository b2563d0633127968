"""No malloc event is lost: tests/progs/malloc_count makes an exact number
of malloc/calloc/realloc/reallocarray/posix_memalign/aligned_alloc/memalign
and free calls in 8 threads (over a million events) and prints its counts.
The report must give exactly those plus what the same program records
with zero iterations (glibc's and the startup's own allocations), measured
twice to be sure that baseline is stable. Run with stacks (the default)
and with --stack-depth 0 (the hooks' inline path); errno, set by each
thread before its loop, must be the same after every iteration.

Counting rule: malloc.calls counts every call that returns a new block
(malloc, calloc, reallocarray/realloc of NULL, posix_memalign,
aligned_alloc, memalign, valloc, pvalloc); malloc.frees counts free() of a
non-NULL pointer; bytes sums the sizes those calls requested (calloc
n*size). A realloc of a live block is counted in calls and bytes (new
size), unless the report counts such calls apart in malloc.reallocs: then
that number must be exact instead.
"""
import itertools
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check, num  # noqa: E402

ITERS = 25000
THREADS = 8
ALLOC_FNS = ["malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign"]


def measure(tag, iters, options=()):
    """(program's counts, report's malloc dict of the process) or None."""
    r = fsk.run_traced([fsk.prog("malloc_count"), str(iters), str(THREADS)], timeout=120, cwd=fsk.tmpdir(),
                       options=options)
    if not check(tag + ".ran", r.rc == 0 and not r.timed_out, r.describe()):
        return None
    counts = fsk.at_dicts(r.out, "counts")
    doc = r.report()
    if not check(tag + ".report", doc is not None and len(counts) == 1, r.report_error or r.out[-200:]):
        return None
    procs = fsk.processes(doc)
    if not check(tag + ".one-process", len(procs) == 1, "%d processes" % len(procs)):
        return None
    c = {k: num(v) for k, v in counts[0].items()}
    return c, procs[0].get("malloc") or {}


def explain(diff, c):
    """Which of the program's per-function counts add up to diff."""
    for n in range(1, len(ALLOC_FNS) + 1):
        for combo in itertools.combinations(ALLOC_FNS + ["free"], n):
            if sum(c[f] for f in combo) == diff:
                return " (the difference equals the %s calls)" % "+".join(combo)
    return ""


def main():
    fsk.require(fsk.prog("malloc_count"))
    for tag, options in (("", ()), ("events-only.", ("--stack-depth", "0"))):
        one_mode(tag, options)
    no_malloc()
    fsk.finish()


def no_malloc():
    """--no-malloc: the hooks pass every call through (a tail call), so
    the report holds no malloc-family call at all, the program's counts
    and errno are those of an untraced run, and its threads and exit are
    still traced."""
    r = measure("no-malloc.run", ITERS, ("--no-malloc",))
    if not r:
        return
    c, m = r
    plain = fsk.run_plain([fsk.prog("malloc_count"), str(ITERS), str(THREADS)], timeout=120, cwd=fsk.tmpdir())
    pc = fsk.at_dicts(plain.out, "counts")
    check("no-malloc.counts-as-untraced", len(pc) == 1 and {k: num(v) for k, v in pc[0].items()} == c,
          "traced %r, untraced %r" % (c, pc))
    check("no-malloc.errno.kept", c["errno_changed"] == 0,
          "errno changed after %d of %d iterations" % (c["errno_changed"], ITERS * THREADS))
    check("no-malloc.no-calls", not m.get("calls") and not m.get("frees") and not m.get("bytes"),
          "report malloc section %r" % m)


def one_mode(tag, options):
    b1 = measure(tag + "baseline1", 0, options)
    b2 = measure(tag + "baseline2", 0, options)
    if not (b1 and b2):
        return
    base = b1[1]
    check(tag + "baseline.stable", all(b1[1].get(k) == b2[1].get(k) for k in ("calls", "frees", "bytes", "reallocs")),
          "two runs of malloc_count 0 gave %r and %r" % (b1[1], b2[1]))
    r = measure(tag + "run", ITERS, options)
    if not r:
        return
    c, m = r
    check(tag + "errno.kept", c["errno_changed"] == 0,
          "errno changed after %d of %d iterations" % (c["errno_changed"], ITERS * THREADS))
    separate = "reallocs" in m and "reallocs" in base
    fns = [f for f in ALLOC_FNS if not (separate and f == "realloc")]
    calls = sum(c[f] for f in fns)
    check(tag + "program.did-work", sum(c[f] for f in ALLOC_FNS) + c["free"] >= 1000000,
          "only %d calls" % (calls + c["free"]))
    if separate:
        want = base["reallocs"] + c["realloc"]
        check(tag + "reallocs.exact", m["reallocs"] == want, "report reallocs=%r, expected %d = baseline %r + program %d"
              % (m["reallocs"], want, base["reallocs"], c["realloc"]))
    want = base.get("calls", 0) + calls
    got = m.get("calls")
    check(tag + "calls.exact", got == want, "report calls=%r, expected %d = baseline %r + program %d%s"
          % (got, want, base.get("calls"), calls, explain(want - got, c) if isinstance(got, int) else ""))
    want = base.get("frees", 0) + c["free"]
    got = m.get("frees")
    check(tag + "frees.exact", got == want, "report frees=%r, expected %d = baseline %r + program %d%s"
          % (got, want, base.get("frees"), c["free"], explain(want - got, c) if isinstance(got, int) else ""))
    nbytes = c["bytes"] - (c["realloc_bytes"] if separate else 0)
    want = base.get("bytes", 0) + nbytes
    check(tag + "bytes.exact", m.get("bytes") == want, "report bytes=%r, expected %d = baseline %r + program %d"
          % (m.get("bytes"), want, base.get("bytes"), nbytes))
    check(tag + "live-at-exit.unchanged", m.get("live_at_exit_blocks") == base.get("live_at_exit_blocks"),
          "the program frees all it allocates, yet live_at_exit_blocks went from %r to %r"
          % (base.get("live_at_exit_blocks"), m.get("live_at_exit_blocks")))



if __name__ == "__main__":
    main()
