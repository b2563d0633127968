"""Helpers for forkscope's integration tests (Python 3, standard library only).

tests/run.sh sets the environment this module reads:
  FSK            the forkscope command under test (the ASan build)
  FORKSCOPE_LIB  libforkscope.so that `forkscope run` preloads
  FSK_STRICT_LIB the same library built to abort when a hook re-enters malloc
  FSK_SAMPLES    build/samples, FSK_PROGS build/progs, FSK_TOP the repository

A test prints one line per check, "PASS name" or "FAIL name: why", and ends
with finish(): exit status 1 if any check failed. skip(reason) exits 77
(run.sh reports it as skipped) when a prerequisite is missing. Lines that
start with "NOTE " are for the reader and counted by nobody.

Samples and test programs print machine-readable lines "@ KIND key=value ..."
(see samples/sample.h); at_lines() parses them.
"""
import atexit
import collections
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

_failed = 0
_passed = 0


def check(name, cond, why=""):
    """Records one check; returns cond so a caller can stop early."""
    global _failed, _passed
    if cond:
        _passed += 1
        print("PASS %s" % name, flush=True)
    else:
        _failed += 1
        why = str(why).replace("\n", " | ")
        if len(why) > 600:
            why = why[:600] + "..."
        print("FAIL %s: %s" % (name, why or "condition false"), flush=True)
    return bool(cond)


def note(text):
    print("NOTE %s" % text, flush=True)


def skip(reason):
    print(reason, flush=True)
    sys.exit(77)


def finish():
    if _passed == 0 and _failed == 0:
        print("FAIL no-checks: the test ran no check", flush=True)
        sys.exit(1)
    sys.exit(1 if _failed else 0)


def env(name, default=None):
    return os.environ.get(name, default)


def top():
    return env("FSK_TOP") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fsk():
    return env("FSK") or os.path.join(top(), "build", "asan", "forkscope")


def sample(name):
    return os.path.join(env("FSK_SAMPLES") or os.path.join(top(), "build", "samples"), name)


def prog(name):
    return os.path.join(env("FSK_PROGS") or os.path.join(top(), "build", "progs"), name)


def bench_prog(name):
    """A program of build/bench, from the same build/ as prog's (run.sh's
    world-readable copy when the checkout is not reachable by nobody)."""
    return os.path.join(os.path.dirname(os.path.dirname(prog(name))), "bench", name)


def _defaults():
    """Lets a test run on its own (python3 tests/t_x.py) as under run.sh."""
    os.environ.setdefault("FORKSCOPE_LIB", os.path.join(top(), "build", "libforkscope.so"))


def require(*paths):
    """Skips the test (exit 77) unless forkscope, its library and paths exist."""
    _defaults()
    lib = env("FORKSCOPE_LIB")
    for p in (fsk(), lib) + tuple(paths):
        if not os.path.exists(p):
            skip("missing %s (build it first: make test builds everything)" % p)


_tmp = None


def tmpdir():
    """A scratch directory for this test process, removed at exit. World
    writable and traversable so an unprivileged run can write below it."""
    global _tmp
    if _tmp is None:
        _tmp = tempfile.mkdtemp(prefix="fsk-test.")
        os.chmod(_tmp, 0o777)
        atexit.register(shutil.rmtree, _tmp, True)
    return _tmp


_seq = 0


def fresh_dir(tag="t"):
    """A new, not yet existing path inside tmpdir()."""
    global _seq
    _seq += 1
    return os.path.join(tmpdir(), "%s.%d" % (re.sub(r"[^A-Za-z0-9_.-]", "_", tag), _seq))


class Result:
    """One finished command: argv, rc (negative: killed by that signal;
    None: timed out), stdout and stderr as text, and for a traced run the
    trace directory."""

    def __init__(self, argv, rc, out, err, trace=None, timed_out=False):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        self.trace, self.timed_out = trace, timed_out
        self._report = None
        self.report_error = None

    def report(self):
        """The parsed `forkscope report TRACE --json`, or None (then
        report_error says why)."""
        if self._report is None and self.report_error is None:
            self._report, self.report_error = load_report(self.trace)
        return self._report

    def describe(self):
        tail = self.err.strip().splitlines()[-3:]
        return "rc=%s stderr tail=%r" % (self.rc, tail)


