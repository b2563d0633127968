#!/usr/bin/env python3
"""A process is a zombie from its death, not from its EXIT record.

The EXIT record is written when the program calls exit or _exit; after it
come the atexit handlers (the program's own code), the exit scan and the
last flush of the stream, all in a process still alive. The report once
counted all of that as zombie time: a fork child reaped at once showed
"zombie 320 us", most of it our own exit scan. tests/progs/zombie_death
forks A, whose atexit handler sleeps 300 ms and whose parent waits for it
at once, then B, which _exits at once while its parent sleeps 300 ms
before waiting. A's zombie time must stay far below its 300 ms in atexit
(it is the kernel's exit and the parent's wakeup), B's must be at least
its parent's 300 ms sleep (less 50 ms for clocks), and the Chrome export
must draw each zombie slice from the end of the process's stream. The
report's dead_ns says when each died, exit_handlers_ns what A's handler
took (B, which _exits, has none: 0), and the text report says A spent its
last 300 ms "in exit handlers"."""
import json
import subprocess
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check, num  # noqa: E402

MS = 1000000


def main():
    argv = [fsk.prog("zombie_death")]
    plain = fsk.run_plain(argv)
    r = fsk.run_traced(argv)
    check("ran", r.rc == 0 == plain.rc and not r.timed_out, r.describe() + " / plain " + plain.describe())
    check("same-output", r.out.count("@ done") == 1 and plain.out.count("@ done") == 1, r.out)
    kids = {d["who"]: num(d["pid"]) for d in fsk.at_dicts(r.out, "child")}
    doc = r.report()
    if not check("report", doc is not None and set(kids) == {"A", "B"}, r.report_error or r.out):
        return
    procs = fsk.by_pid(doc)
    a, b = procs.get(kids["A"]), procs.get(kids["B"])
    if not check("children-in-report", a is not None and b is not None, sorted(procs)):
        return
    za, zb = a.get("zombie_ns"), b.get("zombie_ns")
    check("reaped-by-parent", a.get("reaped_by") is not None and a.get("reaped_by") == b.get("reaped_by") ==
          a.get("ppid"), (a.get("reaped_by"), b.get("reaped_by"), a.get("ppid")))
    check("A.zombie-from-death", isinstance(za, int) and za < 150 * MS,
          "A's zombie time %r ns: its 300 ms in an atexit handler counted as zombie time" % za)
    check("B.zombie-counted", isinstance(zb, int) and zb >= 250 * MS,
          "B's zombie time %r ns, expected >= 250 ms (its parent slept 300 ms before waiting)" % zb)
    # ran ends at the exit call; the 300 ms after it, in A's atexit
    # handler, are its death's delay, said as such
    check("A.dead-after-handlers", isinstance(a.get("dead_ns"), int) and isinstance(a.get("end_ns"), int) and
          a["dead_ns"] - a["end_ns"] >= 250 * MS, (a.get("end_ns"), a.get("dead_ns")))
    check("B.dead-at-exit", isinstance(b.get("dead_ns"), int) and isinstance(b.get("end_ns"), int) and
          b["dead_ns"] - b["end_ns"] < 50 * MS, (b.get("end_ns"), b.get("dead_ns")))
    check("A.handlers-300ms", isinstance(a.get("exit_handlers_ns"), int) and a["exit_handlers_ns"] >= 250 * MS,
          a.get("exit_handlers_ns"))
    check("B.no-handlers", b.get("exit_handlers_ns") == 0, b.get("exit_handlers_ns"))
    text = subprocess.run([fsk.fsk(), "report", r.trace], stdout=subprocess.PIPE).stdout.decode("utf-8", "replace")
    line_a = [x for x in text.splitlines() if ("%d " % kids["A"]) in x and "exited" in x]
    check("A.text-says-exit-handlers", len(line_a) == 1 and "in exit handlers" in line_a[0], line_a)
    line_b = [x for x in text.splitlines() if ("%d " % kids["B"]) in x and "exited" in x]
    check("B.text-no-handlers", len(line_b) == 1 and "exit handlers" not in line_b[0], line_b)
    check("streams-clean", a.get("stream_state") == "clean" and b.get("stream_state") == "clean",
          (a.get("stream_state"), b.get("stream_state")))
    # the Chrome export: zombie slices as long as the report says, starting
    # no earlier than the process's end
    p = subprocess.run([fsk.fsk(), "export", r.trace, "--format", "chrome"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if not check("export", p.returncode == 0, p.stderr.decode("utf-8", "replace")[-300:]):
        return
    ev = json.loads(p.stdout.decode("utf-8"))
    ev = ev["traceEvents"] if isinstance(ev, dict) else ev
    z = {e["pid"]: e for e in ev if e.get("ph") == "X" and e.get("cat") == "zombie"}
    ex = {e["pid"]: e["ts"] for e in ev if e.get("ph") == "i" and e.get("name") == "exit"}
    za_ev = z.get(kids["A"])
    check("export.A-slice-after-atexit", za_ev is None or za_ev["ts"] - ex.get(kids["A"], 0) >= 250000,
          "A's zombie slice starts %r us after its exit instant" %
          (za_ev["ts"] - ex.get(kids["A"], 0) if za_ev else None))
    zb_ev = z.get(kids["B"])
    check("export.B-slice", zb_ev is not None and abs(zb_ev["dur"] - zb / 1000.0) < 0.002,
          "%r vs %r" % (zb_ev, zb))


if __name__ == "__main__":
    try:
        main()
    finally:
        fsk.finish()
