#!/usr/bin/env python3
"""make bench: traced/untraced wall-time ratios, median of alternating runs.

Each workload runs untraced and under every available tracer in turn,
REPS times, alternating so machine noise hits all configurations alike;
each repetition starts one configuration later, so that none always runs
in the same place of the round.
Prints median ratio (min-max) per configuration, then the same runs'
CPU time ratios (user+sys of the whole tree, the tracer's own processes
included: on this machine a run's wall time can jump by a third from one
run to the next, its CPU time much less), then the floors run in the
same rounds (the malloc rows': naive recorders; the other rows':
tests/bench/floor/scan_floor.c, which scans every image and records
nothing; the python, gcc and make rows: the naive recorders too, and
forkscope with one-frame stacks), then trace bytes per event, the scan
cost per GiB resident and the per-image start cost (under the scan floor
too). No number here is
asserted by a test. A run's trace of many files is removed when the bench
ends, not before the next run (discard()).
"forkscope" records 32-frame stacks (the default), "fsk --stack-depth 0"
events only, "fsk --sample-bytes" about one malloc-family call per
512 KiB allocated (with stacks). BENCH_OLD_LIB=path/to/libforkscope.so adds both
configurations with that library (before/after comparisons).
Arguments run only the workloads and extra rows whose name contains one of
them ("bash", "make", "start" for the per-image start cost, "scan cost").
"""
import json, os, random, resource, shutil, statistics, subprocess, sys, tempfile, time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
B = os.path.join(TOP, "build")
FSK = os.path.join(B, "forkscope")
LIB = os.path.join(B, "libforkscope.so")
BENCH = os.path.join(B, "bench")
REPS = int(os.environ.get("BENCH_REPS", "5"))
ONLY = sys.argv[1:]
tmp = tempfile.mkdtemp(prefix="fsk-bench-")
sys.path.insert(0, os.path.join(TOP, "tests"))
sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
from cgen import gen_c  # noqa: E402


def fsk_cmd(extra, lib=None):
    def wrap(cmd, n):
        d = os.path.join(tmp, "t%d" % n)
        pre = ["env", "FORKSCOPE_LIB=" + lib] if lib else []
        return pre + [FSK, "run", "-q", "-o", d] + extra + ["--"] + cmd
    return wrap


def heaptrack(cmd, n):
    return ["heaptrack", "-o", os.path.join(tmp, "ht%d" % n)] + cmd


def strace(cmd, n):
    return ["strace", "-f", "-qq", "-o", "/dev/null"] + cmd


OLD = os.environ.get("BENCH_OLD_LIB")
NEW = None
if OLD:
    # Both libraries run from copies made alike: the page cache holds a
    # file's pages in folios whose sizes depend on how it was written (the
    # linker's writes, cp's), and an exec maps a library's code a folio at
    # a time, so two copies of one library took 60 and 61 page faults an
    # exec of /bin/true (~15 us apart) until both were read in afresh.
    NEW, OLD = (os.path.join(tmp, "libs", d, "libforkscope.so") for d in ("new", "old"))
    for src, dst in ((LIB, NEW), (os.path.abspath(os.environ["BENCH_OLD_LIB"]), OLD)):
        os.makedirs(os.path.dirname(dst))
        with open(src, "rb") as f, open(dst, "wb") as g:
            g.write(f.read())
    LIB = NEW
CONFIGS = [("forkscope", fsk_cmd([], NEW)), ("fsk --stack-depth 0", fsk_cmd(["--stack-depth", "0"], NEW)),
           ("fsk --sample-bytes", fsk_cmd(["--sample-bytes", "524288"], NEW)),
           ("fsk --no-malloc", fsk_cmd(["--no-malloc"], NEW))]
if OLD:
    CONFIGS += [("old lib", fsk_cmd([], OLD)), ("old --stack-depth 0", fsk_cmd(["--stack-depth", "0"], OLD))]
if shutil.which("heaptrack"):
    CONFIGS.append(("heaptrack", heaptrack))
