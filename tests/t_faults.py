"""Faults in forkscope's own path (issue 7): the trace directory on a full
filesystem (filling up while the program runs, or full from the start),
removed while the program runs, made read-only while it runs,
the trace fd closed by the program, the `forkscope live` viewer and the
`forkscope run` runner killed with SIGKILL mid-run. In every case the
traced program runs to its normal end with its normal output and exit
status; forkscope says on stderr, in exactly one line, what it lost and
from when (or nothing, when nothing was lost); and the report of what
was written says where a stream was cut.

The workload is a bash script that waits on a FIFO (no process runs while
it waits), so the test can break forkscope's path while the program is
running; then it forks and
execs about 70 processes (a loop, a pipeline, a subshell) and exits 3."""
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check, note  # noqa: E402

SCRIPT = r"""
echo start
read -r go < "$1"
for i in $(seq 1 60); do /bin/true; done
seq 1 20000 | sort -r | md5sum
x=$(echo abc | tr a-z A-Z); echo "x=$x"
(echo in-subshell; exit 4); echo "subshell said $?"
echo "to stderr" >&2
exit 3
"""
LOST = re.compile(r"^forkscope: .* the trace misses events from \d\d:\d\d:\d\d\.\d{3} UTC on, "
                  r"first in pid \d+; .*\(said once\)$")


def argv_for(go, wrap=False):
    if wrap:  # the exit status as output: nobody may be left to report it
        return ["bash", "-c", 'bash -c "$1" x "$2"; echo "program exited $?"', "x", SCRIPT, go]
    return ["bash", "-c", SCRIPT, "x", go]


def go_file(fifo=False):
    """A file the script reads one line from: a FIFO the test releases
    with go(), or a file that lets it go on at once."""
    path = fsk.fresh_dir("go")
    if fifo:
        os.mkfifo(path)
    else:
        with open(path, "w") as f:
            f.write("go\n")
    return path


def go(path):
    with open(path, "w") as f:  # the script waits in open(): no blocking here
        f.write("go\n")


def untraced(wrap=False):
    return fsk.run_plain(argv_for(go_file(), wrap), timeout=120)


def split_err(err):
    """(forkscope's lines, the program's lines) of a stderr text."""
    ours, theirs = [], []
    for line in err.splitlines():
        (ours if line.startswith("forkscope:") else theirs).append(line)
    return ours, theirs


def check_same(tag, plain, rc, out, err, lost):
    """The program's rc, stdout and stderr as untraced; forkscope's stderr
    exactly one well-formed "lost" line when lost, else none."""
    check(tag + ".rc-same", rc == plain.rc, "untraced rc=%s traced rc=%s" % (plain.rc, rc))
    check(tag + ".stdout-same", out == plain.out, "untraced %r / traced %r" % (plain.out[-300:], out[-300:]))
    ours, theirs = split_err(err)
    check(tag + ".program-stderr-same", theirs == plain.err.splitlines(),
          "untraced %r / traced %r" % (plain.err[-200:], theirs[-5:]))
    if lost:
        check(tag + ".said-once", len(ours) == 1, "%d forkscope lines: %r" % (len(ours), ours[:4]))
        check(tag + ".says-what-and-when", len(ours) >= 1 and LOST.match(ours[0]), ours[:1])
    else:
        check(tag + ".says-nothing", not ours, "forkscope said %r" % ours[:4])


def start(argv, trace, options=("-q",)):
    cmd = [fsk.fsk(), "run", "-o", trace] + list(options) + ["--"] + argv
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline().decode()  # "start": the program runs
    return p, first


def finish(p, first, timeout=120):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return None, first + out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    return p.returncode, first + out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def mount_tmpfs(path, size):
    os.makedirs(path)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "fsk-faults", path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return r.returncode == 0, r.stdout.decode(errors="replace").strip()


