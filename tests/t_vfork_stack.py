#!/usr/bin/env python3
"""The call stack of a vfork (preload/proc.c, the vfork stub).

The stub cannot run on a frame of its own across the system call (the
child runs on the same stack and may overwrite it), so it keeps the return
address in a register there; its calls into C before and after build a
frame record, and its CFI says where the return address is at each
instruction. The parent's VFORK record then gets the program's stack,
walked by the learnt rules like any other. The library before made no
record: the stack went to libunwind, which (the stub having no CFI) lost
the program's frames and gave only __libc_start_call_main,
__libc_start_main and _start; and each gcc driver paid for libunwind's
trace cache (256 KiB zeroed, ~64 page faults).

tests/progs/vfork_stack vforks from spawn_one(), called by outer() from
three places in main, then once through deep() at 10 levels of recursion; the
children exec /bin/true or _exit(N). Checked, as root and as nobody, with
and without --no-malloc:
- output and exit status are the untraced ones, each child's status is in
  the report;
- each parent-side VFORK record names its child and has a stack whose
  first frames lie in spawn_one, outer (or deep, 10 times) and main, in
  that order; the three through outer() differ in main's return address
  only;
- with FORKSCOPE_UNWIND_CHECK=1, the walks by the rules (the vfork stacks
  among them) are exactly unw_backtrace's, and at least the four vfork
  stacks were compared."""
import os
import struct
import subprocess
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import num  # noqa: E402
from t_unwind_rules import notes  # noqa: E402

REC_FORK, REC_STACK = 6, 13
FORK_VFORK, SIDE_PARENT = 2, 1
DEEP = 10


def symbols(exe):
    """{name: (offset, size)} of the functions the program names."""
    out = subprocess.run(["nm", "-S", exe], stdout=subprocess.PIPE, text=True).stdout
    syms = {}
    for line in out.splitlines():
        w = line.split()
        if len(w) == 4 and w[2] in "tT" and w[3] in ("spawn_one", "outer", "deep", "main"):
            syms[w[3]] = (int(w[0], 16), int(w[1], 16))
    return syms


def vforks(path):
    """[(child pid, [ips])] of the parent-side VFORK records of a stream."""
    stacks, out = {}, []
    for typ, p in fsk.stream_records(path):
        if typ == REC_STACK:
            sid, depth = struct.unpack_from("<II", p)
            stacks[sid] = list(struct.unpack_from("<%dQ" % depth, p, 8))
        elif typ == REC_FORK:
            pid, _, kind, side, sid = struct.unpack_from("<IiHHI", p)
            if kind == FORK_VFORK and side == SIDE_PARENT:
                out.append((pid, stacks.get(sid, [])))
    return out


def case(tag, wrap, options, exe, syms):
    def check(name, ok, why=""):
        return fsk.check(tag + "." + name, ok, why)
    plain = fsk.run_plain([exe], wrap=wrap)
    r = fsk.run_traced([exe], wrap=wrap, options=options, env={"FORKSCOPE_UNWIND_CHECK": "1"})
    if not check("ran", r.rc == 0 == plain.rc and not r.timed_out,
                 r.describe() + " / plain " + plain.describe()):
        return

    def strip(out):  # pids and load addresses differ from run to run
        return [" ".join(w for w in line.split() if not w.startswith(("pid=", "addr=")))
                for line in out.splitlines()]
    check("same-output", strip(r.out) == strip(plain.out) and "@ done" in r.out,
          "traced:\n%s\nuntraced:\n%s" % (r.out, plain.out))
    kids = [(num(k["pid"]), num(k["status"]), k["via"]) for k in fsk.at_dicts(r.out, "child")]
    if not check("children", [(s, v) for _, s, v in kids] ==
                 [(0, "outer"), (1, "outer"), (2, "outer"), (4, "deep")], kids):
        return
    doc = r.report()
    if not check("report", doc is not None, r.report_error):
        return
    procs = fsk.by_pid(doc)
    check("exit-status-in-report",
          all(p in procs and fsk.exit_str(procs[p]) == "exited %d" % s for p, s, _ in kids),
          {p: fsk.exit_str(procs[p]) if p in procs else None for p, _, _ in kids})
    # where the functions are in this run: main's address as printed
    addr = {f["name"]: int(f["addr"], 16) for f in fsk.at_dicts(r.out, "fn")}
    bias = addr["main"] - syms["main"][0]

    def where(ip):
        for name, (off, size) in syms.items():
            if bias + off < ip <= bias + off + size:  # a return address: just past its call
                return name
        return hex(ip)
    parent = procs[kids[0][0]]["ppid"]
    got = vforks(os.path.join(r.trace, "%d.0.fst" % parent))
    check("four-vforks", [p for p, _ in got] == [p for p, _, _ in kids],
          "records %r, children %r" % ([p for p, _ in got], kids))
    for (pid, ips), (_, _, via) in zip(got, kids):
        names = [where(ip) for ip in ips]
        want = ["spawn_one"] + ([via] if via == "outer" else ["deep"] * DEEP) + ["main"]
        check("stack-of-%d" % pid, names[:len(want)] == want, "want %r, got %r" % (want, names))
    outer = [ips for (_, ips), (_, _, via) in zip(got, kids) if via == "outer"]
    check("three-call-sites", len(outer) == 3 and len({ips[2] for ips in outer}) == 3 and
          len({tuple(ips[:2] + ips[3:]) for ips in outer}) == 1, [[hex(i) for i in s] for s in outer])
    found = [x for x in notes(r.trace) if x[0] == "%d.0.fst" % parent]
    check("checked", found and found[0][1] >= 4, found)
    check("none-differed", found and not any(d or firsts for _, _, d, firsts in found), found)


def main():
    exe = fsk.prog("vfork_stack")
    fsk.require(exe)
    syms = symbols(exe)
    if not fsk.check("symbols", set(syms) == {"spawn_one", "outer", "deep", "main"}, syms):
        fsk.finish()
    for tag, wrap in fsk.user_runs():
        case(tag + ".malloc", wrap, [], exe, syms)
        case(tag + ".no-malloc", wrap, ["--no-malloc"], exe, syms)


if __name__ == "__main__":
    try:
        main()
    finally:
        fsk.finish()