def _run(argv, timeout, cwd, extra_env, stdin_data, trace=None, preexec=None):
    e = dict(os.environ)
    if extra_env:
        e.update(extra_env)
    try:
        p = subprocess.run(argv, cwd=cwd, env=e, input=stdin_data,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, preexec_fn=preexec)
    except subprocess.TimeoutExpired as t:
        out = (t.stdout or b"").decode("utf-8", "replace")
        err = (t.stderr or b"").decode("utf-8", "replace")
        return Result(argv, None, out, err, trace, timed_out=True)
    return Result(argv, p.returncode, p.stdout.decode("utf-8", "replace"),
                  p.stderr.decode("utf-8", "replace"), trace)


def run_plain(argv, timeout=60, cwd=None, env=None, stdin_data=b"", wrap=()):
    """Runs argv untraced. wrap is a prefix such as a setpriv command."""
    return _run(list(wrap) + list(argv), timeout, cwd, env, stdin_data)


def run_traced(argv, timeout=60, cwd=None, env=None, stdin_data=b"", wrap=(),
               trace=None, options=(), lib=None):
    """Runs `$FSK run -o TRACE [options] -- argv`; TRACE is a fresh path
    unless given. lib overrides FORKSCOPE_LIB (e.g. the strict build)."""
    trace = trace or fresh_dir(os.path.basename(argv[0]))
    extra = dict(env or {})
    if lib:
        extra["FORKSCOPE_LIB"] = lib
    cmd = list(wrap) + [fsk(), "run", "-o", trace] + list(options) + ["--"] + list(argv)
    return _run(cmd, timeout, cwd, extra, stdin_data, trace)


REC_SCAN, REC_REGION, REC_SCAN_END = 17, 18, 19
SCAN_PFN_VISIBLE = 1
KINDS = [None, "text", "rodata", "data", "bss", "heap", "stack", "thread_stack", "anon",
         "file", "lib", "shm", "vdso", "vvar", "forkscope"]


TINY, MICRO = 0x8000, 0x4000


def tiny_len(typ, version):
    """Bytes of the tiny or micro record (trace.h) whose type field is typ;
    0 when it is neither."""
    if not typ & TINY or version < 3:
        return 0
    return 4 if version >= 5 and typ & MICRO else 8


def _sext(v, n):
    v &= (1 << n) - 1
    return v - (1 << n) if v >> (n - 1) else v


def tiny_event(w, n, version, last_addr, last_stack):
    """What the tiny or micro record w (its n bytes as a little-endian
    number) of a stream of `version` stands for, as trace.h gives it:
    ("malloc" or "free", addr, size, stack, fn, mmapped, dt), or None for
    an MPAD. last_addr and last_stack: the thread's previous compact
    record's address and its previous compact allocation's stack id; dt:
    its time after that record's (TLATER), else 0."""
    if version < 5:
        addr = (w >> 16 & ((1 << 43) - 1)) << 4
        if w & 0x4000:
            return "malloc", addr, (w & 0x1fff) | (w >> 59) << 13, 0, 1, bool(w & 0x2000), 0
        return "free", addr, 0, 0, 10, bool(w & 0x2000), 0
    kind = w >> 12 & 3
    if n == 4:
        if kind == 3:
            return None
        if kind == 0:
            return "free", last_addr + 16 * _sext((w & 0xfff) | (w >> 16) << 12, 28), 0, 0, 10, False, 0
        d = _sext((w >> 11 & 1) | (w >> 16) << 1, 17)
        return "malloc", last_addr + 16 * d, w & 0x7ff, last_stack if kind == 2 else 0, 1, False, 0
    if kind == 2:
        return ("malloc", last_addr + 16 * _sext(w >> 16, 24), w & 0xfff, w >> 40 & 0xfffff, w >> 60,
                False, 0)
    if kind == 3:  # TLATER
        addr, dt = last_addr + 16 * _sext(w >> 36, 28), w >> 16 & ((1 << 19) - 1)
        if w & 0x800:
            return "malloc", addr, w & 0x7ff, last_stack if w >> 35 & 1 else 0, 1, False, dt
        return "free", addr, 0, 0, 10, False, dt
    addr = (w >> 16 & ((1 << 43) - 1)) << 4
    if kind == 0:
        return "free", addr, 0, 0, 10, bool(w & 0x800), 0
    return "malloc", addr, (w & 0x7ff) | (w >> 59) << 11, 0, 1, bool(w & 0x800), 0


