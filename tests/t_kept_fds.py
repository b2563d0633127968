#!/usr/bin/env python3
"""The maps and pagemap fds a process keeps between its scans.

A process that scans more than once (a forking parent's prefork scans,
an image's START then later scans) keeps /proc/self/maps and
/proc/self/pagemap open, high and close-on-exec (preload/scan.c,
kept_open): opening them cost each scan ~20 us. That must stay invisible
to the program and safe. tests/progs/kept_fds forks three children:
- none of them may hold an fd naming its parent's maps or pagemap (they
  name the parent's mm; a child that drops privileges must not keep them),
  and none may close a file the program put on such a number (the
  parent's prefork scan notices the swap before the fork, so in this
  program the child's own check before its close is never the one that
  saves the file: this guards the two together);
- after the first child the parent finds its kept fds (both at 100 or
  above), puts files of its own on those numbers with dup2 and forks
  again: the prefork scan must open its own again, and the program's files
  must be left where they were, at offset 0 ("@ tamper ok=1");
- then it closes every fd from 3 up (close_range) and forks the third.
Each of the three prefork scans must list the parent's heap with the
100000 bytes it wrote resident, the program prints what it prints
untraced (but for its "@ kept" line), and every stream is clean. As root
and as nobody."""
import os
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import num  # noqa: E402

SCAN_FORK_PARENT = 2


def main():
    for tag, wrap in fsk.user_runs():
        case(tag, wrap)


def case(tag, wrap):
    d = os.path.join(fsk.tmpdir(), "kept-" + tag)
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o777)
    argv = [fsk.prog("kept_fds"), d]
    plain = fsk.run_plain(argv, wrap=wrap)
    r = fsk.run_traced(argv, wrap=wrap)

    def check(name, ok, why=""):
        return fsk.check(tag + "." + name, ok, why)
    check("ran", r.rc == 0 == plain.rc and not r.timed_out, r.describe() + " / plain " + plain.describe())

    def rest(out):
        return [line for line in out.splitlines() if not line.startswith("@ kept")]
    check("same-output", rest(r.out) == rest(plain.out) and "@ done" in r.out,
          "traced:\n%s\nuntraced:\n%s" % (r.out, plain.out))
    kept = fsk.at_dicts(r.out, "kept")
    check("kept-high", len(kept) == 1 and num(kept[0]["maps"]) >= 100 and num(kept[0]["pagemap"]) >= 100,
          "the parent's kept maps/pagemap fds: %r" % kept)
    kids = fsk.at_dicts(r.out, "child")
    check("children-hold-no-parent-fd", len(kids) == 3 and all(num(k["parent_fds"]) == 0 for k in kids), kids)
    check("children-keep-program-fds", len(kids) == 3 and all(num(k["own_ok"]) == 1 for k in kids), kids)
    check("program-fds-untouched", "@ tamper ok=1" in r.out, r.out)
    doc = r.report()
    if not check("report", doc is not None, r.report_error):
        return
    procs = fsk.processes(doc)
    check("streams-clean", len(procs) == 4 and all(q["stream_state"] == "clean" for q in procs),
          [(q["pid"], q["stream_state"]) for q in procs])
    parent = [q for q in procs if q.get("ppid") not in [x["pid"] for x in procs]]
    if not check("parent-found", len(parent) == 1, [q["pid"] for q in procs]):
        return
    scans = fsk.stream_scans(os.path.join(r.trace, "%d.0.fst" % parent[0]["pid"]))
    forks = [s for s in scans if s[0] == SCAN_FORK_PARENT]
    heaps = [sum(g["resident"] for g in s[3] if g["kind"] == "heap") for s in forks]
    check("three-prefork-scans", len(forks) == 3, [s[0] for s in scans])
    check("each-scan-sees-the-heap", len(heaps) == 3 and all(h >= 100000 // 4096 for h in heaps),
          "heap pages resident in the FORK_PARENT scans: %r" % heaps)


if __name__ == "__main__":
    try:
        main()
    finally:
        fsk.finish()
