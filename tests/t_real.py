"""Real programs under forkscope (issue 7): bash scripts with pipelines,
subshells, traps and job control; make -j2 on tests/data/mkproj and on a
generated project; python3 with subprocess, multiprocessing (fork and
spawn) and threads; perl; gcc (cc1, as, collect2, ld) compiling and
linking, and failing to; git init/add/commit/log; a tar+gzip round trip;
sort on a large generated file; coreutils in loops. Each must print the
same on stdout and stderr and exit the same as without forkscope, and
the trace must be complete: every process strace sees is in it, with the
same exec'd programs, each with a known exit, no stream cut, nothing
dropped. One case runs as an unprivileged user (nobody).

`make test` runs the FAST cases; `make stress` (FSK_REAL_ALL=1) all."""
import os
import random
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

JOBS_SCRIPT = r"""
set -m
trap 'echo "EXIT trap"' EXIT
trap 'echo "USR1 trap"' USR1
kill -USR1 $$
(sleep 0.2; exit 7) & a=$!
(exit 5) & b=$!
wait $b; echo "b said $?"
wait $a; echo "a said $?"
sleep 0.1 | cat & wait
f() { local x; x=$(echo fn | tr a-z A-Z); echo "$x"; return 6; }
f; echo "f said $?"
trap 'echo "ERR trap" >&2' ERR
false
exit 2
"""

PERL_SCRIPT = r"""
$| = 1;
my $pid = fork();
if ($pid == 0) { print "child\n"; exit 3 }
waitpid($pid, 0); print "child said ", $? >> 8, "\n";
my $x = `echo backtick`; print $x;
system("sh", "-c", "exit 2"); print "system said ", $? >> 8, "\n";
open(my $fh, "-|", "seq", "1", "5") or die; my @l = <$fh>; close $fh;
print "lines ", scalar(@l), "\n";
my %h; $h{$_} = $_ * 2 for 1..100000; print "keys ", scalar(keys %h), "\n";
print STDERR "to stderr\n";
exit 4;
"""

GIT_SCRIPT = r"""
git init -q -b main repo && cd repo || exit 9
for i in 1 2 3; do
    echo "line $i" > f$i.txt
    git add f$i.txt && git commit -q -m "commit $i"
done
git log --format='%H %an %s'
git mv f1.txt g1.txt && git commit -q -m move && git status --short
git diff HEAD~2 --stat
git rev-list --count HEAD
git cat-file -p HEAD^{tree}
"""

TAR_SCRIPT = r"""
mkdir -p src/sub && seq 1 5000 > src/a.txt && head -c 200000 /dev/zero > src/sub/zero
tar czf arch.tgz src && mkdir out && tar xzf arch.tgz -C out && diff -r src out/src && echo same
tar tzf arch.tgz | sort
gzip -t arch.tgz && gzip -dc arch.tgz | wc -c
gzip -9 -c src/a.txt | gzip -dc | md5sum
"""

SORT_SCRIPT = r"""
sort -S 1M --parallel=2 -T . big.txt | md5sum
sort -n -r big.txt | head -n 3
sort -u big.txt | wc -l
"""

COREUTILS_SCRIPT = r"""
for i in $(seq 1 40); do echo "$i" | md5sum | cut -c1-6; done | sort | uniq | wc -l
for w in alpha beta gamma; do printf '%s\n' "$w" | tr a-z A-Z | rev; done
seq 1 1000 | paste -sd+ | wc -c
printf '%s\n' b a c | sort | tr '\n' ' '; echo
basename /a/b/c.txt .txt; dirname /a/b/c; expr 6 \* 7; date -u -d @0 +%Y
for n in 1 2 3; do mkdir -p d$n && touch d$n/f && ls d$n; done; rm -r d1 d2 d3
head -c 10000 /dev/zero | od -An -tx1 | sort -u | wc -l
"""

PY_SPAWN = r"""
import concurrent.futures
import multiprocessing as mp
import sys
import threading


def sq(x):
    return x * x


def work(n, out, i):
    out[i] = sum(range(n))


if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        print("spawn pool", sum(pool.map(sq, range(50))))
    p = ctx.Process(target=sys.exit, args=(4,))
    p.start()
    p.join()
    print("spawn exit code", p.exitcode)
    out = [0] * 4
    ts = [threading.Thread(target=work, args=(100000, out, i)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("threads", sum(out))
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        print("executor", sum(ex.map(sq, range(10))))
    sys.exit(3)
"""

GIT_ENV = {"GIT_AUTHOR_NAME": "Forkscope Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
           "GIT_COMMITTER_NAME": "Forkscope Test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
           "GIT_AUTHOR_DATE": "2020-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2020-01-01T00:00:00Z",
           "GIT_CONFIG_NOSYSTEM": "1"}


