"""`forkscope report` and `export` read a finished trace by replaying its
streams (viewer/merge.c) instead of keeping every event in memory. This
runs every sample and the test programs traced, then renders each trace
both ways (FORKSCOPE_LOAD_ALL=1 forces the in-memory path the viewer
uses) and checks that report --json, the text report and every export
format are byte-identical, with the same messages and exit status."""
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check  # noqa: E402

PROGS = [
    ("cow_truth", []),
    ("malloc_count", ["3000", "4"]),     # four threads' blocks interleave
    ("malloc_clock", ["40", "200"]),     # frees by another thread
    ("stacks", []),
    ("stress_fork", ["60"]),
    ("hostile", ["spawn"]),
    ("hostile", ["vfork"]),
    ("sigchain", ["segv"]),
    ("scan_cost", ["smaps", "300", "37"]),
]
VIEWS = [
    ("json", ["report", "--json"]),
    ("text", ["report"]),
    ("chrome", ["export", "--format", "chrome"]),
    ("collapsed", ["export", "--format", "collapsed"]),
    ("collapsed_cow", ["export", "--format", "collapsed", "--what", "cow"]),
    ("massif", ["export", "--format", "massif"]),
]


def render(trace, args, all_events):
    env = dict(os.environ)
    env.pop("FORKSCOPE_LOAD_ALL", None)
    if all_events:
        env["FORKSCOPE_LOAD_ALL"] = "1"
    cmd = [fsk.fsk(), args[0], trace] + args[1:]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=300)
    return p.returncode, p.stdout, p.stderr


def compare(tag, trace):
    for name, args in VIEWS:
        a = render(trace, args, True)
        b = render(trace, args, False)
        why = ""
        if a != b:
            why = "rc %s/%s, stdout %d/%d bytes, stderr %r / %r" % (
                a[0], b[0], len(a[1]), len(b[1]), a[2][-200:], b[2][-200:])
        check("%s.%s.same" % (tag, name), a == b and (name != "json" or a[0] == 0), why)


def main():
    runs = [(n, [fsk.sample(n)]) for n in sorted(os.listdir(os.path.dirname(fsk.sample("x"))))]
    runs += [("%s-%s" % (p, a[0]) if a else p, [fsk.prog(p)] + a) for p, a in PROGS]
    fsk.require(*[argv[0] for _, argv in runs])
    for tag, argv in runs:
        r = fsk.run_traced(argv, timeout=120, cwd=fsk.tmpdir())
        if not check(tag + ".traced", r.trace and os.path.isdir(r.trace) and not r.timed_out,
                     r.describe()):
            continue
        compare(tag, r.trace)
    fsk.finish()


if __name__ == "__main__":
    main()
