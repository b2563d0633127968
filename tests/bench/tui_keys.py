"""Time per key of `forkscope view` on a big generated trace.

    python3 tests/bench/tui_keys.py [NPROCS NEVENTS] [--trace DIR] [--keep]

Writes a trace with build/progs/gen_trace (default 10,000 processes and
10 million events), opens build/forkscope view on it in a detached tmux
session with FORKSCOPE_UI_KEYLOG set, sends seeks (Home, End, scrub, click
-free jumps), steps, scrolls and selections, and prints per key the
median and maximum of the time the viewer took to handle the key and
redraw: the CPU time the viewer used (robust on a busy machine) and the
wall clock (an upper bound there). "/" is left out: its time includes
typing the pattern.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYS = (["Home", "End"] * 3 + ["Left"] * 5 + ["Right"] * 5 + ["H", "L"] * 3 +
        [","] * 5 + ["."] * 5 + ["f", "F", "x", "X", "b", "B"] * 3 +
        ["j"] * 10 + ["k"] * 5 + ["NPage", "PPage", "G", "g"] +
        ["Tab", "j", "j", "Enter", "Enter", "Tab", "Up", "Down", "Up", "Tab", "c", "c", "c", "c",
         "c", "c", "0", "3", "Space", "End", "Tab", "p", "Up", "Up", "Down", "PPage", "p",
         "Tab", "Tab", "Enter", "Enter", "/", "free 0x7f0", "Enter", "n", "N"])


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    nprocs, nev = (args + ["10000", "10000000"])[:2] if len(args) != 1 else (args[0], "10000000")
    work = tempfile.mkdtemp(prefix="fsk-tui-bench.")
    trace = None
    if "--trace" in sys.argv:
        trace = sys.argv[sys.argv.index("--trace") + 1]
    try:
        if not trace:
            trace = os.path.join(work, "trace")
            t = time.time()
            subprocess.run([os.path.join(TOP, "build/progs/gen_trace"), trace, nprocs, nev],
                           check=True, stdout=subprocess.DEVNULL)
            print("generated %s processes, %s events in %.1f s" % (nprocs, nev, time.time() - t))
        log = os.path.join(work, "keys.log")
        sock = "fsk-bench-%d" % os.getpid()
        tm = ["tmux", "-L", sock]
        cmd = "env LANG=C.UTF-8 FORKSCOPE_UI_KEYLOG=%s %s view %s" % (
            log, os.path.join(TOP, "build/forkscope"), trace)
        subprocess.run(tm + ["new-session", "-d", "-x", "200", "-y", "50", "-s", "b", cmd], check=True)
        t = time.time()
        while time.time() - t < 600:
            if os.path.exists(log) and "open" in open(log).read():
                break
            time.sleep(0.5)
        print(open(log).read().strip())
        for k in KEYS:
            subprocess.run(tm + ["send-keys", "-t", "b", k])
            time.sleep(0.25)
        time.sleep(1)
        subprocess.run(tm + ["send-keys", "-t", "b", "q"])
        time.sleep(1)
        subprocess.run(tm + ["kill-server"], stderr=subprocess.DEVNULL)
        per = {}
        for line in open(log):
            f = line.split()
            if f[0] == "exit:":
                print(line.strip())
            if f[0] == "key" and f[1] != "/":  # "/" includes the typing of the pattern
                per.setdefault(f[1], []).append((int(f[7]) / 1000.0, int(f[9]) / 1000.0))
        allt = [v for vs in per.values() for v in vs]
        print("%-10s %4s %11s %8s %11s %8s" % ("key", "n", "cpu median", "cpu max", "wall median",
                                             "wall max"))
        for k, vs in sorted(per.items(), key=lambda kv: -max(c for c, _ in kv[1])):
            cpu, wall = [c for c, _ in vs], [w for _, w in vs]
            print("%-10s %4d %8.1f ms %5.1f ms %8.1f ms %5.1f ms" % (
                k, len(vs), statistics.median(cpu), max(cpu), statistics.median(wall), max(wall)))
        cpu, wall = [c for c, _ in allt], [w for _, w in allt]
        print("all %d keys: CPU median %.1f ms, max %.1f ms; wall median %.1f ms, max %.1f ms" % (
            len(allt), statistics.median(cpu), max(cpu), statistics.median(wall), max(wall)))
    finally:
        if "--keep" not in sys.argv:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept", work)


main()