def stream_walk(b):
    """(offset, type, length) of each record of the raw stream file whose
    bytes are b, in order, tiny and micro ones included (type 0xf000 for
    an MPAD); then, where the records stop making sense before the end,
    (offset, None, 0)."""
    version = struct.unpack_from("<H", b, 8)[0]
    off = struct.unpack_from("<I", b, 12)[0]
    while off + 4 <= len(b):
        typ, size = struct.unpack_from("<HH", b, off)
        n = tiny_len(typ, version)
        if n:
            yield off, typ, n
            off += n
            continue
        if size < 16 or off + size > len(b):
            yield off, None, 0
            return
        yield off, typ, size
        off += size
    if off != len(b):
        yield off, None, 0


def stream_records(path):
    """(type, payload) of each record of one raw stream file, in order;
    tiny and micro malloc records are left out."""
    b = open(path, "rb").read()
    version = struct.unpack_from("<H", b, 8)[0]
    for off, typ, n in stream_walk(b):
        if typ is None:
            break
        if not tiny_len(typ, version):
            yield typ, b[off + 16: off + n]


def stream_scans(path):
    """[(trigger, flags, cost_ns, [region dict])] of one raw stream file,
    in order, read from its SCAN/REGION/SCAN_END records."""
    out, cur = [], None
    for typ, p in stream_records(path):
        if typ == REC_SCAN:
            _, trig, flags = struct.unpack_from("<IHH", p)
            cur = [trig, flags, 0, []]
        elif typ == REC_REGION and cur is not None:
            v = struct.unpack_from("<QQQQIHHIIIIIIII", p)
            plen = struct.unpack_from("<I", p, 72)[0]
            cur[3].append(dict(start=v[0], end=v[1], kind=KINDS[v[5]] if v[5] < len(KINDS) else v[5],
                               perms=v[6], resident=v[7], swapped=v[8], shared=v[9], unshared=v[10],
                               first_touch=v[11], shared_at_fork=v[12], cow_faults=v[13], copied=v[14],
                               path=p[76:76 + plen].decode("utf-8", "replace")))
        elif typ == REC_SCAN_END and cur is not None:
            cur[2] = struct.unpack_from("<Q", p, 8)[0]
            out.append(tuple(cur))
            cur = None
    return out


