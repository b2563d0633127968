#!/usr/bin/env python3
"""CPU time (user+sys, median) of build/bench/malloc_bench: 5M malloc/free
pairs on THREADS threads, untraced and under each given libforkscope.so
with stacks off (FORKSCOPE_STACK_DEPTH=0) and at 32 frames, alternating
runs so machine noise hits every configuration alike; also trace bytes per
malloc/free event. CPU time is steadier than wall time on a shared machine.

usage: tests/bench/malloc_cpu.py [-r REPS] [-t THREADS] LIB [LIB...]
e.g.   tests/bench/malloc_cpu.py -t 2 build/libforkscope.so old/libforkscope.so
"""
import argparse, os, resource, shutil, statistics, subprocess, tempfile

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BENCH = os.path.join(TOP, "build", "bench", "malloc_bench")
PAIRS = 5000000


def run(threads, env):
    """(CPU seconds, trace bytes) of one run."""
    d = tempfile.mkdtemp(prefix="fsk-cpu-")
    e = dict(os.environ, **env)
    if env:
        e["FORKSCOPE_DIR"] = d
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([BENCH, str(PAIRS), str(threads), "0"], env=e, stdout=subprocess.DEVNULL, check=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    shutil.rmtree(d, ignore_errors=True)
    return r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-r", "--reps", type=int, default=7)
    ap.add_argument("-t", "--threads", type=int, default=1)
    ap.add_argument("libs", nargs="+")
    a = ap.parse_args()
    cfgs = [("untraced", {})]
    for lib in a.libs:
        for depth in ("0", "32"):
            cfgs.append(("%s depth %s" % (lib, depth),
                         {"LD_PRELOAD": os.path.abspath(lib), "FORKSCOPE_STACK_DEPTH": depth}))
    cpu = {name: [] for name, _ in cfgs}
    size = {}
    for _ in range(a.reps):
        for name, env in cfgs:
            t, size[name] = run(a.threads, env)
            cpu[name].append(t)
    base = statistics.median(cpu["untraced"])
    print("malloc_bench %d pairs, %d thread(s), median of %d: CPU s, ratio, trace bytes/event"
          % (PAIRS, a.threads, a.reps))
    for name, _ in cfgs:
        m = statistics.median(cpu[name])
        print("%-48s %6.3f  %5.2fx  %5.1f" % (name, m, m / base, size[name] / (2.0 * PAIRS)))


if __name__ == "__main__":
    main()