def gen_project(root, n=12):
    """A C project of n modules, a header and a Makefile with a pattern
    rule; `make -j2 run` builds, links and runs it."""
    os.makedirs(root)
    mods = ["m%02d" % i for i in range(n)]
    with open(os.path.join(root, "mods.h"), "w") as f:
        f.writelines("int %s(int x);\n" % m for m in mods)
    for i, m in enumerate(mods):
        with open(os.path.join(root, m + ".c"), "w") as f:
            f.write('#include "mods.h"\nint %s(int x) { return x * %d + %d; }\n' % (m, i + 1, i))
    with open(os.path.join(root, "main.c"), "w") as f:
        f.write('#include <stdio.h>\n#include "mods.h"\nint main(void) {\n\tint s = 0;\n')
        f.writelines("\ts += %s(%d);\n" % (m, i) for i, m in enumerate(mods))
        f.write('\tprintf("total %d\\n", s);\n\treturn s % 7;\n}\n')
    objs = " ".join(m + ".o" for m in ["main"] + mods)
    with open(os.path.join(root, "Makefile"), "w") as f:
        f.write("OBJS = %s\nrun: prog\n\t./prog; echo prog said $$?\nprog: $(OBJS)\n"
                "\t$(CC) -o $@ $(OBJS)\n%%.o: %%.c mods.h\n\t$(CC) -O1 -c -o $@ $<\n" % objs)


def big_file(path, lines=200000):
    rnd = random.Random(7)
    with open(path, "w") as f:
        for _ in range(lines):
            f.write("%d %s\n" % (rnd.randrange(10 ** 6), "".join(rnd.choice("abcdefgh") for _ in range(6))))


def prepare(name):
    """A fresh copy of the inputs a case needs; returns (cwd, argv, env)."""
    work = fsk.fresh_dir(name)
    os.mkdir(work)
    os.chmod(work, 0o777)
    py = fsk.system_python()
    env = None
    if name == "bash":
        argv = ["bash", "-c", BASH_SCRIPT]
    elif name == "bash-jobs":
        argv = ["bash", "-c", JOBS_SCRIPT]
    elif name == "make":
        shutil.copytree(os.path.join(DATA, "mkproj"), os.path.join(work, "mkproj"))
        return os.path.join(work, "mkproj"), ["make", "-s", "-j2", "run"], None
    elif name == "make-gen":
        gen_project(os.path.join(work, "proj"))
        return os.path.join(work, "proj"), ["make", "-s", "-j2", "run"], None
    elif name == "python":
        argv = [py, os.path.join(DATA, "procs.py")]
    elif name == "python-spawn":
        with open(os.path.join(work, "spawn.py"), "w") as f:
            f.write(PY_SPAWN)
        argv = [py, "spawn.py"]
    elif name == "perl":
        argv = ["perl", "-e", PERL_SCRIPT]
    elif name == "gcc":
        shutil.copy(os.path.join(DATA, "hello.c"), work)
        argv = ["bash", "-c", "gcc -O1 -o hello hello.c && ./hello"]
    elif name == "gcc-fails":
        shutil.copy(os.path.join(DATA, "bad.c"), work)
        argv = ["gcc", "-c", "bad.c"]
    elif name == "git":
        env = dict(GIT_ENV, HOME=work)
        argv = ["bash", "-c", GIT_SCRIPT]
    elif name == "tar":
        argv = ["bash", "-c", TAR_SCRIPT]
    elif name == "sort":
        big_file(os.path.join(work, "big.txt"))
        argv = ["bash", "-c", SORT_SCRIPT]
    elif name == "coreutils":
        argv = ["bash", "-c", COREUTILS_SCRIPT]
    else:
        raise ValueError(name)
    return work, argv, env