if shutil.which("strace"):
    CONFIGS.append(("strace -f", strace))


def floor_cmd(kind):
    """A naive recorder of tests/bench/floor/malloc_floor.c preloaded
    instead of forkscope. Its records go to /dev/null: at 32 bytes a call,
    writing them to a file beside the traces took most of its time (10x
    on the 1-thread row), where the floor is the cost of the recording."""
    def wrap(cmd, n):
        return ["env", "LD_PRELOAD=" + os.path.join(BENCH, "floor_%s.so" % kind),
                "FLOOR_OUT=" + os.devnull] + cmd
    return wrap


# The malloc rows' floors, the naive recorders of the performance issue,
# run in the same alternation and printed in a table of their own.
FLOOR_KINDS = [("bare shim", "shim"), ("8-byte word a call", "word"), ("append+clock_gettime", "clock"),
               ("append+rdtsc", "tsc"), ("append+rdtsc+unw_bt", "unwind")]
FLOORS = [(label, floor_cmd(kind)) for label, kind in FLOOR_KINDS]
FLOOR_ROWS = "5M malloc/free"
# Rows of real programs that allocate a lot: the naive recorders run there
# too, beside forkscope with and without stacks, so that their targets
# can be read against what recording every call costs without design.
NAIVE_ROWS = ("python3", "gcc", "make")
SCAN_FLOOR = os.path.join(BENCH, "floor_scan.so")


def scan_floor_cmd(cmd, n):
    """tests/bench/floor/scan_floor.c preloaded instead of forkscope: the
    least that scanning every image at its start, forks, exec and exit
    and writing a file per image costs, recording nothing."""
    d = os.path.join(tmp, "fl%d" % n)
    os.mkdir(d, 0o700)
    return ["env", "LD_PRELOAD=" + SCAN_FLOOR, "FLOOR_DIR=" + d] + cmd


# The other rows' floor, in the same alternation, in a table of its own.
LIFE_FLOORS = [("scan_floor", scan_floor_cmd)] if os.path.exists(SCAN_FLOOR) else []
# On the rows of real programs that allocate most: call stacks of one
# frame, beside none and 32 (the main table's), in a table of their own:
# what a capture costs whatever its depth (finding the program's frame,
# interning the stack, a bigger record) against what the frames above add.
DEPTH1 = [("fsk --stack-depth 1", fsk_cmd(["--stack-depth", "1"], NEW))]
DEPTH_COLS = [CONFIGS[1]] + DEPTH1 + [CONFIGS[0]]


