#!/usr/bin/env python3
"""A reaped child's WAIT, the page faults drained and the scan the wait
calls for go to the trace in one write.

A process that forks without a flusher thread (a fork loop,
init_fork_quiet) scans at once when wait reaps a child: the pages the
child shared are the parent's alone again. The WAIT record, the fault
samples drained before the scan and the scan each were a write of their
own, each after an fstat that checks the fd is still the stream (~1 us a
system call here): 4 writes a fork in all with the fork's records. They
are held now and written together (preload/proc.c, wait_scan).

tests/bench/fork_bench 50 16 under the runner, events only, under
strace -f, as root and as nobody:
  - while it has no flusher, the forking process makes at most 3.5 writes
    a fork (measured 2.1, one run 3.1; 4.1 before). Its first buffered
    record more than 50 ms after a fork starts the flusher
    (FORK_QUIET_NS, preload/init.c): should that happen mid-run, the
    forks before that thread are counted, and at least 10 of them must
    be, or the run says so and checks nothing there;
  - the trace still has what the writes carried: the parent's stream has
    a WAIT record for each of the 50 children and a WAIT scan (trigger 6)
    for each of the counted ones at least, and the report has the 50
    children exited 0."""
import collections
import glob
import os
import re
import struct
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402

FORKS = 50
# write and writev calls of the forking process a fork: 2 (the wait's, the
# fork's), one more where a drain holds more fault samples than fit the
# hold's 2 KiB (about 50). Usually 2.1 a fork; one make test run made 3.1.
WRITES_MAX = 3.5
QUIET_MIN = 10      # forks made before the flusher started, to count writes over
REC_WAIT = 11
SCAN_WAIT = 6       # enum fsk_scan_trigger: FSK_SCAN_WAIT


def parent_writes(tag, path):
    """(pid, forks, forks before its first thread, writes before it) of
    the process that forked most, from strace -f output; None when there
    is none."""
    calls = []
    try:
        with open(path, errors="replace") as f:
            for ln in f:
                m = re.match(r"(\d+) +(\w+)\(", ln)
                if m:  # a call's first line (a resumed one starts with "<...")
                    calls.append((int(m.group(1)), m.group(2), "CLONE_THREAD" in ln))
    except OSError as e:
        check(tag + ".strace-output", False, str(e))
        return None
    forks = collections.Counter(p for p, c, t in calls if c in ("clone", "clone3", "fork", "vfork") and not t)
    if not forks:
        check(tag + ".forks-seen", False, "no fork in the strace output")
        return None
    pid = max(forks, key=forks.get)
    quiet, writes = 0, 0
    for p, c, thread in calls:
        if p != pid:
            continue
        if thread:
            break  # the flusher: from here on the wait scans are its
        if c in ("clone", "clone3", "fork", "vfork"):
            quiet += 1
        elif c in ("write", "writev"):
            writes += 1
    return pid, forks[pid], quiet, writes


def main():
    bench = fsk.bench_prog("fork_bench")
    fsk.require(bench)
    if not fsk.tool("strace"):
        fsk.skip("no strace: the writes cannot be counted")
    for tag, wrap in fsk.user_runs():
        out = fsk.fresh_dir(tag + ".strace")
        st = ("strace", "-f", "-qq", "-e", "trace=write,writev,clone,clone3,fork,vfork", "-o", out)
        # the runner's leak check cannot run under ptrace
        env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"}
        trace = fsk.fresh_dir(tag + ".trace")
        r = fsk.run_traced([bench, str(FORKS), "16"], wrap=tuple(wrap) + st, trace=trace,
                           options=["-q", "--stack-depth", "0"], env=env)
        if not check(tag + ".ran", r.rc == 0, r.describe()):
            continue
        got = parent_writes(tag, out)
        if got:
            pid, forks, quiet, writes = got
            why = "process %d: %d writes for its %d forks before a thread of its own (of %d)" % (
                pid, writes, quiet, forks)
            fsk.note(tag + ": " + why)
            check(tag + ".forks", forks == FORKS, why)
            if quiet >= QUIET_MIN:
                check(tag + ".writes", writes <= WRITES_MAX * quiet, why)
            else:
                fsk.note(tag + ": its flusher started too soon for the writes to be counted")
            streams = glob.glob(os.path.join(trace, "%d.*.fst" % pid))
            if check(tag + ".stream", len(streams) == 1, "streams of %d: %s" % (pid, streams)):
                waits = [p for t, p in fsk.stream_records(streams[0]) if t == REC_WAIT]
                exited = [p for p in waits if struct.unpack_from("<i", p, 4)[0] > 0]
                scans = [s for s in fsk.stream_scans(streams[0]) if s[0] == SCAN_WAIT]
                why = "%d WAIT records (%d reaping a child), %d WAIT scans" % (len(waits), len(exited),
                                                                              len(scans))
                check(tag + ".wait-records", len(exited) == FORKS, why)
                check(tag + ".wait-scans", quiet <= len(scans) <= FORKS, why)
        doc, why = fsk.load_report(trace)
        if check(tag + ".report", doc is not None, why or ""):
            kids = [p for p in fsk.processes(doc) if p.get("ppid") == got[0]] if got else []
            ok = [p for p in kids if fsk.exit_str(p) == "exited 0"]
            check(tag + ".children", len(kids) == FORKS and len(ok) == FORKS,
                  "%d children in the report, %d exited 0" % (len(kids), len(ok)))
    fsk.finish()


if __name__ == "__main__":
    main()
