#!/usr/bin/env python3
"""A young fork child has no flusher thread and writes each record as it
comes; an older one, or one that records a lot at once, gets its flusher.

Most children of a shell exec within a few hundred microseconds of the
fork, after a few mallocs: a flusher thread would cost each of them its
creation, and the exec would have to kill it (preload/init.c,
CHILD_YOUNG_NS, CHILD_YOUNG_RECS). tests/progs/young_child forks:
A allocates five blocks and blocks reading its stdin: it must still be one
thread, and its five allocations must already be in the trace (a live
`forkscope report` while it waits), for nothing may wait unseen in a buffer
of a child that went quiet. Once A, past its youth, allocates again, it has
its flusher (two threads). B allocates and frees 300 blocks at once: more
than a young child writes one by one, so it has its flusher. C allocates
three blocks and execs /bin/true while still one thread. At the end every
allocation of the three is in the report and every stream is clean.

Youth is a time (2 ms from the end of our part of the fork): a child the
host kept from running that long is old when it allocates. Each child says
how long after the fork it counted its threads; a run where A or C took
1.8 ms or more is run again (up to four times), and the youth checks are
made on a run where both were quick."""
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check, num  # noqa: E402


def line_of(p, who, deadline):
    """The "@ young who=WHO" line the program prints, as a dict."""
    buf = b""
    while time.time() < deadline:
        b = p.stdout.readline()
        if not b:
            return None
        buf += b
        for d in fsk.at_dicts(b.decode("utf-8", "replace"), "young"):
            if d.get("who") == who:
                return d
    return None


def proc(doc, pid):
    return next((q for q in fsk.processes(doc) if q["pid"] == pid), None)


YOUNG_US = 1800


def attempt(prog):
    """One run; (checks to make, or None to run again)."""
    trace = fsk.fresh_dir("young_child")
    p = subprocess.Popen([fsk.fsk(), "run", "-q", "-o", trace, "--", prog], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    out = {"trace": trace}
    try:
        a = out["A"] = line_of(p, "A", deadline)
        if a is not None:
            # A blocks on its stdin now: what it allocated must be in the trace
            out["live"] = fsk.load_report(trace)
            try:
                out["a_tasks_blocked"] = len(os.listdir("/proc/%d/task" % num(a["pid"])))
            except OSError:
                out["a_tasks_blocked"] = -1
            p.stdin.write(b"go\n")
            p.stdin.flush()
            out["A2"] = line_of(p, "A2", deadline)
            out["B"] = line_of(p, "B", deadline)
            out["C"] = line_of(p, "C", deadline)
        out["rest"] = p.stdout.read().decode("utf-8", "replace")
        p.wait(timeout=max(1, deadline - time.time()))
        out["rc"] = p.returncode
        out["stderr"] = p.stderr.read().decode("utf-8", "replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return out


def main():
    prog = fsk.prog("young_child")
    fsk.require(prog)
    ages = []
    for _ in range(4):
        r = attempt(prog)
        if r.get("A") is None or r.get("C") is None:
            break
        ages.append((num(r["A"]["age_us"]), num(r["C"]["age_us"])))
        if max(ages[-1]) < YOUNG_US:
            break
    fsk.note("ages of A and C when they counted their threads, run by run (us): %r" % ages)
    if not check("ran", r.get("rc") == 0 and "@ done" in r.get("rest", ""),
                 "rc=%r stderr=%s" % (r.get("rc"), r.get("stderr", "")[-300:])):
        return
    a, c = r["A"], r["C"]
    if check("young-run", max(ages[-1]) < YOUNG_US,
             "in four runs A or C was never quick enough to be young: %r" % ages):
        check("a.one-thread-while-young", num(a["tasks"]) == 1,
              "child A had %s threads right after its first allocations" % a["tasks"])
        doc, why = r["live"]
        q = proc(doc, num(a["pid"])) if doc else None
        check("a.seen-while-blocked", q is not None and q["malloc"]["calls"] >= 5 and
              q["malloc"]["bytes"] >= 1001 + 1002 + 1003 + 1004 + 1005,
              "live report: %s" % (why or (q and q["malloc"])))
        check("a.still-one-thread", r["a_tasks_blocked"] == 1,
              "child A has %d threads while it waits" % r["a_tasks_blocked"])
        check("c.one-thread-at-exec", num(c["tasks"]) == 1,
              "child C right before its exec: %r" % c)
    a2, b = r["A2"], r["B"]
    check("a.flusher-when-older", a2 is not None and num(a2["tasks"]) == 2,
          "child A after its youth: %r" % a2)
    check("b.flusher-after-many", b is not None and num(b["tasks"]) == 2,
          "child B after 600 records at once: %r" % b)
    doc, why = fsk.load_report(r["trace"])
    if not check("report", doc is not None, why):
        return
    want = {"A": (a, 6, 5015 + 1006), "B": (b, 300, sum(2000 + i for i in range(300))),
            "C": (c, 3, 3001 + 3002 + 3003)}
    for who, (d, calls, nbytes) in want.items():
        q = proc(doc, num(d["pid"])) if d else None
        check("%s.all-recorded" % who.lower(), q is not None and q["malloc"]["calls"] >= calls and
              q["malloc"]["bytes"] >= nbytes and q["dropped"] == 0,
              q and (q["malloc"], q["dropped"]))
    check("streams-clean", all(q["stream_state"] == "clean" for q in fsk.processes(doc)),
          [(q["pid"], q["stream_state"]) for q in fsk.processes(doc)])


if __name__ == "__main__":
    try:
        main()
    finally:
        fsk.finish()
