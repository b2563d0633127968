#!/usr/bin/env python3
"""make bench's lifecycle floor (tests/bench/floor/scan_floor.c) does the
work it stands for, in every image, and leaves the programs as they are.

A floor that silently skipped a scan or an image would make forkscope look
slower against it than it is. Preloaded into a bash loop of three
/bin/true and into fork_bench (five forks), the floor must:
- leave the output, stderr and exit status as they are untraced;
- write one file per image: bash's own, each fork child's (made at its
  fork) and each exec'd /bin/true's (made by its constructor), 1 + 3 + 3;
  fork_bench's and one per child, 1 + 5;
- in each file, after the 256-byte header, whole scans: a "SCAN" record
  with the region count, then that many 64-byte region records, at least
  8 regions each (a process maps its program, ld.so, libc, the floor,
  its stack, vdso and vvar);
- hold the scans each image makes: bash and fork_bench one at start, one
  before each fork and one at exit (5 and 7); a fork child the parent's
  prefork scan and its own before exec or at _exit (2); a /bin/true one
  at start and one at exit (2);
- leave vfork children alone, as forkscope does (tests/progs/spawn_reap:
  vfork and posix_spawn children add no scan and no file).
"""
import os
import struct
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402

HEADER = 256
REC = 64


def floor_lib():
    return os.path.join(fsk.top(), "build", "bench", "floor_scan.so")


def scans(blob):
    """The region counts of the file's scans, or None when it is not
    whole scans after a header."""
    if blob[:5] != b"FLOOR" or len(blob) < HEADER:
        return None
    out, off = [], HEADER
    while off < len(blob):
        if blob[off:off + 4] != b"SCAN" or off + REC > len(blob):
            return None
        n = struct.unpack_from("<i", blob, off + 4)[0]
        off += REC + n * REC
        if n <= 0 or off > len(blob):
            return None
        out.append(n)
    return out


def case(tag, argv, want):
    """want: the sorted scan counts of the files, one per image."""
    d = fsk.fresh_dir("floor-" + tag)
    os.mkdir(d, 0o700)
    plain = fsk.run_plain(argv)
    r = fsk.run_plain(argv, env={"LD_PRELOAD": floor_lib(), "FLOOR_DIR": d})

    def check(name, ok, why=""):
        return fsk.check(tag + "." + name, ok, why)
    check("same-output", r.rc == plain.rc == 0 and fsk.normalize(r.out) == fsk.normalize(plain.out) and
          r.err == plain.err,
          "floor: %s %r / untraced: %s %r" % (r.describe(), r.out[-200:], plain.describe(), plain.out[-200:]))
    got = {}
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            got[name] = scans(f.read())
    check("whole-scans", got and all(v is not None for v in got.values()), got)
    counts = sorted(len(v or []) for v in got.values())
    check("scans-per-image", counts == sorted(want), "scans per file %s, want %s" % (counts, sorted(want)))
    small = [n for v in got.values() for n in (v or []) if n < 8]
    check("regions-per-scan", not small, got)


def main():
    bench = os.path.join(fsk.top(), "build", "bench", "fork_bench")
    for p in (floor_lib(), bench, fsk.prog("spawn_reap")):
        if not os.path.exists(p):
            fsk.skip("missing %s (make test builds it)" % p)
    case("bash", ["bash", "-c", "for i in 1 2 3; do /bin/true; done; echo done"], [5] + [2] * 6)
    case("fork", [bench, "5", "4"], [7] + [2] * 5)
    # S1 posix_spawn, F1 fork, V1 vfork+exec, S2 posix_spawnp, V2 vfork
    # + _exit, F2 fork (tests/progs/spawn_reap.c): its start, two prefork
    # and its exit scans; three /bin/true and two fork children; nothing
    # from a vfork child (posix_spawn's included), which runs in its
    # parent's memory, as forkscope leaves them
    case("spawn", [fsk.prog("spawn_reap")], [4] + [2] * 5)
    fsk.finish()


if __name__ == "__main__":
    main()
