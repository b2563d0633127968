#!/usr/bin/env python3
"""forkscope vs heaptrack on the same programs: allocation calls, peak live
heap and bytes leaked at exit, as each tool reports them.

Workloads: tests/progs/malloc_count (known counts: it prints what it
called) and python3 running a small script. heaptrack's figures come from
its own data file (decompressed with zstd: "+" = an allocation, "-" = a
free, "a SIZE TRACE" = the size of allocation info i), so they are exact
rather than heaptrack_print's rounded "74.45K"; that line is shown too.
forkscope's come from `forkscope report --json` of the process.

How the tools count differently, so that a difference can be explained:
- heaptrack counts a realloc as one allocation (and one free of the old
  block); forkscope counts a realloc of a live block apart
  (malloc.reallocs), so its comparable number is calls + reallocs.
- glibc's reallocarray calls realloc internally, which an LD_PRELOAD
  interposer of realloc does not see: heaptrack misses reallocarray;
  forkscope hooks it.
- heaptrack's preload library is C++: it brings libstdc++ into a C
  program, whose start-up allocates its exception pool (72704 B, live to
  the end). The row "w/o libstdc++" leaves out allocations made directly
  from libstdc++, which a C program or python3 never makes on its own.
Usage: heaptrack_cmp.py [BUILD_DIR]; prints a table, never fails the
build (exit 0 even when a tool is missing).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
B = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TOP, "build")
FSK = os.path.join(B, "forkscope")
PY_SCRIPT = ("import json\n"
             "d = {}\n"
             "for i in range(20000):\n"
             "    d[str(i)] = [i] * (i % 7) + [str(i) * 3]\n"
             "s = json.dumps(d)\n"
             "keep = [bytearray(1000) for _ in range(50)]\n"
             "print(len(s), len(json.loads(s)))\n")


def heaptrack_figures(path, skip_module=None):
    """(calls, peak bytes, leaked bytes, heaptrack_print summary lines);
    allocations whose innermost frame is in a module whose name starts
    with skip_module are left out when it is given."""
    text = subprocess.run(["zstd", "-dc", path], capture_output=True, text=True,
                          errors="replace").stdout
    strings, ip_mod, trace_ip = [None], [None], [None]
    sizes, skip, live, calls, cur, peak = [], [], {}, 0, 0, 0
    for ln in text.splitlines():
        w = ln.split()
        if not w:
            continue
        if w[0] == "s":
            # "s LEN TEXT" (LEN in hex); the command line ("X ...") may span
            # lines, one of which can start with "s "
            rest = ln[2:].split(" ", 1)
            try:
                if len(rest) == 2 and int(rest[0], 16) == len(rest[1].encode()):
                    strings.append(rest[1])
            except ValueError:
                pass
        elif w[0] == "i":
            ip_mod.append(int(w[2], 16))
        elif w[0] == "t":
            trace_ip.append(int(w[1], 16))
        elif w[0] == "a":
            sizes.append(int(w[1], 16))
            t = int(w[2], 16)
            mod = strings[ip_mod[trace_ip[t]]] if 0 < t < len(trace_ip) else ""
            skip.append(bool(skip_module) and os.path.basename(mod).startswith(skip_module))
        elif w[0] == "+":
            i = int(w[1], 16)
            if skip[i]:
                continue
            calls += 1
            live[i] = live.get(i, 0) + 1
            cur += sizes[i]
            peak = max(peak, cur)
        elif w[0] == "-":
            i = int(w[1], 16)
            if live.get(i):
                live[i] -= 1
                cur -= sizes[i]
    leaked = sum(sizes[i] * n for i, n in live.items())
    out = subprocess.run(["heaptrack_print", "-f", path], capture_output=True, text=True,
                         errors="replace").stdout
    summary = [ln for ln in out.splitlines() if ln.startswith(("calls to allocation",
                                                               "peak heap memory", "total memory leaked"))]
    return calls, peak, leaked, summary


def forkscope_figures(trace):
    doc = json.loads(subprocess.run([FSK, "report", "--json", trace], capture_output=True,
                                    text=True).stdout)
    procs = [p for p in doc["processes"] if p["malloc"]["traced"]]
    p = procs[0]
    m = p["malloc"]
    return m["calls"] + m["reallocs"], m["peak_live_bytes"], m["live_at_exit_bytes"], m


def one(name, argv, tmp, known=None):
    tag = "".join(c if c.isalnum() else "_" for c in name)
    ht = os.path.join(tmp, "ht." + tag)
    env = dict(os.environ, PYTHONHASHSEED="0")  # the same run under both tools
    r = subprocess.run(["heaptrack", "-o", ht] + argv, capture_output=True, text=True, env=env)
    path = next((os.path.join(tmp, f) for f in os.listdir(tmp) if f.startswith("ht." + tag + ".")), None)
    if r.returncode != 0 or not path:
        print("%s: heaptrack failed (rc %d)" % (name, r.returncode))
        return
    trace = os.path.join(tmp, "fsk." + tag)
    f = subprocess.run([FSK, "run", "-q", "-o", trace, "--"] + argv, capture_output=True, text=True,
                       env=env)
    if f.returncode != 0:
        print("%s: forkscope run failed (rc %d)" % (name, f.returncode))
        return
    hc, hp, hl, summary = heaptrack_figures(path)
    xc, xp, xl, _ = heaptrack_figures(path, "libstdc++")
    fc, fp, fl, m = forkscope_figures(trace)
    print("%-22s %-14s %12s %14s %14s" % (name, "tool", "alloc calls", "peak bytes", "leaked bytes"))
    print("%-22s %-14s %12d %14d %14d" % ("", "heaptrack", hc, hp, hl))
    print("%-22s %-14s %12d %14d %14d" % ("", " w/o libstdc++", xc, xp, xl))
    print("%-22s %-14s %12d %14d %14d" % ("", "forkscope", fc, fp, fl))
    print("%-22s %-14s %+12d %+14d %+14d" % ("", "fsk - ht w/o", fc - xc, fp - xp, fl - xl))
    if known:
        print("%-22s program's own count: %s" % ("", known(f.stdout)))
    print("%-22s heaptrack_print: %s" % ("", "; ".join(summary)))
    print("%-22s forkscope: %d calls + %d reallocs, %d frees" % ("", m["calls"], m["reallocs"], m["frees"]))


def malloc_count_known(out):
    kv = dict(w.split("=", 1) for ln in out.splitlines() if ln.startswith("@ counts")
              for w in ln.split()[2:])
    calls = sum(int(kv[k]) for k in ("malloc", "calloc", "realloc", "reallocarray",
                                     "posix_memalign", "aligned_alloc", "memalign"))
    return "%d calls (%s of them reallocarray), %s frees" % (calls, kv["reallocarray"], kv["free"])


def main():
    missing = [t for t in ("heaptrack", "heaptrack_print", "zstd") if not shutil.which(t)]
    if missing or not os.path.exists(FSK):
        print("heaptrack comparison skipped: missing %s" % ", ".join(missing or [FSK]))
        return
    tmp = tempfile.mkdtemp(prefix="fsk-htcmp-")
    try:
        print("forkscope vs heaptrack (heaptrack figures exact, from its data file)")
        mc = os.path.join(B, "progs", "malloc_count")
        if os.path.exists(mc):
            one("malloc_count 20000 1", [mc, "20000", "1"], tmp, malloc_count_known)
        # the interpreter itself, not a wrapper script that execs it
        py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else os.path.realpath(sys.executable)
        if py:
            one("python3 script", [py, "-c", PY_SCRIPT], tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
