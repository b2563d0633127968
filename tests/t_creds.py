#!/usr/bin/env python3
"""Changing credentials or namespaces works traced as untraced.

Our flusher thread broke both: glibc makes every thread of a process take
a setuid-family change and aborts the process when their results differ,
while capabilities and the keep-caps flag are per thread, so `setpriv
--reuid=65534 --regid=65534` (keep caps, setresuid, raise CAP_SETGID,
setresgid) died of SIGABRT once it had a flusher; and unshare or setns of
a user namespace refuses a process with a second thread (EINVAL), so
`unshare -U` failed. The hooks of those calls (preload/creds.c) now end
the flusher before the call; a later record starts a new one.

tests/progs/creds allocates until it has its flusher, says how many
threads it has, then unshares a user namespace ("unshare") or, as root,
drops to uid and gid 65534 as setpriv does ("setpriv"): its status and
result lines must be the untraced ones, with a second thread before the
call in the traced run (else the run could not fail), and the report must
end it with status 0. The real tools, where installed, must end as
untraced: setpriv --reuid=65534 --regid=65534 --clear-groups, and
unshare -U -r (id -u says 0 inside)."""
import os
import shutil
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402


def results(out):
    return [line for line in out.splitlines() if line.startswith("@ creds")]


def prog_case(what):
    argv = [fsk.prog("creds"), what]
    plain = fsk.run_plain(argv, timeout=60, cwd=fsk.tmpdir())
    if not check(what + ".untraced", plain.rc == 0 and results(plain.out), plain.describe()):
        return
    if what == "unshare" and "result=0" not in plain.out:
        fsk.note("unshare of a user namespace fails untraced too here: %r" % results(plain.out))
    # the uid change makes the rest of the run unable to write root's trace
    # directory: the test's directory is made writable for it
    d = fsk.tmpdir()
    os.chmod(d, 0o777)
    r = fsk.run_traced(argv, timeout=60, cwd=d)
    if not check(what + ".ran", r.rc == 0 and not r.timed_out and results(r.out) == results(plain.out),
                 "traced: %s %r\nuntraced: %r" % (r.describe(), results(r.out), results(plain.out))):
        return
    before = fsk.at_dicts(r.out, "threads")
    check(what + ".had-flusher", before and fsk.num(before[0]["before"]) >= 2,
          "the traced run had %r threads before the call: the check could not fail" % before)
    doc = r.report()
    if check(what + ".report", doc is not None, r.report_error):
        p = [q for q in fsk.processes(doc) if q["exe"].endswith("/creds")]
        check(what + ".exited-0", len(p) == 1 and p[0]["exit"] == {"kind": "exited", "code": 0},
              [q["exit"] for q in p])


def tool_case(tag, argv):
    plain = fsk.run_plain(argv, timeout=60)
    d = fsk.tmpdir()
    os.chmod(d, 0o777)
    r = fsk.run_traced(argv, timeout=60, cwd=d, options=("-q",))
    check(tag, r.rc == plain.rc and not r.timed_out and r.out == plain.out,
          "traced: %s %r\nuntraced: %s %r" % (r.describe(), r.out, plain.describe(), plain.out))


def main():
    fsk.require(fsk.prog("creds"))
    prog_case("unshare")
    if os.geteuid() == 0:
        prog_case("setpriv")
    else:
        fsk.note("not root: the setpriv case is left out")
    if shutil.which("setpriv") and os.geteuid() == 0:
        tool_case("tool.setpriv", ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                   "sh", "-c", "id -u; id -g"])
    if shutil.which("unshare"):
        tool_case("tool.unshare", ["unshare", "-U", "-r", "sh", "-c", "id -u"])
    fsk.finish()


if __name__ == "__main__":
    main()
