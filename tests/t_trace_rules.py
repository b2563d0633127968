#!/usr/bin/env python3
"""The unwind rules shared by every process of a trace
(preload/unwind_cache.c, xrules: a memfd of `forkscope run` that each
process opens as /proc/RUNNER/fd/N, FORKSCOPE_RULES).

A rule that one image learnt (a search of the object's unwind table and
a run of its CFA program, one to two microseconds cold) is every later
image's of the same object, found by the object's build-id and the
return address in the object's own terms, so at another load address
too. Checked here:
- two compilers in a row (sh -c "gcc ...; gcc ..."): the second cc1
  learns at most a fifth as many rules as the first, which learns
  thousands (FORKSCOPE_UNWIND_CHECK=2 counts them; the library before
  made both learn alike), and both objects are byte for byte the
  untraced ones;
- a rule found in or put into the trace's table is not copied into the
  process group's as well (FORKSCOPE_UNWIND_CHECK=2 counts those put
  there): the first cc1 puts there at most a tenth of what it learns (the
  rules the trace's table could not take), the second no more than it
  learnt itself (the library before put every rule it used: ~5000 each);
  preloaded by hand, every rule learnt goes to the group's table when the
  file is foreign, and fewer than that when it is the runner's;
- with FORKSCOPE_UNWIND_CHECK=1, every stack walked by the rules (shared
  ones among them) in both compilers and in three runs in a row of
  tests/progs/unwind_rules (frames that trip a walk by rules) is exactly
  unw_backtrace's;
- each of those three runs gets exactly its own chains and bytes in the
  collapsed export;
- the scans list the mapped table as forkscope's own region (its pages
  never counted as the program's);
- the command gets FORKSCOPE_RULES, and not the runner's fd; with
  --stack-depth 0 the runner makes no table (it cost ~0.7 ms a run);
- preloaded by hand with FORKSCOPE_RULES naming a file of the test's, the
  library writes rules there only when the runner's magic is in its first
  slot.
(The table is not in the trace directory, which may be on a full file
system: a write through a shared mapping of a file whose page the file
system cannot give is a SIGBUS; t_faults.py's full-fs case runs a program
with stacks there.)
"""
import glob
import os
import re
import shutil
import struct
import subprocess
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check  # noqa: E402
from cgen import gen_c  # noqa: E402
from t_unwind_rules import notes, program_chain  # noqa: E402

LEARNT = re.compile(rb"unwind check: \d+ stacks compared, \d+ differed, (\d+) rules learnt "
                    rb"\(\d+ of them by libunwind's step\), (\d+) put in the group's table")


def streams(trace):
    return sorted(glob.glob(os.path.join(trace, "*.fst")))


def stream_exe(data):
    """The program of a stream's image, from its header (trace.h: the
    fixed part, then the exe as a length and its bytes)."""
    if len(data) < 16:
        return b""
    fixed = struct.unpack_from("<H", data, 10)[0]
    if fixed + 4 > len(data):
        return b""
    n = struct.unpack_from("<I", data, fixed)[0]
    return data[fixed + 4:fixed + 4 + n]


def cc1_learnt(trace):
    """[(rules learnt, rules put in the group's table)] of the cc1 images'
    streams, in the order they started (not the gcc driver's fork child
    that execs cc1, whose stream names it too)."""
    out = []
    for path in streams(trace):
        data = open(path, "rb").read()
        m = LEARNT.search(data)
        if stream_exe(data).endswith(b"/cc1") and m:
            out.append((os.path.getmtime(path), (int(m.group(1)), int(m.group(2)))))
    return [n for _, n in sorted(out)]


def table_regions(trace):
    """(kind, path) of every scanned region that maps the rules table."""
    return {(g["kind"], g["path"]) for path in streams(trace)
            for s in fsk.stream_scans(path) for g in s[3] if g["path"].startswith("/memfd:forkscope-rules")}