def load_report(trace, timeout=120):
    """(report dict, None) or (None, why)."""
    if not trace or not os.path.isdir(trace):
        return None, "no trace directory %s" % trace
    try:
        p = subprocess.run([fsk(), "report", trace, "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "forkscope report --json timed out after %ds" % timeout
    err = p.stderr.decode("utf-8", "replace").strip()
    if p.returncode != 0:
        return None, "forkscope report --json: rc=%d %s" % (p.returncode, err[-400:])
    try:
        doc = json.loads(p.stdout.decode("utf-8"))
    except ValueError as e:
        return None, "forkscope report --json printed invalid JSON: %s" % e
    if not isinstance(doc, dict) or doc.get("forkscope") != 1 or not isinstance(doc.get("processes"), list):
        return None, "report lacks forkscope=1 / processes[]: %r" % str(doc)[:200]
    if err:
        note("report stderr: %s" % err[-300:])
    return doc, None


def collapsed(trace):
    """`forkscope export --format collapsed` of trace as {pid: Counter(tuple
    of frames, root first -> bytes)}, or None when the export fails."""
    p = subprocess.run([fsk(), "export", trace, "--format", "collapsed"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode:
        return None
    out = collections.defaultdict(collections.Counter)
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        head, n = line.rsplit(" ", 1)
        m = re.match(r"\S+ \[(\d+)\];(.*)$", head)
        if m:
            out[int(m.group(1))][tuple(m.group(2).split(";"))] += int(n)
    return out


def expected_chains(out):
    """{pid: {chain: bytes}} of a program's "@ expect pid= chain= bytes=" lines."""
    want = collections.defaultdict(dict)
    for d in at_dicts(out, "expect"):
        want[num(d["pid"])][d["chain"]] = num(d["bytes"])
    return want


def check_chains(prefix, want, frames_bytes, is_alloc, chain_of):
    """Checks one process's collapsed stacks that end in an allocating
    function (is_alloc(name)) against want {chain: bytes}: each chain's
    bytes, and no other chain. chain_of(frames) is the program's chain,
    None for a stack the program never had."""
    have, foreign = collections.Counter(), []
    for frames, n in frames_bytes.items():
        if not is_alloc(frames[-1]):
            continue
        chain = chain_of(frames)
        if chain is None:
            foreign.append(";".join(frames))
        else:
            have[chain] += n
    for chain, n in sorted(want.items()):
        check("%s.%s" % (prefix, chain), have.get(chain) == n,
              "want %d bytes, got %r" % (n, have.get(chain)))
    extra = sorted(set(have) - set(want))
    check(prefix + ".no-other-stacks", not extra and not foreign,
          "stacks the program never had: %r %r" % (extra[:4], foreign[:4]))


def report_procs(tag, r):
    """The processes of run r's report (checked as tag.report), or None."""
    doc = r.report()
    if not check(tag + ".report", doc is not None, r.report_error):
        return None
    return processes(doc)


def check_clean(name, procs):
    """Every process's stream ended with its END record."""
    return check(name, all(q["stream_state"] == "clean" for q in procs),
                 [(q["pid"], q["stream_state"]) for q in procs if q["stream_state"] != "clean"])


def runner_pid(doc):
    r = doc.get("runner")
    return r.get("pid") if isinstance(r, dict) else None


def processes(doc):
    """The traced program's processes: the runner's own entry left out."""
    rp = runner_pid(doc)
    return [p for p in doc["processes"] if p.get("pid") != rp or p.get("pid") is None]


def by_pid(doc):
    """pid -> process; the first one wins if a pid appears twice (see
    check_unique_pids, which reports that)."""
    out = {}
    for p in processes(doc):
        out.setdefault(p["pid"], p)
    return out


def check_unique_pids(tag, doc):
    """Our runs are far too short to reuse a pid (pid_max is at least 32768):
    a pid listed twice is one process split in two by the model."""
    seen, dups = set(), []
    for p in processes(doc):
        if p["pid"] in seen:
            dups.append(p["pid"])
        seen.add(p["pid"])
    detail = []
    for d in dups[:2]:
        for p in processes(doc):
            if p["pid"] == d:
                img = (p.get("images") or [{}])[0]
                detail.append("pid %d start_ns %s end_ns %s %s %s" % (
                    d, p.get("start_ns"), p.get("end_ns"), exit_str(p), img.get("untraced_reason", "")))
    return check(tag + ".unique-pids", not dups, "pids listed twice: %r; %s" % (dups[:10], "; ".join(detail)))


def roots(doc):
    """Processes whose parent is not a traced process of the trace."""
    pids = set(by_pid(doc))
    return [p for p in processes(doc) if p.get("ppid") not in pids]


def exit_str(proc):
    e = proc.get("exit") or {}
    if e.get("kind") == "exited":
        return "exited %s" % e.get("code")
    if e.get("kind") == "signaled":
        return "signaled %s%s" % (e.get("signal"), " core" if e.get("core") else "")
    return e.get("kind", "none")


_AT = re.compile(r"^@ (\S+)(.*)$")


def at_lines(text, kind=None):
    """[(kind, {key: value})] for every "@ " line (of one kind if given).
    Values stay strings; use num() to convert."""
    out = []
    for line in text.splitlines():
        m = _AT.match(line)
        if not m:
            continue
        kv = {}
        for tok in m.group(2).split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                kv[k] = v
        if kind is None or m.group(1) == kind:
            out.append((m.group(1), kv))
    return out


def at_dicts(text, kind):
    return [kv for _, kv in at_lines(text, kind)]


def at_num(tag, r, text, kind, key):
    """Value `key` of the one "@ kind" line of text (r's output), as a
    number; None, with a failed check TAG.ran, when r failed or printed
    no such line or several."""
    kv = at_dicts(text, kind)
    if not check(tag + ".ran", r.rc == 0 and len(kv) == 1, r.describe()):
        return None
    return num(kv[0].get(key))


def num(v):
    """int of a decimal or 0x value; None for None or '?'."""
    if v is None or v == "?":
        return None
    return int(v, 0)


def _is_pid_key(k):
    return k in ("pid", "ppid") or k.endswith("_pid") or k.endswith("_ppid")


def normalize(text):
    """Output with what differs between two runs of the same program
    replaced: pids named in "@ " lines, hex addresses, *_ms/*_kib values
    and "N KiB" in sentences (measured sizes, which the environment and
    the preloaded library shift); so a traced and an untraced run of a
    sample compare equal."""
    pids = set()
    for _, kv in at_lines(text):
        for k, v in kv.items():
            if _is_pid_key(k) and v.isdigit():
                pids.add(v)
    text = re.sub(r"0x[0-9a-fA-F]{6,}", "0xADDR", text)
    text = re.sub(r"\b([A-Za-z_]+_(?:ms|kib))=\d+", r"\1=N", text)
    text = re.sub(r"\b\d+ KiB\b", "N KiB", text)  # measured sizes in sentences
    lines = []
    for line in text.split("\n"):
        if line.startswith("@ "):
            # Only the values of pid keys: "orphaned=1" is not pid 1.
            line = re.sub(r"\b(\w+)=(\d+)\b",
                          lambda m: m.group(1) + "=PID" if _is_pid_key(m.group(1)) else m.group(0), line)
        elif pids:
            line = re.sub(r"\b\d+\b", lambda m: "PID" if m.group(0) in pids else m.group(0), line)
        lines.append(line)
    return "\n".join(lines)


def check_proc_lines(name, out, procs):
    """Every "@ proc" line names a traced process with that ppid."""
    for kv in at_dicts(out, "proc"):
        pid, ppid = num(kv["pid"]), num(kv["ppid"])
        role = kv.get("role", "?")
        p = procs.get(pid)
        if check("%s.%s.in-report" % (name, role), p is not None,
                 "pid %s (role %s) missing; report pids %s" % (pid, role, sorted(procs))):
            check("%s.%s.ppid" % (name, role), p.get("ppid") == ppid,
                  "report ppid %s, the process said %s" % (p.get("ppid"), ppid))


def check_exit(tag, p, kv):
    e = p.get("exit") or {}
    if kv.get("exit") == "exited":
        check(tag + ".exit", e.get("kind") == "exited" and e.get("code") == num(kv["code"]),
              "report %s, expected exited %s" % (exit_str(p), kv["code"]))
    elif kv.get("exit") == "signaled":
        ok = e.get("kind") == "signaled" and e.get("signal") == num(kv["sig"])
        check(tag + ".signal", ok, "report %s, expected signal %s" % (exit_str(p), kv["sig"]))
        if kv.get("core") not in (None, "?"):
            check(tag + ".core", e.get("core") is (kv["core"] == "1"),
                  "report core=%r, expected %s" % (e.get("core"), kv["core"]))


def check_expect_lines(name, out, procs):
    """Every "@ expect" line (samples/sample.h) against the report."""
    waits = {num(kv["pid"]): kv for kv in at_dicts(out, "wait") if "exited" in kv}
    for kv in at_dicts(out, "expect"):
        pid = num(kv["pid"])
        tag = "%s.%s" % (name, kv.get("case") or "pid%d" % pid)
        p = procs.get(pid)
        if not check(tag + ".in-report", p is not None, "pid %s missing; report pids %s" % (pid, sorted(procs))):
            continue
        if "ppid" in kv:
            check(tag + ".ppid", p.get("ppid") == num(kv["ppid"]),
                  "report ppid %s, expected %s" % (p.get("ppid"), kv["ppid"]))
        check_exit(tag, p, kv)
        # The parent's own waitpid() is the ground truth for the core bit.
        w = waits.get(pid)
        if w and w["signaled"] == "1":
            check(tag + ".core-as-waitpid-saw", (p.get("exit") or {}).get("core") is (w["core"] == "1"),
                  "report core=%r, the parent's waitpid saw core=%s" % ((p.get("exit") or {}).get("core"), w["core"]))
        if "reaped_by_pid" in kv:
            check(tag + ".reaped_by", p.get("reaped_by") == num(kv["reaped_by_pid"]),
                  "report reaped_by=%r, expected %s" % (p.get("reaped_by"), kv["reaped_by_pid"]))
        if "orphaned" in kv:
            check(tag + ".orphaned", p.get("orphaned") is (kv["orphaned"] == "1"),
                  "report orphaned=%r, expected %s" % (p.get("orphaned"), kv["orphaned"]))
        if "images" in kv:
            imgs = p.get("images") or []
            check(tag + ".images", len(imgs) == num(kv["images"]),
                  "report has %d images %r, expected %s" % (len(imgs), [i.get("argv") for i in imgs], kv["images"]))
        if "malloc_min" in kv:
            calls = (p.get("malloc") or {}).get("calls", 0)
            check(tag + ".malloc_min", calls >= num(kv["malloc_min"]),
                  "report malloc calls=%r, the process made at least %s" % (calls, kv["malloc_min"]))
        if "last_exe" in kv:
            imgs = p.get("images") or [{}]
            got = os.path.basename(os.path.realpath(imgs[-1].get("exe") or "?"))
            want = os.path.basename(os.path.realpath(kv["last_exe"]))
            check(tag + ".last_exe", got == want, "last image %r, expected %s" % (imgs[-1].get("exe"), want))
        if "zombie_min_ms" in kv:
            z = p.get("zombie_ns")
            # The sample keeps it a zombie for zombie_min_ms; allow 50 ms for
            # clocks and the time between exit hook and death.
            want = (num(kv["zombie_min_ms"]) - 50) * 1000000
            check(tag + ".zombie_ns", isinstance(z, int) and z >= want,
                  "report zombie_ns=%r, expected >= %d" % (z, want))
        if isinstance(p.get("zombie_ns"), int) and isinstance(p.get("end_ns"), int):
            check(tag + ".times-ordered", p["end_ns"] >= p.get("start_ns", 0),
                  "end_ns %s < start_ns %s" % (p["end_ns"], p.get("start_ns")))


NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def user_runs():
    """[(tag, wrap)]: as root, then as nobody where that is possible (a
    NOTE says when it is not)."""
    runs = [("root", ())]
    if os.geteuid() == 0 and tool("setpriv"):
        runs.append(("nobody", NOBODY))
    else:
        note("not root or no setpriv: the unprivileged run was not done")
    return runs


def perf_expected():
    """Whether an unprivileged perf page-fault sampler should open here."""
    try:
        with open("/proc/sys/kernel/perf_event_paranoid") as f:
            return int(f.read().strip()) <= 2
    except (OSError, ValueError):
        return False


def region_of(proc, addr):
    """The region of proc's (end-of-process) map that holds addr, or None."""
    for r in proc.get("regions") or []:
        try:
            if int(r["start"], 16) <= addr < int(r["end"], 16):
                return r
        except (KeyError, TypeError, ValueError):
            continue
    return None


def exec_basenames_report(doc):
    """Real basenames of every image's exe in the trace (symlinks resolved)."""
    names = set()
    for p in processes(doc):
        for img in p.get("images") or []:
            exe = img.get("exe")
            if exe:
                names.add(os.path.basename(os.path.realpath(exe)))
    return names


_STRACE_LINE = re.compile(r"^(\d+)\s+(.*)$")


def strace_tree(path):
    """From `strace -f -s 4096 -e trace=process -o path` output: (set of process
    pids, real basenames of successful execve paths). Threads (clone with
    CLONE_THREAD) are not processes."""
    pending = {}
    calls = []
    with open(path, errors="replace") as f:
        for line in f:
            m = _STRACE_LINE.match(line.rstrip("\n"))
            if not m:
                continue
            pid, rest = int(m.group(1)), m.group(2)
            if rest.endswith("<unfinished ...>"):
                pending[pid] = rest[: -len("<unfinished ...>")]
                continue
            r = re.match(r"^<\.\.\. \w+ resumed>(.*)$", rest)
            if r:
                rest = pending.pop(pid, "") + r.group(1)
            calls.append((pid, rest))
    pids, threads, execs = set(), set(), set()
    for pid, c in calls:
        if not pids and not threads:
            pids.add(pid)  # the first line is the command's own process
        res = re.search(r"=\s+(-?\d+)(?:\s+\w+.*)?$", c)
        ret = int(res.group(1)) if res else None
        if re.match(r"^(clone3?|fork|vfork)\(", c) and ret is not None and ret > 0:
            (threads if "CLONE_THREAD" in c else pids).add(ret)
        elif c.startswith("execve(") and ret == 0:
            pm = re.match(r'^execve\("((?:[^"\\]|\\.)*)"', c)
            if pm:
                exe = pm.group(1)
                if exe.startswith("/"):
                    exe = os.path.realpath(exe)
                execs.add(os.path.basename(exe))
    return pids, execs


def kernel_populates():
    """Whether madvise(MADV_POPULATE_READ/WRITE) is here (Linux 5.14)."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 14)


def tool(name):
    """Path of a program, or None."""
    return shutil.which(name)


def system_python():
    """A python3 every user can run (not a per-user shim)."""
    for p in ("/usr/bin/python3", sys.executable):
        if p and os.access(p, os.X_OK):
            return os.path.realpath(p)
    return sys.executable
