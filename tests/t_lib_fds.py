#!/usr/bin/env python3
"""No fd of forkscope's below 1000 in a traced program.

forkscope keeps its stream and the /proc fds of its scans at 1000 and up
(README). libunwind, built into the library, opened a pipe on the
program's two lowest free numbers at its init (its test of whether an
address may be read), and read, wrote and closed those numbers again even
after the program had put files of its own there; preload/libunwind.sh
makes it ask fsk_unw_readable (process_vm_readv) instead. A traced
`ls /proc/self/fd` (whose first malloc with a stack starts libunwind)
and a python3 that lists its own fds after allocating must list, below
1000, what they list untraced. As root and as nobody."""
import fsk

LS = "ls /proc/self/fd"
PY = "import os\nx = [bytearray(100) for i in range(1000)]\nprint(' '.join(sorted(os.listdir('/proc/self/fd'))))"


def low(out):
    return sorted(f for f in out.split() if int(f) < 1000)


def case(tag, wrap, argv):
    plain = fsk.run_plain(argv, wrap=wrap)
    r = fsk.run_traced(argv, wrap=wrap, options=["-q"])
    if not fsk.check(tag + ".ran", r.rc == 0 == plain.rc, r.describe() + " / " + plain.describe()):
        return
    fsk.check(tag + ".same-fds-below-1000", low(r.out) == low(plain.out),
              "traced %r, untraced %r" % (r.out.split(), plain.out.split()))
    # the fds are only worth comparing where libunwind ran: a stack taken
    got = fsk.collapsed(r.trace) or {}
    fsk.check(tag + ".stacks-taken", any(got.values()), "no allocation stack in the trace")


def main():
    py = fsk.system_python()
    for tag, wrap in fsk.user_runs():
        case(tag + ".ls", wrap, ["sh", "-c", LS])
        if py:
            case(tag + ".python3", wrap, [py, "-c", PY])
    fsk.finish()


if __name__ == "__main__":
    main()