def gcc_case(cc):
    d = fsk.tmpdir()
    srcs = []
    for name, funcs in (("rules_a", 60), ("rules_b", 80)):
        srcs.append(os.path.join(d, name + ".c"))
        gen_c(srcs[-1], funcs)
    script = "; ".join("%s -O2 -c %s -o %s" % (cc, s, s[:-2] + "%s.o") for s in srcs)
    plain = fsk.run_plain(["sh", "-c", script % ("plain", "plain")], timeout=300)
    check("gcc.untraced", plain.rc == 0, plain.describe())
    r = fsk.run_traced(["sh", "-c", script % ("t2", "t2")], timeout=300,
                       env={"FORKSCOPE_UNWIND_CHECK": "2"}, options=["-q"])
    if not check("gcc.ran", r.rc == 0 and not r.timed_out, r.describe()):
        return
    same = all(open(s[:-2] + "plain.o", "rb").read() == open(s[:-2] + "t2.o", "rb").read() for s in srcs)
    check("gcc.same-objects", same, "traced objects differ from untraced ones")
    lp = cc1_learnt(r.trace)
    n = [x for x, _ in lp]
    fsk.note("cc1 (rules learnt, put in the group's table), in order: %r" % lp)
    check("gcc.two-cc1", len(n) == 2, n)
    if len(n) == 2:
        check("gcc.first-learns", n[0] >= 1000, n)
        check("gcc.second-shares", n[1] * 5 <= n[0], n)
        # What the trace's table holds is not copied into the group's:
        # only what it could not take goes there (a full neighbourhood of
        # cc1's dense code, a frame with no rule), and the second cc1,
        # which finds thousands of rules in the trace's table, puts no
        # more than it learnt itself.
        puts = [p for _, p in lp]
        check("gcc.first-group-few", puts[0] * 10 <= n[0], lp)
        check("gcc.second-group-learnt-only", puts[1] <= n[1], lp)
    check("gcc.table-is-ours", table_regions(r.trace) and
          {k for k, _ in table_regions(r.trace)} == {"forkscope"}, table_regions(r.trace))
    c = fsk.run_traced(["sh", "-c", script % ("t1", "t1")], timeout=300,
                       env={"FORKSCOPE_UNWIND_CHECK": "1"}, options=["-q"])
    if not check("gcc.check-ran", c.rc == 0 and not c.timed_out, c.describe()):
        return
    found = [x for x in notes(c.trace) if x[1] >= 1000]
    check("gcc.check-compared", len(found) >= 2, notes(c.trace))
    check("gcc.none-differed", not [x for x in notes(c.trace) if x[2] or x[3]], notes(c.trace))


def rules_case():
    p = fsk.prog("unwind_rules")
    script = "%s; %s; %s" % (p, p, p)
    r = fsk.run_traced(["sh", "-c", script], timeout=120, cwd=fsk.tmpdir(), options=["-q"])
    if not check("rules.ran", r.rc == 0 and not r.timed_out, r.describe()):
        return
    want = fsk.expected_chains(r.out)
    got = fsk.collapsed(r.trace)
    if check("rules.three-processes", len(want) == 3 and got is not None and set(want) <= set(got),
             (sorted(want), sorted(got or {}))):
        for i, pid in enumerate(sorted(want)):
            fsk.check_chains("rules.run%d" % (i + 1), want[pid], got.get(pid, {}), "leaf".__eq__,
                             program_chain)
    c = fsk.run_traced(["sh", "-c", script], timeout=120, cwd=fsk.tmpdir(),
                       env={"FORKSCOPE_UNWIND_CHECK": "1"}, options=["-q"])
    if not check("rules.check-ran", c.rc == 0 and not c.timed_out, c.describe()):
        return
    found = [x for x in notes(c.trace) if x[1] >= 1000]
    check("rules.check-compared", len(found) == 3, notes(c.trace))
    check("rules.none-differed", not [x for x in notes(c.trace) if x[2] or x[3]], notes(c.trace))