def real_python():
    """The python3 interpreter itself: where python3 on PATH is a wrapper
    (pyenv's shim is a bash script that runs a dozen programs first), the
    python row would time the wrapper."""
    py = shutil.which("python3")
    if not py:
        return None
    try:
        out = subprocess.run([py, "-c", "import sys; print(sys.executable)"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=30).stdout.decode().strip()
    except (OSError, subprocess.TimeoutExpired):
        return py
    return out if out and os.access(out, os.X_OK) else py


def workloads():
    py = real_python()
    src = os.path.join(tmp, "big.c")
    gen_c(src, 200)  # 200 functions, 1405 lines (the row keeps its first name)
    mk = os.path.join(tmp, "mkproj")  # a copy: the build never writes into the checkout
    if os.path.isdir(os.path.join(TOP, "tests", "data", "mkproj")):
        shutil.copytree(os.path.join(TOP, "tests", "data", "mkproj"), mk)
    w = [
        ("5M malloc/free, 1 thread", [os.path.join(BENCH, "malloc_bench"), "5000000", "1", "0"]),
        ("5M malloc/free, depth 20", [os.path.join(BENCH, "malloc_bench"), "5000000", "1", "20"]),
        ("5M malloc/free, 2 threads", [os.path.join(BENCH, "malloc_bench"), "5000000", "2", "0"]),
        ("2000 fork+touch+_exit+wait", [os.path.join(BENCH, "fork_bench"), "2000", "16"]),
        ("bash: 1000 x /bin/true", ["bash", "-c", "for i in $(seq 1000); do /bin/true; done"]),
        ("256 MiB, 4 children write 1/4", [os.path.join(BENCH, "cow_bench"), "256", "4"]),
        ("python3 dict/list loop", [py, "-c", "d={}\nfor i in range(300000):\n d[i]=[i]*3\nprint(len(d))"]),
        ("gcc -O2, 2000 lines", ["gcc", "-O2", "-c", src, "-o", os.path.join(tmp, "big.o")]),
    ]
    if os.path.isdir(mk):
        w.append(("make -j2 small project", ["make", "-s", "-B", "-j2", "-C", mk]))
    return [x for x in w if not ONLY or any(o in x[0] for o in ONLY)]


def timed(cmd):
    """Wall seconds, exit status and CPU seconds (user+sys of the tree:
    every descendant was waited for by its parent, so it is counted in
    the rusage of its parent, and that in ours). Each run gets an
    environment variable of a random length (0 to 4 KiB): the size of the
    environment moves the initial stack, and malloc_bench at depth 20 took
    0.06 s untraced with most sizes but 0.08-0.09 s with some (1 in 8),
    so a fixed environment gave one configuration (the untraced run, in
    two make bench runs) such a placement every time and its row a ratio
    ~30% too low."""
    env = dict(os.environ, BENCH_ENV_PAD="x" * random.randrange(0, 4096, 8))
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, r.returncode, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime


# Where discard() puts the traces of many files until the bench ends.
TRASH = os.path.join(tmp, "trash")
TRASH_FILES = 64


def discard(p):
    """Removes a run's trace directory p, or moves it aside when it holds
    more than TRASH_FILES files (removed when the bench ends): on ext4
    without a journal (this machine's root file system), each file created
    in the half minute after files were deleted walks every recently
    deleted inode of its block group, so removing the 2000 stream files of
    a bash row's run between runs made every create of the next runs cost
    200 to 600 us, traced and floor alike (a cost of this harness, not of
    tracing)."""
    try:
        many = sum(1 for _ in os.scandir(p)) > TRASH_FILES
    except OSError:
        many = False
    if many:
        os.makedirs(TRASH, exist_ok=True)
        os.rename(p, os.path.join(TRASH, "%d" % len(os.listdir(TRASH))))
    else:
        shutil.rmtree(p, ignore_errors=True)


def clean():
    """Discards the traces of a run; the inputs (big.c, mkproj) and the
    libraries compared (libs) stay."""
    for e in os.listdir(tmp):
        p = os.path.join(tmp, e)
        if os.path.isdir(p) and e not in ("mkproj", "trash", "libs"):
            discard(p)


def main():
    print("forkscope bench: %d alternating runs per configuration; ratio = traced / untraced wall time" % REPS)
    print("%-32s %-8s " % ("workload", "base s") + " ".join("%-22s" % c[0] for c in CONFIGS))
    n = 0
    floor_lines, cpu_lines, life_lines, naive_lines, depth_lines = [], [], [], [], []
    for name, cmd in workloads():
        malloc_row = name.startswith(FLOOR_ROWS)
        naive_row = name.startswith(NAIVE_ROWS)
        naive = FLOORS if all(os.path.exists(os.path.join(BENCH, "floor_%s.so" % k))
                              for _, k in FLOOR_KINDS) else []
        if malloc_row:
            floors = naive
        else:
            floors = LIFE_FLOORS + (naive + DEPTH1 if naive_row else [])
        base, times = [], {c[0]: [] for c in CONFIGS + floors}
        base_cpu, cpus = [], {c[0]: [] for c in CONFIGS + floors}
        # Each repetition starts one configuration later (the untraced run
        # among them): on this noisy machine the place of a run in the
        # round weighed several percent, which a fixed order gave the
        # same configurations every time.
        order = [("", None)] + CONFIGS + floors
        for rep in range(REPS):
            k = rep % len(order)
            for cname, wrap in order[k:] + order[:k]:
                if wrap is None:
                    t, _, c = timed(cmd)
                    base.append(t)
                    base_cpu.append(c)
                    continue
                n += 1
                t, rc, c = timed(wrap(cmd, n))
                times[cname].append(t if rc == 0 else float("nan"))
                cpus[cname].append(c if rc == 0 else float("nan"))
                clean()
        mb = statistics.median(base)
        mc = statistics.median(base_cpu)

        def cells(configs, runs, b):
            out = []
            for cname, _ in configs:
                r = [t / b for t in runs[cname]] if b > 0 else [float("nan")]
                out.append("%5.2fx (%4.2f-%4.2f)    " % (statistics.median(r), min(r), max(r)))
            return " ".join(c[:22].ljust(22) for c in out)
        print("%-32s %-8.3f " % (name, mb) + cells(CONFIGS, times, mb), flush=True)
        if floors and malloc_row:
            floor_lines.append("%-32s %-8.3f " % (name, mb) + cells(floors, times, mb))
        elif floors:
            if LIFE_FLOORS:
                life_lines.append("%-32s %-8.3f " % (name, mb) + cells(LIFE_FLOORS + CONFIGS[:1], times, mb))
            if naive and naive_row:
                naive_lines.append("%-32s %-8.3f " % (name, mb) + cells(FLOORS + CONFIGS[:2], times, mb))
            if naive_row:
                depth_lines.append("%-32s %-8.3f " % (name, mb) + cells(DEPTH_COLS, times, mb))
        cpu_lines.append("%-32s %-8.3f " % (name, mc) + cells(CONFIGS, cpus, mc))

    def table(title, configs, lines):
        if lines:
            print(title)
            print("%-32s %-8s " % ("workload", "base s") + " ".join("%-22s" % c[0] for c in configs))
            for line in lines:
                print(line)
    table("the same runs, ratio = traced / untraced CPU time (user+sys of the whole tree, the"
          " tracer's own processes included; base s is CPU seconds)", CONFIGS, cpu_lines)
    table("the malloc rows' naive floors (tests/bench/floor/malloc_floor.c; written to /dev/null: 32-byte"
          " records, or the 8-byte word of the address alone, the least a recorder of every call writes),"
          " preloaded instead of forkscope in the same runs: what recording costs on this machine without"
          " design", FLOORS, floor_lines)
    table("the other rows' floor (tests/bench/floor/scan_floor.c, preloaded instead of forkscope in the same"
          " runs: each image's maps and present pages read at its start, before each fork, at exec and"
          " exit, a file per image, a fault sampler per fork child; nothing recorded), beside forkscope's",
          LIFE_FLOORS + CONFIGS[:1], life_lines)
    table("the malloc rows' naive floors on the real programs that allocate most, in the same runs,"
          " beside forkscope with and without stacks (the floors record every malloc-family call of"
          " every image and scan nothing)", FLOORS + CONFIGS[:2], naive_lines)
    table("call stacks on the same rows, in the same runs: none, one frame (what a capture costs whatever"
          " its depth: the program's frame found, the stack interned, a bigger record), 32 frames",
          DEPTH_COLS, depth_lines)
    extras()
    # calls, peak and leaks against heaptrack's on the same programs
    if not ONLY or any(o in "heaptrack comparison" for o in ONLY):
        subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "heaptrack_cmp.py"), B])


