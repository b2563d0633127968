#!/usr/bin/env python3
"""Who writes a busy thread's full buffer out, and that nothing is lost or
reordered either way.

A thread that fills buffers fast leaves a full one to the flusher thread
and goes on in its second buffer, when the flusher has a CPU of its own
(fewer threads than CPUs filled a buffer lately, and the system's
runnable tasks leave one free); otherwise, or when the flusher has not
written the last one yet, it writes both itself, oldest first.
tests/progs/handoff runs THREADS threads of ITERS malloc/free pairs and
then prints what the kernel counted each of its tasks writing (wchar).
Where it can pay, the thread measures which way its buffers fill
faster and keeps that way for a while (emit.c, tb_handoff_tune);
FORKSCOPE_HANDOFF=1 makes it leave them whenever it can pay, as the
cases that want the flusher to write set. Cases: one busy thread on two
CPUs (the flusher, named "forkscope", writes most of the stream), the
same measured (either may write; the probes switch ways every few
buffers, so order and counts are checked across those switches), the
same on one CPU, two busy threads on two
CPUs, and one busy thread on two CPUs while another process keeps one of
them busy (the recording threads write most of it themselves: the
flusher would take a CPU the system does not have free). A case that
wants the flusher to write most and sees otherwise runs once more (a
host that steals the CPU for a while slows the thread below the rate
that makes hand-offs). In each:
the report counts every malloc and free, and the raw stream holds every
thread's records in time order (the compact records of a buffer count
from a CBASE that may sit in the buffer before it, so a buffer written
out of turn would show here)."""
import glob
import os
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check, num  # noqa: E402
from t_malloc_clock import ALLOC, FREE, stream_records  # noqa: E402

ITERS = 800000  # long enough that the flusher looks at the load several times


def case(tag, threads, cpus, flusher_writes, hog=None, env=None):
    wrap = ("taskset", "-c", ",".join(str(c) for c in cpus))
    busy = None
    if hog is not None:  # a busy loop of another process on that CPU
        busy = subprocess.Popen(["taskset", "-c", str(hog), sys.executable, "-c", "while True: pass"])
        time.sleep(0.3)
    try:
        got = run_case(tag, threads, wrap, env)
        if got and flusher_writes and got[0] < got[1] // 2:
            # A hand-off is made only while the thread fills a buffer
            # every 2 ms or faster and the system looks idle: a host
            # that takes the CPU away for a while (steal time) makes it
            # write its own. Once more before calling it a failure.
            fsk.note("%s: the flusher wrote %d of %d bytes: run again" % (tag, got[0], got[1]))
            got = run_case(tag + ".again", threads, wrap, env)
        if not got:
            return
        flusher, size, others = got
        if flusher_writes is None:
            pass  # measured: either way may win on this machine
        elif flusher_writes:
            check(tag + ".flusher-writes", flusher >= size // 2,
                  "the flusher wrote %d of the stream's %d bytes, the program's threads %d" % (flusher, size, others))
        else:
            check(tag + ".threads-write", others >= size // 2 and others > flusher,
                  "the program's threads wrote %d of the stream's %d bytes, the flusher %d" % (others, size, flusher))
    finally:
        if busy:
            busy.kill()
            busy.wait()


def run_case(tag, threads, wrap, env=None):
    """Checks one run; (bytes the flusher wrote, stream size, bytes the
    program's threads wrote), or None."""
    r = fsk.run_traced([fsk.prog("handoff"), str(ITERS), str(threads)], timeout=180, cwd=fsk.tmpdir(),
                       wrap=wrap, env=env, options=["--stack-depth", "0", "--scan-ms", "0"])
    counts = fsk.at_dicts(r.out, "counts") if r.rc == 0 else []
    if not check(tag + ".ran", len(counts) == 1, r.describe()):
        return None
    doc = r.report()
    procs = fsk.processes(doc) if doc else []
    if not check(tag + ".report", len(procs) == 1, r.report_error or "%d processes" % len(procs)):
        return None
    m = procs[0].get("malloc") or {}
    want = ITERS * threads
    # glibc and opendir allocate a little on their own: at most 200 calls
    check(tag + ".counted", want <= (m.get("calls") or 0) <= want + 200 and
          want <= (m.get("frees") or 0) <= want + 200,
          "report: %r calls, %r frees; the loop made %d of each" % (m.get("calls"), m.get("frees"), want))

    recs = stream_records(tag, r.trace, procs[0]["pid"])
    if recs is None:
        return None
    last, back, n = {}, [], 0
    for i, (typ, tid, ts, _) in enumerate(recs):
        if typ not in (ALLOC, FREE):
            continue
        n += 1
        if ts < last.get(tid, 0):
            back.append((i, tid, last[tid] - ts))
        last[tid] = ts
    check(tag + ".all-records", n >= 2 * want, "%d malloc/free records in the stream, want %d" % (n, 2 * want))
    check(tag + ".in-order", not back,
          "%d records go back in time within their thread, first (index, tid, ns back) %r" % (len(back), back[:3]))

    size = os.path.getsize(glob.glob(os.path.join(r.trace, "%d.*.fst" % procs[0]["pid"]))[0])
    tasks = fsk.at_dicts(r.out, "task")
    flusher = sum(num(t["wchar"]) for t in tasks if t.get("comm") == "forkscope")
    others = sum(num(t["wchar"]) for t in tasks if t.get("comm") != "forkscope")
    fsk.note("%s: stream %d bytes, the flusher wrote %d, the program's threads %d" % (tag, size, flusher, others))
    return flusher, size, others


def main():
    fsk.require(fsk.prog("handoff"))
    if not shutil.which("taskset"):
        fsk.skip("taskset (util-linux) is not installed")
    cpus = sorted(os.sched_getaffinity(0))
    case("one-cpu", 1, cpus[:1], False)
    if len(cpus) >= 2:
        case("one-busy", 1, cpus[:2], True, env={"FORKSCOPE_HANDOFF": "1"})
        case("one-busy-measured", 1, cpus[:2], None)
        case("two-busy", 2, cpus[:2], False)
        case("one-busy-loaded", 1, cpus[:2], False, hog=cpus[1])
    else:
        fsk.note("one CPU only: the cases with two are left out")
    fsk.finish()


if __name__ == "__main__":
    main()
