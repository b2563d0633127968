"""More programs that fight the tracer (tests/progs/hostile2.c, issue 7):
raw clone(CLONE_VM) children and clone(CLONE_VM|CLONE_VFORK) + exec,
threads exiting while the main thread forks 200 children, and a fork bomb
bounded by RLIMIT_NPROC run as an unprivileged user (first malloc before
the fork bomb, and at its limit). Each must print and
exit as without forkscope, and the report must say what the program says
("@ expect" lines) with nothing invented or duplicated."""
import os
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check, note, num  # noqa: E402

# A uid of its own: RLIMIT_NPROC counts every task of the real uid, and
# other tests run programs as nobody at the same time.
NPROC_UID = "61234"


def run_case(name, argv, wrap=(), same_out=True):
    cwd = fsk.tmpdir()
    plain = fsk.run_plain(argv, timeout=60, cwd=cwd, wrap=wrap)
    traced = fsk.run_traced(argv, timeout=120, cwd=cwd, wrap=wrap)
    if not check(name + ".ran", not traced.timed_out and not plain.timed_out,
                 "timed out (deadlock?): " + traced.describe()):
        return plain, None, None
    check(name + ".rc-same", plain.rc == traced.rc == 0, "untraced rc=%s, traced %s" % (plain.rc, traced.describe()))
    if same_out:
        a, b = fsk.normalize(plain.out), fsk.normalize(traced.out)
        check(name + ".stdout-same", a == b, "untraced %r / traced %r" % (a[-300:], b[-300:]))
    doc = traced.report()
    if not check(name + ".report", doc is not None, traced.report_error):
        return plain, traced, None
    fsk.check_unique_pids(name, doc)
    procs = fsk.by_pid(doc)
    fsk.check_proc_lines(name, traced.out, procs)
    fsk.check_expect_lines(name, traced.out, procs)
    return plain, traced, doc


def main_pid(out):
    return num(fsk.at_dicts(out, "proc")[0]["pid"])


def clonevm():
    _, traced, doc = run_case("clonevm", [fsk.prog("hostile2"), "clonevm"])
    if not doc:
        return
    procs = fsk.by_pid(doc)
    me = main_pid(traced.out)
    clones = fsk.at_dicts(traced.out, "clone")
    check("clonevm.clones-said", len(clones) == 3, "@ clone lines: %r" % clones)
    # The parent is one image and its own exit: a clone child's exec or
    # _exit must not be taken for the parent's.
    p = procs.get(me) or {}
    imgs = p.get("images") or []
    check("clonevm.parent-one-image", len(imgs) == 1, "parent images %r" % [i.get("argv") for i in imgs])
    check("clonevm.parent-traced", p.get("traced") is not False and not imgs[-1:][0].get("untraced_reason"),
          "parent traced=%r reason=%r" % (p.get("traced"), imgs[-1:][0].get("untraced_reason") if imgs else None))
    for c in clones:
        pid, how = num(c["pid"]), c["how"]
        q = procs.get(pid)
        tag = "clonevm." + how
        # Each clone child is listed once, under its parent, ending as the
        # parent's waitpid saw it.
        if not check(tag + ".in-report", q is not None, "pid %s missing; report pids %s" % (pid, sorted(procs))):
            continue
        check(tag + ".ppid", q.get("ppid") == me, "ppid %r, expected %d" % (q.get("ppid"), me))
        e = q.get("exit") or {}
        check(tag + ".exit-from-wait", e.get("kind") == "exited" and e.get("code") == num(c["code"]),
              "report %s, waitpid saw code %s" % (fsk.exit_str(q), c["code"]))
        check(tag + ".reaped_by", q.get("reaped_by") == me, "reaped_by %r" % q.get("reaped_by"))
        if how == "vfork_exec":
            qi = q.get("images") or [{}]
            check(tag + ".exec-traced", os.path.basename(qi[-1].get("exe") or "") == "true",
                  "images %r" % [i.get("exe") for i in qi])
        else:
            note("%s: CLONE_VM child %d shown as %s (%s)" % (how, pid, fsk.exit_str(q),
                 ((q.get("images") or [{}])[0]).get("untraced_reason")))
    want = {me} | {num(c["pid"]) for c in clones} | {num(k["pid"]) for k in fsk.at_dicts(traced.out, "expect")}
    check("clonevm.no-invented-process", set(procs) == want, "report %s, program %s" % (sorted(procs), sorted(want)))