def env_case():
    r = fsk.run_traced(["sh", "-c", 'echo "rules=$FORKSCOPE_RULES"; for f in /proc/$$/fd/*; do readlink $f; done; true'],
                       options=["-q"])
    if not check("env.ran", r.rc == 0, r.describe()):
        return
    lines = r.out.split()
    m = re.match(r"rules=/proc/(\d+)/fd/(\d+)$", lines[0] if lines else "")
    check("env.rules-path", m is not None, r.out)
    # the runner's memfd is close-on-exec: not the command's
    check("env.not-inherited", "forkscope-rules" not in r.out.replace(lines[0], ""), r.out)
    # without stacks there are no rules, and no table is made
    r = fsk.run_traced(["sh", "-c", 'echo "rules=$FORKSCOPE_RULES"; ls -l /proc/$PPID/fd/'],
                       options=["-q", "--stack-depth", "0"])
    check("env.no-stacks", r.rc == 0 and "rules=\n" in r.out + "\n" and "forkscope-rules" not in r.out,
          r.describe())


def by_hand_case():
    """The library preloaded by hand, FORKSCOPE_RULES naming a file of this
    test's (1 MiB on tmpfs, every page allocated): with the runner's magic
    in its first slot, the program's rules go in; without it (a pid seen
    from another pid namespace could name anyone's file), nothing is
    written there. The program runs as untraced either way."""
    magic = struct.pack("<Q", 0x73656c7572736b66)
    plain = fsk.run_plain([fsk.prog("unwind_rules")])
    for tag, head in (("magic", magic), ("foreign", b"")):
        fd = os.memfd_create("t-rules")
        try:
            os.posix_fallocate(fd, 0, 1 << 20)
            os.pwrite(fd, head, 0)
            d = fsk.fresh_dir("byhand")
            os.makedirs(d, exist_ok=True)
            env = dict(os.environ, LD_PRELOAD=fsk.env("FORKSCOPE_LIB"), FORKSCOPE_DIR=d,
                       FORKSCOPE_RULES="/proc/%d/fd/%d" % (os.getpid(), fd), FORKSCOPE_UNWIND_CHECK="2")
            r = subprocess.run([fsk.prog("unwind_rules")], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120)
            def chains(out):
                return sorted(re.sub(r"pid=\d+ ", "", line) for line in out.splitlines())
            check("byhand.%s.ran" % tag, r.returncode == 0 and chains(r.stdout.decode()) == chains(plain.out),
                  (r.returncode, r.stderr[-300:]))
            body = os.pread(fd, 1 << 20, 0)[16:]
            used = sum(1 for i in range(0, len(body), 16) if body[i:i + 8] != bytes(8))
            m = [LEARNT.search(open(f, "rb").read()) for f in streams(d)]
            lp = [(int(x.group(1)), int(x.group(2))) for x in m if x]
            fsk.note("by hand, %s: (rules learnt, put in the group's table) %r" % (tag, lp))
            if head:
                check("byhand.magic.rules-in", used >= 20, "%d slots used" % used)
                # the rules that went into the trace's table are not in the
                # group's as well
                check("byhand.magic.group-rest", len(lp) == 1 and lp[0][1] < lp[0][0], lp)
            else:
                check("byhand.foreign.untouched", used == 0, "%d slots written" % used)
                # no trace's table: every rule learnt is the group's
                check("byhand.foreign.group-all", len(lp) == 1 and lp[0][1] >= lp[0][0] >= 20, lp)
        finally:
            os.close(fd)


def main():
    fsk.require(fsk.prog("unwind_rules"))
    env_case()
    by_hand_case()
    rules_case()
    cc = shutil.which("gcc")
    if cc:
        gcc_case(cc)
    else:
        fsk.note("gcc not installed: its case is left out")
    fsk.finish()


if __name__ == "__main__":
    main()