def umount(path):
    subprocess.run(["umount", "-l", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def report_text(trace):
    p = subprocess.run([fsk.fsk(), "report", trace], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


def case_full(plain, filler_kib=768, tag="full-fs"):
    """1 MiB tmpfs with filler_kib of it taken: the streams fill the rest
    while the program runs (768), or nothing is left from the start (1024:
    not even the runner's stream can be written; the program still runs)."""
    if os.geteuid() != 0:
        note("%s: not run: mounting a small tmpfs needs root" % tag)
        return
    mnt = fsk.fresh_dir("full")
    ok, why = mount_tmpfs(mnt, "1m")
    if not check(tag + ".mounted", ok, why):
        return
    try:
        try:
            with open(os.path.join(mnt, "filler"), "wb") as f:
                f.write(b"\0" * (filler_kib * 1024))
        except OSError:
            pass  # full already
        gofile = go_file()
        trace = os.path.join(mnt, "t")
        r = fsk.run_traced(argv_for(gofile), timeout=120, trace=trace, options=("-q",))
        if not check(tag + ".ran", not r.timed_out, r.describe()):
            return
        check_same(tag, plain, r.rc, r.out, r.err, lost=True)
        if filler_kib >= 1024:
            check(tag + ".nothing-written", not os.listdir(trace), os.listdir(trace)[:5])
            return
        rc, text = report_text(trace)
        check(tag + ".report-reads-what-was-written", rc == 0 and "bash" in text, "rc=%s %r" % (rc, text[-300:]))
        doc = r.report()
        cut = rc == 0 and ("without an END record" in text or any(
            "cut short" in (m.get("message") or "") for m in (doc or {}).get("problems", [])))
        check(tag + ".report-says-cut", cut, text[-400:])
        empty = [n for n in os.listdir(trace) if os.path.getsize(os.path.join(trace, n)) == 0]
        check(tag + ".no-empty-streams-left", not empty, "empty stream files: %r" % empty[:5])
    finally:
        umount(mnt)


def case_removed(plain):
    tag = "dir-removed"
    gofile = go_file(fifo=True)
    trace = fsk.fresh_dir("removed")
    p, first = start(argv_for(gofile), trace)
    shutil.rmtree(trace, ignore_errors=True)
    go(gofile)
    rc, out, err = finish(p, first)
    if check(tag + ".ran", rc is not None, err[-300:]):
        check_same(tag, plain, rc, out, err, lost=True)


def case_readonly(plain):
    """A read-only bind mount over the trace directory (root), or the
    directory made 0555 (others): open streams go on, new ones cannot be
    created."""
    tag = "dir-read-only"
    gofile = go_file(fifo=True)
    trace = fsk.fresh_dir("ro")
    p, first = start(argv_for(gofile), trace)
    root = os.geteuid() == 0
    if root:
        a = subprocess.run(["mount", "--bind", trace, trace])
        b = subprocess.run(["mount", "-o", "remount,bind,ro", trace])
        made = a.returncode == 0 and b.returncode == 0
    else:
        os.chmod(trace, 0o555)
        made = True
    go(gofile)
    rc, out, err = finish(p, first)
    if root:
        umount(trace)
    else:
        os.chmod(trace, 0o700)
    if not check(tag + ".made-read-only", made, "mount --bind/remount ro failed"):
        return
    if check(tag + ".ran", rc is not None, err[-300:]):
        check_same(tag, plain, rc, out, err, lost=True)
        rc, text = report_text(trace)
        check(tag + ".report-reads-what-was-written", rc == 0 and "bash" in text, "rc=%s %r" % (rc, text[-300:]))
        doc, why = fsk.load_report(trace)
        if not check(tag + ".json", doc is not None, why):
            return
        procs = fsk.processes(doc)
        lost = [p for p in procs if p.get("traced") is False]
        # 60 /bin/true, seq, sort, md5sum, the $(...) and the (...) subshell
        check(tag + ".lost-processes-listed", len(lost) >= 64 and all(p.get("untraced_reason") for p in lost),
              "%d untraced processes, reasons %r" % (len(lost), sorted({p.get("untraced_reason") for p in lost})))
        unknown = [p["pid"] for p in procs if (p.get("exit") or {}).get("kind") not in ("exited", "signaled")]
        check(tag + ".every-exit-known", not unknown, "exit unknown for %r" % unknown[:5])


def case_fd_closed():
    """tests/progs/hostile closefds: close_range over the stream's fd; the
    stream is reopened, nothing is lost, so nothing is said."""
    tag = "fd-closed"
    argv = [fsk.prog("hostile"), "closefds"]
    plain = fsk.run_plain(argv, timeout=60, cwd=fsk.tmpdir())
    r = fsk.run_traced(argv, timeout=60, cwd=fsk.tmpdir(), options=("-q",))
    if not check(tag + ".ran", not r.timed_out, r.describe()):
        return
    check(tag + ".rc-same", r.rc == plain.rc, "untraced rc=%s traced %s" % (plain.rc, r.describe()))
    check(tag + ".stdout-same", fsk.normalize(r.out) == fsk.normalize(plain.out), r.out[-300:])
    ours, _ = split_err(r.err)
    check(tag + ".says-nothing", not ours, ours[:3])
    doc = r.report()
    if check(tag + ".report", doc is not None, r.report_error):
        check(tag + ".report-no-problems", not doc.get("problems"), doc.get("problems"))
        procs = fsk.by_pid(doc)
        fsk.check_expect_lines(tag, r.out, procs)


def case_runner_killed():
    """SIGKILL to `forkscope run` while the program waits: the program
    (reparented) runs to its end; its streams are whole; the report says
    the runner's stream was cut."""
    tag = "runner-killed"
    plain = untraced(wrap=True)
    gofile = go_file(fifo=True)
    trace = fsk.fresh_dir("runner")
    p, first = start(argv_for(gofile, wrap=True), trace)
    p.kill()
    p.wait()
    go(gofile)
    # Our pipes stay open until the last process of the program ends.
    out = first + p.stdout.read().decode("utf-8", "replace")
    err = p.stderr.read().decode("utf-8", "replace")
    check(tag + ".runner-died-of-sigkill", p.returncode == -9, "rc=%s" % p.returncode)
    check_same(tag, plain, plain.rc, out, err, lost=False)
    rc, text = report_text(trace)
    check(tag + ".report-reads-what-was-written", rc == 0 and "bash" in text, "rc=%s %r" % (rc, text[-300:]))
    check(tag + ".report-says-runner-cut", "runner's stream ended without an END record" in text, text[-400:])
    doc, why = fsk.load_report(trace)
    check(tag + ".json-runner-cut", doc is not None and (doc.get("runner") or {}).get("cut") is True,
          why or doc.get("runner"))


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def case_viewer_killed():
    """SIGKILL to `forkscope live` (in tmux): the program writes its output
    to a file in the trace directory, so it runs on to its normal end."""
    tag = "viewer-killed"
    tmux = fsk.tool("tmux")
    if not tmux:
        note("%s: not run: tmux is not installed" % tag)
        return
    plain = untraced(wrap=True)
    gofile = go_file(fifo=True)
    trace = fsk.fresh_dir("live")
    sock = "fsk-faults-%d" % os.getpid()
    cmd = " ".join(shlex.quote(a) for a in [fsk.fsk(), "live", "-o", trace, "--"] + argv_for(gofile, wrap=True))
    tm = [tmux, "-L", sock]
    subprocess.run(tm + ["new-session", "-d", "-x", "100", "-y", "30", "-s", "v", "env LANG=C.UTF-8 " + cmd + "; sleep 60"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        outfile = os.path.join(trace, "output.txt")
        viewer = None
        for _ in range(200):
            pane = subprocess.run(tm + ["display-message", "-p", "-t", "v", "#{pane_pid}"],
                                  stdout=subprocess.PIPE).stdout.decode().strip()
            kids = children(int(pane)) if pane.isdigit() else []
            cand = [k for k in kids + ([int(pane)] if pane.isdigit() else [])
                    if os.path.basename(os.path.realpath("/proc/%d/exe" % k)) in ("forkscope",)]
            if cand and os.path.exists(outfile) and "start" in open(outfile, errors="replace").read():
                viewer = cand[0]
                break
            time.sleep(0.1)
        if not check(tag + ".viewer-started", viewer is not None, "no viewer or no output file"):
            return
        os.kill(viewer, 9)
        go(gofile)
        text = ""
        for _ in range(600):
            text = open(outfile, errors="replace").read()
            if "program exited" in text:
                break
            time.sleep(0.1)
        ours, theirs = split_err(text)
        # The file holds stdout and stderr together, in the program's order.
        want = [ln for ln in (plain.out + plain.err).splitlines()]
        check(tag + ".program-ran-to-its-end", "program exited 3" in text, text[-300:])
        check(tag + ".output-same", sorted(theirs) == sorted(want), "untraced %r / traced %r" % (want[-4:], theirs[-4:]))
        check(tag + ".says-nothing", not ours, ours[:3])
    finally:
        subprocess.run(tm + ["kill-server"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def case_killed_mid_write():
    """A stream whose last record is half written, in a process killed
    by SIGKILL (what the kernel leaves when the signal comes during a
    write) and, for contrast, in one that exited."""
    for tag, script, kind in (("killed-mid-write", "x=$(seq 1 100); kill -KILL $$", "signaled"),
                              ("exited-mid-write", "x=$(seq 1 100); exit 0", "exited")):
        r = fsk.run_traced(["bash", "-c", script], timeout=60, options=("-q",))
        doc = r.report()
        roots = fsk.roots(doc) if doc else []
        if not check(tag + ".traced", len(roots) == 1, r.describe()):
            continue
        path = os.path.join(r.trace, "%d.0.fst" % roots[0]["pid"])
        size = os.path.getsize(path)
        os.truncate(path, size - 2)  # inside the last record, whatever its size
        doc, why = fsk.load_report(r.trace)
        procs = [p for p in fsk.processes(doc or {}) if p["pid"] == roots[0]["pid"]]
        if not check(tag + ".read", len(procs) == 1, why):
            continue
        p = procs[0]
        check(tag + ".exit-from-wait", (p.get("exit") or {}).get("kind") == kind, p.get("exit"))
        check(tag + ".stream-cut", [i.get("stream_state") for i in p.get("images") or []] == ["cut"],
              p.get("images"))
        probs = doc.get("problems") or []
        if kind == "signaled":
            check(tag + ".not-a-problem", not probs, probs)
        else:
            check(tag + ".a-problem", len(probs) == 1 and not probs[0]["fatal"]
                  and "cut short" in probs[0]["message"] and path in probs[0]["message"], probs)
        rc, text = report_text(r.trace)
        check(tag + ".text-says-cut", rc == 0 and "without an END record" in text
              and ("cut short" in text) == (kind == "exited"), "rc=%s %r" % (rc, text[-500:]))


def main():
    fsk.require(fsk.prog("hostile"))
    if not fsk.tool("bash"):
        fsk.skip("bash is not installed")
    plain = untraced()
    check("untraced.rc", plain.rc == 3, plain.describe())
    case_full(plain)
    case_full(plain, 1024, "full-fs-from-start")
    case_removed(plain)
    case_readonly(plain)
    case_fd_closed()
    case_runner_killed()
    case_viewer_killed()
    case_killed_mid_write()
    fsk.finish()


if __name__ == "__main__":
    main()
