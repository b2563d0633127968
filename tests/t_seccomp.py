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
status its parent saw. With the previous library every traced run dies."""
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


if __name__ == "__main__":
    try:
        main()
    finally:
        fsk.finish()
