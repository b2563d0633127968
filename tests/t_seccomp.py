#!/usr/bin/env python3
"""A program that installs a seccomp filter must not die of it
(tests/progs/seccomp_self).

A sandbox allows the system calls the program itself needs and often
kills the process for any other: seccomp_self, once forkscope's flusher
runs, kills itself on openat, fstat and newfstatat, then allocates (on a
thread too) and prints. Under forkscope it died of SIGSYS at our first
fstat. Tracing of the image now stops before the filter is installed
(prctl(PR_SET_SECCOMP) and syscall(SYS_seccomp), as libseccomp does).
Installed either way, with stacks and events only, the traced run must
end as the untraced one (status, output: LD_PRELOAD no longer names
forkscope's library afterwards, so an image it execs would not load it
under the filter), and the report must show the process's stream as
stopped, the calls before the filter, nothing dropped, and the exit
status its parent saw. With the previous library every traced run dies.

A launcher that built its child's environment itself before its filter
(seccomp_self exec|spawn; the filter kills on getppid, which only
forkscope's constructor calls) execs or spawns the child with it: the
child must not load forkscope's library under the filter (the previous
library's child died of SIGSYS); the report shows the launcher's stream
stopped and its exit, and nothing after the stop."""
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402


def main():
    prog = fsk.prog("seccomp_self")
    fsk.require(prog)
    for how in ("prctl", "syscall"):
        plain = fsk.run_plain([prog, how])
        if plain.rc == 2 and "seccomp:" in plain.err:
            # a container whose own filter refuses seccomp itself
            fsk.skip("seccomp filters cannot be installed here: " + plain.err.strip()[-200:])
        if not check(how + ".untraced", plain.rc == 0 and "preload_ours=0" in plain.out, plain.describe()):
            continue
        for depth in ("32", "0"):
            tag = "%s.depth%s" % (how, depth)
            r = fsk.run_traced([prog, how], options=("--stack-depth", depth))
            if not check(tag + ".lives", r.rc == 0 and r.out == plain.out, r.describe()):
                continue
            procs = fsk.report_procs(tag, r)
            if not procs:
                continue
            p = procs[-1]
            check(tag + ".stopped", p["stream_state"] == "stopped" and p["exit"] == {"kind": "exited", "code": 0}
                  and p["malloc"]["calls"] >= 1100 and p["dropped"] == 0,
                  (p["stream_state"], p["exit"], p["malloc"]["calls"], p["dropped"]))
            check(tag + ".said", "tracing stopped" in fsk.run_plain([fsk.fsk(), "report", r.trace]).out, "")
    for how in ("exec", "spawn"):
        plain = fsk.run_plain([prog, how])
        if not check(how + ".untraced", plain.rc == 0 and "child preload_ours=0" in plain.out, plain.describe()):
            continue
        r = fsk.run_traced([prog, how])
        if not check(how + ".lives", r.rc == 0 and r.out == plain.out, r.describe() + " out %r" % r.out):
            continue
        procs = fsk.report_procs(how, r)
        if not procs:
            continue
        # nothing after the stop is recorded: not the exec, not the child
        launcher = procs[0]
        check(how + ".launcher-stopped", len(procs) == 1 and len(launcher["images"]) == 1
              and launcher["images"][0]["stream_state"] == "stopped"
              and launcher["exit"] == {"kind": "exited", "code": 0},
              [(p["pid"], p["images"], p["exit"]) for p in procs])


if __name__ == "__main__":
    try:
        main()
    finally:
        fsk.finish()