def compare_with_strace(name, doc, argv, cwd, env):
    st = os.path.join(fsk.tmpdir(), "strace.%s.txt" % name)
    r = fsk.run_plain(["strace", "-f", "-s", "4096", "-e", "trace=process", "-o", st, "--"] + argv,
                      timeout=300, cwd=cwd, env=env)
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
    every process ended in a known way and reaped, no stream cut, nothing
    dropped, no problem reading the trace."""
    fsk.check_unique_pids(name, doc)
    procs = fsk.processes(doc)
    roots = fsk.roots(doc)
    check(name + ".one-root", len(roots) == 1, "roots %r" % [(p["pid"], p.get("ppid"), p.get("argv")) for p in roots])
    unknown = [p["pid"] for p in procs if (p.get("exit") or {}).get("kind") not in ("exited", "signaled")]
    check(name + ".all-ended", not unknown, "processes with exit unknown: %r" % unknown)
    unreaped = [p["pid"] for p in procs if p.get("reaped_by") is None]
    check(name + ".all-reaped", not unreaped, "processes nobody reaped: %r" % unreaped)
    # A process killed by a signal forkscope does not catch (SIGPIPE for
    # `sort | head`, SIGTERM from a multiprocessing Pool) cannot end its
    # stream; its end comes from the wait status. Any other cut is a loss.
    cut = [(p["pid"], i.get("stream_state"), fsk.exit_str(p)) for p in procs for i in p.get("images") or []
           if i.get("stream_state") in ("cut", "corrupt", "running")
           and not (i.get("stream_state") == "cut" and (p.get("exit") or {}).get("kind") == "signaled")]
    check(name + ".no-stream-cut", not cut, "streams not ended cleanly (pid, state, exit): %r" % cut[:5])
    dropped = [(p["pid"], p.get("dropped")) for p in procs if p.get("dropped")]
    check(name + ".nothing-dropped", not dropped, "dropped records (pid, n): %r" % dropped[:5])
    check(name + ".no-problems", not doc.get("problems"), doc.get("problems"))
    for p in procs:
        m = p.get("malloc") or {}
        STATS["events"] += (m.get("calls", 0) + m.get("frees", 0) + p.get("forks", 0) + p.get("spawns", 0)
                            + p.get("waits", 0) + len(p.get("images") or []) + 1)
    return len(procs)


def run_case(name, expect_rc, strace=True):
    """Untraced, traced and under strace, each from a fresh copy of the
    inputs. Returns the report, or None."""
    cwd, argv, env = prepare(name)
    plain = fsk.run_plain(argv, timeout=300, cwd=cwd, env=env)
    check(name + ".untraced-rc", plain.rc == expect_rc, "untraced: " + plain.describe())
    cwd, argv, env = prepare(name)
    traced = fsk.run_traced(argv, timeout=300, cwd=cwd, env=env, options=("-q",))
    if not check(name + ".traced-ran", not traced.timed_out, "timed out: " + traced.describe()):
        return None
    check(name + ".rc-same", traced.rc == plain.rc, "untraced rc=%s traced: %s" % (plain.rc, traced.describe()))
    check(name + ".stdout-same", traced.out == plain.out,
          "untraced %r / traced %r" % (plain.out[-200:], traced.out[-200:]))
    check(name + ".stderr-same", traced.err == plain.err,
          "untraced %r / traced %r" % (plain.err[-200:], traced.err[-200:]))
    doc = traced.report()
    if not check(name + ".report", doc is not None, traced.report_error):
        return None
    STATS["processes"] += tree_sane(name, doc)
    STATS["programs"] += 1
    root = fsk.roots(doc)
    if len(root) == 1:
        e = root[0].get("exit") or {}
        check(name + ".root-exit", e.get("kind") == "exited" and e.get("code") == expect_rc,
              "root exit %s, expected exited %d" % (fsk.exit_str(root[0]), expect_rc))
    if strace:
        cwd, argv, env = prepare(name)
        compare_with_strace(name, doc, argv, cwd, env)
    return doc


def unprivileged(root_doc):
    """The bash case as nobody, writing into a fresh world-writable dir."""
    name = "bash-nobody"
    wrap = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    parent = fsk.fresh_dir("nobody")
    os.mkdir(parent)
    os.chmod(parent, 0o777)
    cwd, argv, _ = prepare("bash")
    plain = fsk.run_plain(argv, timeout=60, cwd=cwd, wrap=wrap)
    traced = fsk.run_traced(argv, timeout=60, cwd=cwd, wrap=wrap, trace=os.path.join(parent, "trace"),
                            options=("-q",))
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


# name, expected exit status, tools it needs, in the fast subset
CASES = [
    ("bash", 3, ("bash",), True),
    ("bash-jobs", 2, ("bash",), True),
    ("make", 0, ("make", "gcc"), True),
    ("python", 3, (), True),
    ("gcc", 0, ("gcc",), True),
    ("gcc-fails", 1, ("gcc",), True),
    ("git", 0, ("git",), True),
    ("tar", 0, ("tar", "gzip"), True),
    ("make-gen", 0, ("make", "gcc"), False),
    ("python-spawn", 3, (), False),
    ("perl", 4, ("perl",), False),
    ("sort", 0, ("sort",), False),
    ("coreutils", 0, ("bash",), False),
]
STATS = {"programs": 0, "processes": 0, "events": 0}


def main():
    fsk.require()
    for t in ("bash", "strace"):
        if not fsk.tool(t):
            fsk.skip("%s is not installed" % t)
    every = fsk.env("FSK_REAL_ALL") == "1"
    docs = {}
    for name, rc, tools, fast in CASES:
        if not (fast or every):
            continue
        missing = [t for t in tools if not fsk.tool(t)]
        if missing:
            note("%s: not run: %s not installed" % (name, ", ".join(missing)))
            continue
        docs[name] = run_case(name, rc)
    if not every:
        note("the fast subset; FSK_REAL_ALL=1 (make stress) runs all %d programs" % len(CASES))
    if os.geteuid() == 0 and fsk.tool("setpriv"):
        unprivileged(docs.get("bash"))
    else:
        note("not root or no setpriv: the unprivileged case was not run")
    note("%d real programs traced, %d processes and %d events (mallocs, frees, forks, spawns, waits, "
         "execs, exits) checked" % (STATS["programs"], STATS["processes"], STATS["events"]))
    fsk.finish()


if __name__ == "__main__":
    main()
