"""Fork from one thread while four others are inside malloc
(tests/progs/stress_fork.c), under forkscope and under the strict library
whose malloc hook aborts if it is re-entered: no deadlock, no crash, every
fork child recorded with its own mallocs, and the parent's malloc count at
least what the program counted itself."""
import os
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check, note, num  # noqa: E402

FORKS = 200


def one(tag, lib=None):
    r = fsk.run_traced([fsk.prog("stress_fork"), str(FORKS)], timeout=60, cwd=fsk.tmpdir(), lib=lib)
    if not check(tag + ".no-deadlock", not r.timed_out, "still running after 60 s: " + r.describe()):
        return
    check(tag + ".rc", r.rc == 0, "stress_fork exited %s (128+n: killed; 1: a child failed): %s" % (r.rc, r.describe()))
    counts = fsk.at_dicts(r.out, "counts")
    if not check(tag + ".printed-counts", len(counts) == 1, "output %r" % r.out[-300:]):
        return
    c = counts[0]
    check(tag + ".children-ok", c["children_ok"] == c["forks"], "%s of %s children exited 0" % (c["children_ok"], c["forks"]))
    doc = r.report()
    if not check(tag + ".report", doc is not None, r.report_error):
        return
    fsk.check_unique_pids(tag, doc)
    procs = fsk.by_pid(doc)
    main_pid = num(fsk.at_dicts(r.out, "proc")[0]["pid"])
    parent = procs.get(main_pid)
    if not check(tag + ".parent-in-report", parent is not None, "pid %d missing" % main_pid):
        return
    m = parent.get("malloc") or {}
    check(tag + ".parent-malloc-calls", m.get("calls", 0) >= num(c["malloc"]),
          "report calls=%r, the program made %s mallocs" % (m.get("calls"), c["malloc"]))
    check(tag + ".parent-frees", m.get("frees", 0) >= num(c["free"]),
          "report frees=%r, the program made %s frees" % (m.get("frees"), c["free"]))
    kids = [num(kv["pid"]) for kv in fsk.at_dicts(r.out, "child")]
    check(tag + ".child-count", len(kids) == FORKS, "program forked %d" % len(kids))
    missing = [k for k in kids if k not in procs]
    check(tag + ".children-in-report", not missing, "%d children missing, e.g. %r" % (len(missing), missing[:5]))
    bad = []
    for k in kids:
        p = procs.get(k)
        if not p:
            continue
        e = p.get("exit") or {}
        mc = (p.get("malloc") or {}).get("calls", 0)
        if (p.get("ppid") != main_pid or e.get("kind") != "exited" or e.get("code") != 0
                or p.get("reaped_by") != main_pid or mc < num(c["child_mallocs"])):
            bad.append((k, p.get("ppid"), fsk.exit_str(p), p.get("reaped_by"), mc))
    check(tag + ".children-recorded", not bad,
          "%d children wrong (pid, ppid, exit, reaped_by, malloc calls), e.g. %r" % (len(bad), bad[:3]))


def main():
    fsk.require(fsk.prog("stress_fork"))
    plain = fsk.run_plain([fsk.prog("stress_fork"), str(FORKS)], timeout=60)
    check("untraced.rc", plain.rc == 0, plain.describe())
    one("stress")
    strict = fsk.env("FSK_STRICT_LIB")
    if strict and os.path.exists(strict):
        one("stress-strict", lib=strict)
    else:
        note("no strict library (build/strict/libforkscope.so): strict run skipped")
    fsk.finish()


if __name__ == "__main__":
    main()
