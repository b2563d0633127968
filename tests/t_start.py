#!/usr/bin/env python3
"""What an image pays for at start: tests/progs/lazy_start opens a file
before anything allocates, and the descriptor it gets is the untraced one
(the library takes none of the program's descriptors before it needs
them); the call stacks it then leaks from a child forked before anything
allocated, from main and from four threads are recorded all the same,
with the leaked bytes exact. A traced /bin/true
(no allocation, no stack) still has its start scan, its exit from main
and a clean stream."""
import os
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check, num  # noqa: E402


def leak_group(proc, func):
    return [g for g in proc.get("leaks", []) if g["frames"] and g["frames"][0].get("function") == func]


def main():
    exe = fsk.prog("lazy_start")
    fsk.require(exe)
    plain = fsk.run_plain([exe])
    r = fsk.run_traced([exe], options=["--stack-depth", "16"])
    check("start.ran", r.rc == 0 == plain.rc and not r.timed_out, r.describe())
    check("start.same-output", fsk.normalize(r.out) == fsk.normalize(plain.out) and "@ fd first=" in r.out,
          "traced %r, untraced %r" % (r.out[:80], plain.out[:80]))
    doc = r.report()
    if not check("start.report", doc is not None, r.report_error):
        fsk.finish()
    procs = fsk.by_pid(doc)
    child = num(fsk.at_dicts(r.out, "child")[0]["pid"])
    check("start.two-processes", len(procs) == 2 and child in procs, sorted(procs))
    parent = [q for pid, q in procs.items() if pid != child]
    want = {}
    for d in fsk.at_dicts(r.out, "leak"):
        b, n = want.get(d["func"], (0, 0))
        want[d["func"]] = (b + num(d["bytes"]), n + 1)
    check("start.leak-lines", want == {"child_leak": (777, 1), "main_leak": (4321, 1),
                                       "thread_leak": (4006, 4)}, want)
    for func, (nbytes, blocks) in sorted(want.items()):
        p = procs.get(child, {}) if func == "child_leak" else (parent or [{}])[0]
        groups = leak_group(p, func)
        got = [(g["bytes"], g["blocks"]) for g in groups]
        check("start.stack.%s" % func, got == [(nbytes, blocks)],
              "want %d bytes in %d blocks, got %r" % (nbytes, blocks, got))

    t = fsk.run_traced(["/bin/true"])
    doc = t.report() if t.rc == 0 else None
    if not check("start.true.report", doc is not None, t.describe() + " " + str(t.report_error)):
        fsk.finish()
    q = fsk.processes(doc)[0]
    check("start.true.exit", q["exit"] == {"kind": "exited", "code": 0} and q["exit_how"] == "main",
          (q["exit"], q.get("exit_how")))
    check("start.true.stream", q["stream_state"] == "clean" and q["malloc"]["calls"] == 0, q["stream_state"])
    check("start.true.regions", any(g["kind"] == "stack" for g in q["regions"])
          and any(g.get("path") == os.path.realpath("/bin/true") for g in q["regions"]),
          sorted({g["kind"] for g in q["regions"]}))
    fsk.finish()


main()
