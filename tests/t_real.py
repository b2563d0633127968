"""Real programs under forkscope: bash pipelines and subshells, make -j2 on
tests/data/mkproj, python3 with subprocess and multiprocessing (fork),
gcc compiling a file (and failing to). Each must print the same and exit
the same as without forkscope, and the recorded tree must match strace's
view of the same command: as many processes, the same exec'd programs.
One case runs as an unprivileged user (nobody)."""
import os
import shutil
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check, note  # noqa: E402

DATA = os.path.join(fsk.top(), "tests", "data")

BASH_SCRIPT = r"""
echo start
(echo in-subshell; seq 1 100 | grep 7 | wc -l) | cat
x=$(echo hi | tr a-z A-Z); echo "captured $x"
for i in 3 1 2; do echo $i; done | sort -r
{ echo grouped; false; } || echo "status was $?"
sh -c 'exit 4'; echo "sh said $?"
exit 3
"""


def prepare(name):
    """A fresh copy of the inputs a case needs; returns (cwd, argv)."""
    work = fsk.fresh_dir(name)
    os.mkdir(work)
    os.chmod(work, 0o777)
    py = fsk.system_python()
    if name == "bash":
        return work, ["bash", "-c", BASH_SCRIPT]
    if name == "make":
        shutil.copytree(os.path.join(DATA, "mkproj"), os.path.join(work, "mkproj"))
        return os.path.join(work, "mkproj"), ["make", "-s", "-j2", "run"]
    if name == "python":
        return work, [py, os.path.join(DATA, "procs.py")]
    if name == "gcc":
        shutil.copy(os.path.join(DATA, "hello.c"), work)
        return work, ["bash", "-c", "gcc -O1 -o hello hello.c && ./hello"]
    if name == "gcc-fails":
        shutil.copy(os.path.join(DATA, "bad.c"), work)
        return work, ["gcc", "-c", "bad.c"]
    raise ValueError(name)


def compare_with_strace(name, doc, argv, cwd):
    st = os.path.join(fsk.tmpdir(), "strace.%s.txt" % name)
    r = fsk.run_plain(["strace", "-f", "-s", "4096", "-e", "trace=process", "-o", st, "--"] + argv,
                      timeout=120, cwd=cwd)
    if not check(name + ".strace-ran", r.rc is not None and os.path.exists(st), r.describe()):
        return
    spids, sexecs = fsk.strace_tree(st)
    procs = fsk.processes(doc)
    check(name + ".process-count-as-strace", len(procs) == len(spids),
          "forkscope %d processes, strace %d" % (len(procs), len(spids)))
    fexecs = fsk.exec_basenames_report(doc)
    check(name + ".execs-as-strace", fexecs == sexecs,
          "only forkscope: %s; only strace: %s" % (sorted(fexecs - sexecs), sorted(sexecs - fexecs)))


def tree_sane(name, doc):
    """One root (the command), every other process's parent in the trace,
    every process ended in a known way."""
    fsk.check_unique_pids(name, doc)
    procs = fsk.processes(doc)
    roots = fsk.roots(doc)
    check(name + ".one-root", len(roots) == 1, "roots %r" % [(p["pid"], p.get("ppid"), p.get("argv")) for p in roots])
    unknown = [p["pid"] for p in procs if (p.get("exit") or {}).get("kind") not in ("exited", "signaled")]
    check(name + ".all-ended", not unknown, "processes with exit unknown: %r" % unknown)
    unreaped = [p["pid"] for p in procs if p.get("reaped_by") is None]
    check(name + ".all-reaped", not unreaped, "processes nobody reaped: %r" % unreaped)


def run_case(name, expect_rc, strace=True):
    cwd, argv = prepare(name)
    plain = fsk.run_plain(argv, timeout=120, cwd=cwd)
    check(name + ".untraced-rc", plain.rc == expect_rc, "untraced: " + plain.describe())
    cwd, argv = prepare(name)
    traced = fsk.run_traced(argv, timeout=120, cwd=cwd)
    if not check(name + ".traced-ran", not traced.timed_out, "timed out: " + traced.describe()):
        return None
    check(name + ".rc-same", traced.rc == plain.rc, "untraced rc=%s traced: %s" % (plain.rc, traced.describe()))
    check(name + ".stdout-same", traced.out == plain.out,
          "untraced %r / traced %r" % (plain.out[-200:], traced.out[-200:]))
    doc = traced.report()
    if not check(name + ".report", doc is not None, traced.report_error):
        return None
    tree_sane(name, doc)
    root = fsk.roots(doc)
    if len(root) == 1:
        e = root[0].get("exit") or {}
        check(name + ".root-exit", e.get("kind") == "exited" and e.get("code") == expect_rc,
              "root exit %s, expected exited %d" % (fsk.exit_str(root[0]), expect_rc))
    if strace:
        cwd, argv = prepare(name)
        compare_with_strace(name, doc, argv, cwd)
    return doc


def unprivileged(root_doc):
    """The bash case as nobody, writing into a fresh world-writable dir."""
    name = "bash-nobody"
    wrap = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    parent = fsk.fresh_dir("nobody")
    os.mkdir(parent)
    os.chmod(parent, 0o777)
    cwd, argv = prepare("bash")
    plain = fsk.run_plain(argv, timeout=60, cwd=cwd, wrap=wrap)
    traced = fsk.run_traced(argv, timeout=60, cwd=cwd, wrap=wrap, trace=os.path.join(parent, "trace"))
    check(name + ".rc-same", traced.rc == plain.rc, "untraced rc=%s traced: %s" % (plain.rc, traced.describe()))
    check(name + ".stdout-same", traced.out == plain.out, "untraced %r / traced %r" % (plain.out[-200:], traced.out[-200:]))
    t = os.path.join(parent, "trace")
    if os.path.isdir(t):
        st = os.stat(t)
        check(name + ".trace-owned-by-user", st.st_uid == 65534, "trace dir uid %d" % st.st_uid)
        check(name + ".trace-dir-0700", (st.st_mode & 0o777) == 0o700, "trace dir mode %o" % (st.st_mode & 0o777))
    doc = traced.report()
    if not check(name + ".report", doc is not None, traced.report_error):
        return
    tree_sane(name, doc)
    if root_doc is not None:
        check(name + ".same-tree-as-root", len(fsk.processes(doc)) == len(fsk.processes(root_doc)),
              "%d processes as nobody, %d as root" % (len(fsk.processes(doc)), len(fsk.processes(root_doc))))
        check(name + ".same-execs-as-root", fsk.exec_basenames_report(doc) == fsk.exec_basenames_report(root_doc),
              "as nobody %s, as root %s" % (sorted(fsk.exec_basenames_report(doc)),
                                            sorted(fsk.exec_basenames_report(root_doc))))


def main():
    fsk.require()
    for t in ("bash", "make", "gcc", "strace"):
        if not fsk.tool(t):
            fsk.skip("%s is not installed" % t)
    bash_doc = run_case("bash", 3)
    run_case("make", 0)
    run_case("python", 3)
    run_case("gcc", 0)
    run_case("gcc-fails", 1)
    if os.geteuid() == 0 and fsk.tool("setpriv"):
        unprivileged(bash_doc)
    else:
        note("not root or no setpriv: the unprivileged case was not run")
    fsk.finish()


if __name__ == "__main__":
    main()