def threads():
    _, traced, doc = run_case("threads", [fsk.prog("hostile2"), "threads"])
    if not doc:
        return
    procs = fsk.by_pid(doc)
    exp = [kv for kv in fsk.at_dicts(traced.out, "expect") if "malloc_calls" in kv]
    check("threads.children-said", len(exp) == 200, "%d children" % len(exp))
    bad = []
    for kv in exp:
        p = procs.get(num(kv["pid"])) or {}
        calls = (p.get("malloc") or {}).get("calls")
        if calls != num(kv["malloc_calls"]):
            bad.append((kv["pid"], calls))
    check("threads.child-malloc-exact", exp and not bad,
          "children whose malloc calls differ from %s: %r" % (exp[0]["malloc_calls"] if exp else "?", bad[:10]))
    want = {main_pid(traced.out)} | {num(kv["pid"]) for kv in exp}
    check("threads.no-invented-process", set(procs) == want,
          "report has %d processes, the program %d" % (len(procs), len(want)))


def nproc(case):
    """nproc: the program's first malloc (which starts forkscope's flusher
    thread) comes after it set the limit; nproclate: when fork has already
    failed, so the flusher cannot be made, and the program must not notice
    (malloc served, errno untouched) and fork exactly as untraced."""
    if os.getuid() != 0 or not fsk.tool("setpriv"):
        note("not root or no setpriv: the RLIMIT_NPROC case needs an unprivileged uid of its own")
        return
    wrap = ["setpriv", "--reuid=" + NPROC_UID, "--regid=" + NPROC_UID, "--clear-groups"]
    late = case == "nproclate"
    plain, traced, doc = run_case(case, [fsk.prog("hostile2"), case], wrap=wrap, same_out=late)
    if not doc:
        return
    a = fsk.at_dicts(plain.out, "nproc")
    b = fsk.at_dicts(traced.out, "nproc")
    if not check(case + ".said", len(a) == 1 and len(b) == 1, "untraced %r traced %r" % (a, b)):
        return
    check(case + ".eagain-both", a[0]["err"] == b[0]["err"] == "EAGAIN", "untraced %r traced %r" % (a, b))
    fa, fb = num(a[0]["forks"]), num(b[0]["forks"])
    # Known difference: forkscope's flusher thread, started at the
    # program's first malloc after it set the limit, is one more task of
    # the user, so one fork fewer succeeds. More than that is a new bug.
    if late:
        check(case + ".forks-same", fa == fb, "untraced %d forks, traced %d" % (fa, fb))
    else:
        check(case + ".forks-at-most-flusher-fewer", fb in (fa, fa - 1), "untraced %d forks, traced %d" % (fa, fb))
    if fb != fa and not late:
        note("KNOWN: traced run forked %d children, untraced %d: the flusher thread takes a task of RLIMIT_NPROC"
             % (fb, fa))
    procs = fsk.by_pid(doc)
    me = procs.get(main_pid(traced.out)) or {}
    check(case + ".fork-fail-recorded", me.get("fork_fails") == 1 and me.get("fork_errno") == 11,
          "report fork_fails=%r fork_errno=%r, expected 1 and EAGAIN (11)"
          % (me.get("fork_fails"), me.get("fork_errno")))
    check(case + ".children-in-report", len(me.get("children") or []) == fb,
          "report children %r, the program forked %d" % (me.get("children"), fb))


def main():
    fsk.require(fsk.prog("hostile2"))
    clonevm()
    threads()
    nproc("nproc")
    nproc("nproclate")
    fsk.finish()


if __name__ == "__main__":
    main()
