"""Programs that fight the tracer (tests/progs/hostile.c, issue 7): closing
or dup2-ing over every fd, a tiny RLIMIT_NOFILE, SIGCHLD ignored, children
dying by abort()/SIGSEGV in a malloc burst, vfork, posix_spawn/system/popen,
an exec with an empty environment, and a static binary; and programs with
their own handlers for the fatal signals (tests/progs/sigchain.c), which
forkscope must hand the signal to after its flush. Each must print and
exit as without forkscope, and the report must say what the program says
("@ expect" lines): exits, reapers, images, malloc counts kept up to a
crash."""
import os
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check, note  # noqa: E402

CASES = ["closefds", "dup2", "nofile", "sigchld", "abort", "segv", "vfork", "spawn", "envi"]
SIGCHAIN = ["segv", "fpe", "resethand", "nodefer", "reraise", "sysv", "early", "ign"]


def run_case(name, argv, cwd):
    plain = fsk.run_plain(argv, timeout=30, cwd=cwd)
    traced = fsk.run_traced(argv, timeout=60, cwd=cwd)
    if not check(name + ".ran", not traced.timed_out, "timed out: " + traced.describe()):
        return None, None
    check(name + ".rc-same", plain.rc == traced.rc, "untraced rc=%s, traced %s" % (plain.rc, traced.describe()))
    a, b = fsk.normalize(plain.out), fsk.normalize(traced.out)
    check(name + ".stdout-same", a == b, "untraced %r / traced %r" % (a[-300:], b[-300:]))
    doc = traced.report()
    if not check(name + ".report", doc is not None, traced.report_error):
        return traced, None
    fsk.check_unique_pids(name, doc)
    return traced, doc


def static_case():
    gcc = fsk.tool("gcc")
    work = fsk.fresh_dir("static")
    os.mkdir(work)
    exe = os.path.join(work, "static_exit")
    src = os.path.join(fsk.top(), "tests", "data", "static_exit.c")
    r = fsk.run_plain([gcc or "gcc", "-static", "-O1", "-o", exe, src], timeout=60) if gcc else None
    if not r or r.rc != 0:
        note("cannot build a static binary here (libc.a?): static case not run")
        return
    traced, doc = run_case("static", ["bash", "-c", "%s; echo static said $?" % exe], work)
    if not doc:
        return
    ps = [p for p in fsk.processes(doc)
          if any(os.path.basename(i.get("exe") or "") == "static_exit" for i in p.get("images") or [])
          or os.path.basename((p.get("argv") or [""])[0]) == "static_exit"]
    if not check("static.in-tree", len(ps) == 1, "processes naming static_exit: %r"
                 % [(p["pid"], p.get("argv")) for p in fsk.processes(doc)]):
        return
    p = ps[0]
    e = p.get("exit") or {}
    check("static.exit-from-wait", e.get("kind") == "exited" and e.get("code") == 4,
          "report %s, expected exited 4" % fsk.exit_str(p))
    imgs = p.get("images") or []
    untraced = p.get("traced") is False or (imgs and imgs[-1].get("traced") is False)
    check("static.marked-untraced", untraced, "process traced=%r, last image %r" % (p.get("traced"), imgs[-1:]))
    static_argv_case(exe, work)


def static_argv_case(exe, work):
    """An untraced image's argv comes from the EXEC record its caller
    wrote: one built in the record's stack buffer, one that needs more
    (~5 KiB), and one cut to fit a record (~90 KiB)."""
    for name, n in (("short", 3), ("mid", 120), ("cut", 2000)):
        args = ["a%d" % i + "x" * 40 for i in range(n)]
        argfile = os.path.join(work, "args-" + name)
        with open(argfile, "w") as f:
            f.write(" ".join(args))
        tag = "static.argv-" + name
        traced, doc = run_case(tag, ["bash", "-c", "%s $(cat %s); echo static said $?" % (exe, argfile)], work)
        if not doc:
            continue
        got = [i.get("argv") or [] for p in fsk.processes(doc) for i in p.get("images") or []
               if os.path.basename(i.get("exe") or "") == "static_exit"]
        if not check(tag + ".image", len(got) == 1, "static_exit images: %d" % len(got)):
            continue
        argv = got[0]
        if n < 2000:
            check(tag + ".whole", argv == [exe] + args, "%d of %d args, last %r" % (len(argv) - 1, n, argv[-1:]))
        else:
            check(tag + ".prefix", 1000 < len(argv) - 1 < n and argv == ([exe] + args)[:len(argv)],
                  "%d of %d args kept" % (len(argv) - 1, n))


def main():
    fsk.require(fsk.prog("hostile"), fsk.prog("sigchain"))
    runs = [(c, [fsk.prog("hostile"), c]) for c in CASES]
    runs += [("sigchain-" + c, [fsk.prog("sigchain"), c]) for c in SIGCHAIN]
    for c, argv in runs:
        traced, doc = run_case(c, argv, fsk.tmpdir())
        if doc:
            procs = fsk.by_pid(doc)
            fsk.check_proc_lines(c, traced.out, procs)
            fsk.check_expect_lines(c, traced.out, procs)
        if c.startswith("sigchain-"):
            check(c + ".program-saw-its-handlers", traced is not None and traced.rc == 0 and ": NO\n" not in traced.out,
                  traced and traced.describe())
    static_case()
    fsk.finish()


if __name__ == "__main__":
    main()