SCAN_NAMES = {2: "fork (baseline)", 5: "exit (compare)", 6: "wait (compare)"}


def scan_cost():
    """Median SCAN_END cost over resident size, per trigger, from the
    streams of tests/progs/scan_cost (MiB touched, forks and reaps)."""
    sys.path.insert(0, os.path.join(TOP, "tests"))
    sys.dont_write_bytecode = True
    from t_cow_stream import scans
    prog = os.path.join(B, "progs", "scan_cost")
    for mib, virt in ((512, 0), (512, 64)):
        d = os.path.join(tmp, "sc")
        subprocess.run([FSK, "run", "-q", "-o", d, "--", prog, "cost", str(mib), str(virt), "10"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        per = {}
        for f in os.listdir(d):
            for trig, _, cost, regs in scans(os.path.join(d, f)):
                gib = sum(r["resident"] for r in regs) * os.sysconf("SC_PAGE_SIZE") / 2**30
                if trig in SCAN_NAMES and gib > 0.25:
                    per.setdefault(trig, []).append(cost / 1e3 / gib)
        shutil.rmtree(d, ignore_errors=True)
        cells = ", ".join("%s %.0f" % (SCAN_NAMES[t], statistics.median(v)) for t, v in sorted(per.items()))
        print("scan cost, us per GiB resident (%d MiB resident%s): %s" %
              (mib, ", %d GiB virtual" % virt if virt else "", cells or "no scans"))


def cpu_time(cmd):
    return timed(cmd)[2]


def sampled_row():
    # --sample-bytes on the hottest allocator: user+sys CPU time (less noisy
    # than wall time on a shared machine), median ratio of alternating runs
    cmd = [os.path.join(BENCH, "malloc_bench"), "5000000", "1", "0"]
    sampled = [FSK, "run", "-q", "-f", "-o", os.path.join(tmp, "smp"), "--sample-bytes", "524288", "--"] + cmd
    r = []
    for _ in range(max(REPS, 9)):
        base = cpu_time(cmd)
        r.append(cpu_time(sampled) / base)
    print("5M malloc/free, --sample-bytes 524288: %.2fx CPU time (%.2f-%.2f), user+sys, %d alternating runs"
          % (statistics.median(r), min(r), max(r), len(r)))
    shutil.rmtree(os.path.join(tmp, "smp"), ignore_errors=True)


def maxrss_kib(cmd, env):
    """Peak RSS of one process run directly (not under `forkscope run`),
    in KiB, through the small rss_of launcher (see rss_of.c)."""
    r = subprocess.run([os.path.join(BENCH, "rss_of")] + cmd, env=env, capture_output=True, text=True)
    return int(r.stdout.split()[-1])


def peak_rss(traced_env):
    """Peak RSS the library adds to one traced process: median over
    alternating runs of the program with and without LD_PRELOAD."""
    progs = [("/bin/true", ["/bin/true"]),
             ("malloc_bench 1M", [os.path.join(BENCH, "malloc_bench"), "1000000", "1", "0"]),
             ("malloc_bench 1M, 2 threads", [os.path.join(BENCH, "malloc_bench"), "1000000", "2", "0"])]
    py = real_python()
    if py:
        progs.append(("python3 dict/list loop", [py, "-c", "d={}\nfor i in range(300000):\n d[i]=[i]*3"]))
    cells = []
    for name, cmd in progs:
        base, traced = [], []
        for _ in range(max(REPS, 3)):
            base.append(maxrss_kib(cmd, os.environ))
            traced.append(maxrss_kib(cmd, traced_env))
        cells.append("%s +%d KiB" % (name, statistics.median(traced) - statistics.median(base)))
    print("peak RSS added per traced process (32-frame stacks): " + ", ".join(cells))


def rules_file():
    """A trace-wide rules file as `forkscope run` makes one (viewer/run.c):
    a memfd of FSK_RULES_FILE_BYTES, every page allocated, the magic in
    its first slot. Its fd, or -1."""
    try:
        fd = os.memfd_create("forkscope-rules", 0)
    except (AttributeError, OSError):
        return -1
    try:
        os.posix_fallocate(fd, 0, 16 << 16)
        os.pwrite(fd, (0x73656c7572736b66).to_bytes(8, "little"), 0)
    except OSError:
        os.close(fd)
        return -1
    return fd


def start_cost():
    """Per-image start cost: loops of 200 execs of /bin/true (which
    allocates nothing) and of start_alloc (3 allocations, with their call
    stacks) with the library vs without (and with BENCH_OLD_LIB),
    alternating; medians over the rounds of the per-exec difference, in
    wall time and in the children's user+sys CPU time (less noisy on a
    shared machine). The library is preloaded without the runner here, so
    each image learns its call stacks' unwind rules itself; one more
    configuration per library gives it a trace-wide rules file as
    `forkscope run` does (rules_file), which the images before it filled.
    The execs are made by spawn_cost (posix_spawn and waitpid, nothing
    else); without it, by Python, whose own ~0.5 ms an exec adds noise."""
    def loop(prog, e):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        for _ in range(200):
            subprocess.run([prog], env=e)
        wall = (time.perf_counter() - t) / 200
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / 200
    libs = [("", LIB)] + ([("old lib ", OLD)] if OLD else [])
    envs = []
    for i, (_, lib) in enumerate(libs):
        d = os.path.join(tmp, "st%d" % i)
        os.mkdir(d, 0o700)
        envs.append(dict(os.environ, LD_PRELOAD=lib, FORKSCOPE_DIR=d))
    def creates(r):
        # what one new file costs in this file system, next to the streams
        d = os.path.join(tmp, "cr%d" % r)
        os.mkdir(d, 0o700)
        t = time.perf_counter()
        for k in range(200):
            os.close(os.open(os.path.join(d, "%d.fst" % k), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return (time.perf_counter() - t) / 200
    progs = [("/bin/true", "exec of /bin/true")]
    alloc = os.path.join(BENCH, "start_alloc")
    if os.access(alloc, os.X_OK):
        progs.append((alloc, "exec of a program making 3 allocations"))
    rounds = max(REPS, 3)
    spawner = os.path.join(BENCH, "spawn_cost")
    if os.access(spawner, os.X_OK) and not any("," in e["LD_PRELOAD"] + e["FORKSCOPE_DIR"] for e in envs):
        cfgs = ["-"] + ["LD_PRELOAD=%s,FORKSCOPE_DIR=%s" % (e["LD_PRELOAD"], e["FORKSCOPE_DIR"]) for e in envs]
        rfd = rules_file()
        tags = [tag for tag, _ in libs]
        if rfd >= 0:
            for i, (tag, lib) in enumerate(libs):
                d = os.path.join(tmp, "st_rules%d" % i)
                os.mkdir(d, 0o700)
                cfgs.append("LD_PRELOAD=%s,FORKSCOPE_DIR=%s,FORKSCOPE_RULES=/proc/%d/fd/%d"
                            % (lib, d, os.getpid(), rfd))
                tags.append("%swith the runner's rules file, " % tag)
        if LIFE_FLOORS and "," not in SCAN_FLOOR + tmp:
            d = os.path.join(tmp, "st_floor")
            os.mkdir(d, 0o700)
            cfgs.append("LD_PRELOAD=%s,FLOOR_DIR=%s" % (SCAN_FLOOR, d))
            tags.append("the floor (scan_floor.c instead of forkscope): ")
        for prog, what in progs:
            r = subprocess.run([spawner, str(rounds * 3), "200", prog, "--"] + cfgs,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                               pass_fds=(rfd,) if rfd >= 0 else ())
            lines = r.stdout.split("\n")
            if r.returncode != 0 or len(lines) < len(cfgs):
                print("per-image start cost (%s): spawn_cost failed: %s" % (what, r.stderr.strip()[:200]))
                continue
            base = lines[0].split()
            for tag, line in zip(tags, lines[1:]):
                f = line.split()
                print("%sper-image start cost (%s): %.0f us traced vs %.0f us untraced: +%.0f us"
                      " (CPU user+sys +%.0f us), %d rounds of 200 execs" % (tag, what, float(f[1]), float(base[1]),
                                                                           float(f[3]), float(f[4]), rounds * 3))
        if rfd >= 0:
            os.close(rfd)
        print("  of which creating the stream file: %.0f us (a plain create of a file in the same file system)"
              % (statistics.median(creates(r) for r in range(3)) * 1e6))
        return
    plain = [[] for _ in progs]
    traced = [[[] for _ in libs] for _ in progs]
    create = []
    for r in range(rounds):
        for k, (prog, _) in enumerate(progs):
            plain[k].append(loop(prog, os.environ))
            for i, e in enumerate(envs):
                traced[k][i].append(loop(prog, e))
        create.append(creates(r))
    for k, (_, what) in enumerate(progs):
        a = statistics.median(w for w, _ in plain[k])
        for (tag, _), t in zip(libs, traced[k]):
            b = statistics.median(w for w, _ in t)
            cpu = statistics.median(c - p[1] for (_, c), p in zip(t, plain[k]))
            print("%sper-image start cost (%s): %.0f us traced vs %.0f us untraced: +%.0f us"
                  " (CPU user+sys +%.0f us), %d rounds" % (tag, what, b * 1e6, a * 1e6, (b - a) * 1e6,
                                                          cpu * 1e6, rounds))
    print("  of which creating the stream file: %.0f us (a plain create of a file in the same file system)"
          % (statistics.median(create) * 1e6))


def unprivileged_cow_row():
    """The COW row once more as nobody, where pagemap hides frame numbers
    (most users): a fork's baseline of a big anonymous region is then
    counted from PAGEMAP_SCAN's runs instead of page by page."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("256 MiB, 4 children write 1/4, as nobody: not measured (not root, or no setpriv)")
        return
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    d = tempfile.mkdtemp(prefix="fsk-bench-nobody-")
    os.chmod(d, 0o777)
    cmd = [os.path.join(BENCH, "cow_bench"), "256", "4"]
    r = []
    for i in range(REPS):
        base, rc0, _ = timed(nobody + cmd)
        t, rc, _ = timed(nobody + [FSK, "run", "-q", "-o", os.path.join(d, "t%d" % i), "--"] + cmd)
        if rc0 or rc:
            print("256 MiB, 4 children write 1/4, as nobody: failed (exit %d, %d)" % (rc0, rc))
            shutil.rmtree(d, ignore_errors=True)
            return
        r.append(t / base)
    shutil.rmtree(d, ignore_errors=True)
    print("256 MiB, 4 children write 1/4, as nobody (frame numbers hidden): %.2fx (%.2f-%.2f), %d alternating runs"
          % (statistics.median(r), min(r), max(r), len(r)))


def fork_floor():
    """The fork row's floor: fork_floor does by hand, without a tracer,
    the least that scanning every child needs (the parent's maps and
    pagemap before each fork, the child's own at its exit, a fault sampler
    a child, a file a child), one part at a time and all together, the
    modes alternating."""
    prog = os.path.join(BENCH, "fork_floor")
    if not os.access(prog, os.X_OK):
        return
    modes = [0, 1, 2, 4, 8, 15]
    got = {m: [] for m in modes}
    for rep in range(max(REPS, 5)):
        k = rep % len(modes)
        for m in modes[k:] + modes[:k]:
            d = os.path.join(tmp, "ff%d_%d" % (rep, m))
            os.mkdir(d, 0o700)
            r = subprocess.run([prog, "2000", "16", str(m), d], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True)
            discard(d)
            if r.returncode != 0:
                print("fork row's floor: fork_floor failed: %s" % r.stderr.strip()[:200])
                return
            got[m].append(float(r.stdout.split()[1]))
    med = {m: statistics.median(v) for m, v in got.items()}
    base = med[0]
    print("fork row's floor (fork_floor, no tracer: what scanning every child needs at least): %.0f us a fork"
          " against %.0f plain, %.2fx; of which the parent's maps and pagemap before the fork %+.0f us,"
          " the child's own at exit %+.0f, a fault sampler a child %+.0f, a file a child %+.0f"
          % (med[15], base, med[15] / base, med[1] - base, med[2] - base, med[4] - base, med[8] - base))


def runner_cost():
    """What `forkscope run` itself adds to every row, whatever CMD does:
    `forkscope run -q -- /bin/true` against /bin/true (which includes the
    library's start cost in /bin/true), 41 alternating runs each."""
    true = shutil.which("true") or "/bin/true"
    d = os.path.join(tmp, "rc")
    plain, run = [], []
    for _ in range(41):
        for cmd, out in (([true], plain), ([FSK, "run", "-q", "-f", "-o", d, "--", true], run)):
            t, _, _ = timed(cmd)
            out.append(t)
    shutil.rmtree(d, ignore_errors=True)
    a, b = statistics.median(plain) * 1e3, statistics.median(run) * 1e3
    print("forkscope run's own cost (forkscope run -q -- /bin/true against /bin/true, 41 alternating runs):"
          " %.2f ms against %.2f ms, +%.2f ms a run" % (b, a, b - a))


def extras():
    if not ONLY or any(o in "forkscope run's own cost" for o in ONLY):
        runner_cost()
    if not ONLY or any(o in "2000 fork+touch+_exit+wait" for o in ONLY):
        fork_floor()
    if not ONLY or any(o in "256 MiB, 4 children write 1/4" for o in ONLY):
        unprivileged_cow_row()
    if not ONLY or any(o in "5M malloc/free" for o in ONLY):
        sampled_row()
    if not ONLY or any(o in "trace bytes per event" for o in ONLY):
        bytes_per_event()
    if not ONLY or any(o in "scan cost" for o in ONLY):
        scan_cost()
    if not ONLY or any(o in "per-image start cost" for o in ONLY):
        start_cost()
    if not ONLY or any(o in "peak RSS" for o in ONLY):
        d = os.path.join(tmp, "rss")
        os.mkdir(d, 0o700)
        peak_rss(dict(os.environ, RSS_OF_PRELOAD=LIB, FORKSCOPE_DIR=d))
    shutil.rmtree(tmp, ignore_errors=True)


def report_run(d):
    """Wall seconds, peak RSS in KiB and the JSON of `forkscope report`
    over trace directory d."""
    t = time.perf_counter()
    p = subprocess.Popen([FSK, "report", "--json", d], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         universal_newlines=True)
    out = p.stdout.read()
    p.stdout.close()
    _, status, ru = os.wait4(p.pid, 0)  # reaped here, for its own rusage
    rt = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    return rt, ru.ru_maxrss, out


def bytes_per_event():
    """Trace bytes per event, and the report over traces of 2 and 10
    million events (the issue's size): its time, events/s and peak RSS.
    Live state is the same small set of blocks in both, so the peak RSS
    shows whether the report's memory follows live state or the trace."""
    sizes = []
    for pairs in (1000000, 5000000):
        d = os.path.join(tmp, "bpe%d" % pairs)
        subprocess.run([FSK, "run", "-q", "-o", d, "--", os.path.join(BENCH, "malloc_bench"), str(pairs)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        # the report, the trace in the page cache (best of 3: the report's
        # own speed, not the disk's or the machine's noise)
        runs = [report_run(d) for _ in range(3)]
        rt = min(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        shutil.rmtree(d, ignore_errors=True)
        try:
            procs = json.loads(runs[0][2])["processes"]
            ev = sum(p["malloc"]["calls"] + p["malloc"]["frees"] for p in procs)
        except (ValueError, KeyError) as e:
            print("trace bytes per event: report failed (%s)" % e)
            return
        if not sizes:
            print("trace bytes per malloc/free event: %.1f (%d events, %.1f MiB, 32-frame stacks)"
                  % (size / max(ev, 1), ev, size / 2**20))
        sizes.append((ev, size, rt, rss))
    print("report over those traces (best of 3): " + "; ".join(
        "%.1f M events (%.0f MiB) %.2f s, %.1f M events/s, peak RSS %.1f MiB"
        % (ev / 1e6, size / 2**20, rt, ev / rt / 1e6, rss / 1024) for ev, size, rt, rss in sizes))


if __name__ == "__main__":
    main()
