#!/usr/bin/env python3
"""`forkscope run` starts CMD as the shell that ran it would have: with
the signal dispositions and the signal mask forkscope itself was started
with (ignored ones stay ignored, the others are SIG_DFL, glibc's own
signals 32 and 33 included: a process made by posix_spawn, as make 4.3
makes its commands, starts with those two ignored, one made by fork and
exec does not), and when CMD cannot be run, with the shell's message
and status (127 not found, 126 not runnable) and a trace that says no
process ran; a file without a #! line runs through /bin/sh, as execvp
does. As root and as nobody."""
import os
import signal
import subprocess
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check  # noqa: E402

# (name, dispositions to ignore, signals to block) set before forkscope
# (or the plain command) is exec'd
STATES = [
    ("default", [], []),
    ("nohup-background", [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT], []),
    ("term-ignored-usr1-blocked", [signal.SIGTERM], [signal.SIGUSR1]),
    ("hup-blocked", [signal.SIGPIPE], [signal.SIGHUP, signal.SIGTERM]),
]


def sig_lines(out):
    return [ln for ln in out.splitlines() if ln.startswith(("SigIgn:", "SigBlk:"))]


def set_libc_signals(handler):
    """Sets glibc's own signals, 32 and 33, to handler (0 SIG_DFL, 1
    SIG_IGN) with the raw system call: Python's signal module and glibc's
    sigaction refuse them."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    act = (ctypes.c_ulong * 4)(handler, 0x04000000, 0, 0)  # SA_RESTORER unused
    for sig in (32, 33):
        libc.syscall(13, sig, ctypes.byref(act), None, 8)  # rt_sigaction


def run(argv, ignore, block, wrap=(), trace=None, env=None, libc_ignored=False):
    def pre():
        set_libc_signals(1 if libc_ignored else 0)
        for s in ignore:
            signal.signal(s, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, block)
    cmd = list(wrap) + ([fsk.fsk(), "run", "-q", "-o", trace, "--"] if trace else []) + argv
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, preexec_fn=pre,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def main():
    # linked statically: what the runner hands CMD, with no preloaded
    # library in it (our flusher thread makes glibc catch signal 33)
    state = fsk.prog("sig_state")
    fsk.require(state)  # also sets FORKSCOPE_LIB when run alone
    d = fsk.tmpdir()
    script = os.path.join(d, "no-shebang")
    with open(script, "w") as f:
        f.write("echo from a file without a shebang line\necho \"$LD_PRELOAD\"\nexit 3\n")
    os.chmod(script, 0o755)
    noexec = os.path.join(d, "not-executable")
    with open(noexec, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(noexec, 0o644)
    for tag, wrap in fsk.user_runs():
        for name, ignore, block in STATES:
            for libc in (False, True):
                name2 = name + (".libc-signals-ignored" if libc else "")
                rc0, out0, err0 = run([state], ignore, block, wrap, libc_ignored=libc)
                trace = fsk.fresh_dir(name)
                rc, out, err = run([state], ignore, block, wrap, trace, libc_ignored=libc)
                want = sig_lines(out0)
                check("%s.%s.plain" % (tag, name2), rc0 == 0 and len(want) == 2 and
                      (int(want[1].split()[1], 16) >> 31 & 3 == (3 if libc else 0)),
                      "rc=%s %r %r" % (rc0, out0, err0))
                check("%s.%s.signals" % (tag, name2), rc == 0 and sig_lines(out) == want,
                      "rc=%s traced %r, plain %r, stderr %r" % (rc, sig_lines(out), want, err[-300:]))

        trace = fsk.fresh_dir("missing")
        # a PATH that nobody can search: a directory it may not enter
        # makes execvp (and a spawn) say EACCES, not ENOENT
        rc, out, err = run(["forkscope-no-such-command"], [], [], wrap, trace, {"PATH": "/usr/bin:/bin"})
        check(tag + ".missing.status", rc == 127, "rc=%s" % rc)
        check(tag + ".missing.message", "forkscope-no-such-command: command not found" in err, repr(err))
        doc, why = fsk.load_report(trace)
        check(tag + ".missing.report", doc is not None and not fsk.processes(doc),
              why or "processes %r" % [p.get("pid") for p in fsk.processes(doc)])

        trace = fsk.fresh_dir("noexec")
        rc, out, err = run([noexec], [], [], wrap, trace)
        check(tag + ".not-executable.status", rc == 126, "rc=%s %r" % (rc, err))
        check(tag + ".not-executable.message", "Permission denied" in err, repr(err))

        trace = fsk.fresh_dir("script")
        rc, out, err = run([script], [], [], wrap, trace)
        lines = out.splitlines()
        check(tag + ".no-shebang.runs", rc == 3 and lines[:1] == ["from a file without a shebang line"],
              "rc=%s out=%r err=%r" % (rc, out, err[-300:]))
        # it went the fork way after the spawn's ENOEXEC: the library once
        # in LD_PRELOAD, not once per way tried
        check(tag + ".no-shebang.preload-once", lines[1:] == [os.environ["FORKSCOPE_LIB"]],
              "LD_PRELOAD %r, want %r" % (lines[1:], os.environ["FORKSCOPE_LIB"]))
        doc, why = fsk.load_report(trace)
        check(tag + ".no-shebang.traced", doc is not None and len(fsk.processes(doc)) == 1,
              why or "processes %r" % [p.get("pid") for p in fsk.processes(doc)])
    fsk.finish()


if __name__ == "__main__":
    main()
