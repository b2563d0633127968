#!/usr/bin/env python3
"""A busy thread's full buffers end the stream at 128 KiB boundaries.

The page cache keeps a file in folios of up to 128 KiB only where writes
fill them whole, and a write that does costs the kernel less (emit.c,
tb_cap): an emptied buffer is given the room that ends its write at the
stream's next 128 KiB boundary, and MPAD records fill the last few bytes.
Each write of a buffer starts with a CTX record, so in the raw stream of
malloc_bench (one thread, a million malloc/free pairs) most 128 KiB
boundaries hold the start of a CTX record; before this change the writes
were 8 bytes short of 128 KiB and almost none did. Cases: events only,
with stacks (STACK records between the compact ones), and full buffers
left to the flusher thread (FORKSCOPE_HANDOFF=1: the next buffer's room
counts the full one that has not gone out yet). In each, the report
counts every malloc and free, no more than 256 bytes of MPADs come
before a boundary, and each record of the raw stream ends inside the
file."""
import glob
import os
import struct
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402

PAIRS = 1000000
ALIGN = 128 * 1024
CTX = 22
MPAD = 0xF000
# a flusher tick (every 50 ms) writes a buffer's part out and costs the
# next write or two its alignment: a slow machine's run has more of them
WANT = 0.5


def walk(path):
    """({start offset of each CTX record: bytes of the MPAD records right
    before it}, stream size, offset where the records stop making sense
    or None)."""
    b = open(path, "rb").read()
    ctx, run, bad = {}, 0, None
    for off, typ, n in fsk.stream_walk(b):
        if typ is None:
            bad = off
        elif typ == CTX:
            ctx[off] = run
        run = run + 4 if n == 4 and struct.unpack_from("<I", b, off)[0] == MPAD else 0
    return ctx, len(b), bad


def case(tag, depth, env=None):
    r = fsk.run_traced([fsk.bench_prog("malloc_bench"), str(PAIRS), "1", "0"], timeout=180,
                       cwd=fsk.tmpdir(), env=env,
                       options=["--stack-depth", str(depth), "--scan-ms", "0"])
    if not check(tag + ".ran", r.rc == 0, r.describe()):
        return
    doc = r.report()
    procs = fsk.processes(doc) if doc else []
    if not check(tag + ".report", len(procs) == 1, r.report_error or "%d processes" % len(procs)):
        return
    m = procs[0].get("malloc") or {}
    check(tag + ".counted", PAIRS <= (m.get("calls") or 0) <= PAIRS + 200 and
          PAIRS <= (m.get("frees") or 0) <= PAIRS + 200,
          "report: %r calls, %r frees; the loop made %d of each" % (m.get("calls"), m.get("frees"), PAIRS))
    streams = glob.glob(os.path.join(r.trace, "%d.*.fst" % procs[0]["pid"]))
    if not check(tag + ".stream", len(streams) == 1, "%r" % streams):
        return
    ctx, size, bad = walk(streams[0])
    check(tag + ".records", bad is None, "a record at offset %s runs past the end or is too short" % bad)
    # the boundaries inside the busy part: not the first (the header and
    # the start scan come before it) nor the last (the end of the run)
    inner = list(range(2 * ALIGN, size - ALIGN, ALIGN))
    if not check(tag + ".long", len(inner) >= 20, "%d bytes: %d inner boundaries" % (size, len(inner))):
        return
    hit = [x for x in inner if x in ctx]
    pads = [ctx[x] for x in hit]
    fsk.note("%s: %d of %d boundaries start a write, after %d bytes of MPADs at most" %
             (tag, len(hit), len(inner), max(pads or [0])))
    check(tag + ".aligned", len(hit) >= WANT * len(inner),
          "%d of %d 128 KiB boundaries start a buffer's write (a CTX record)" % (len(hit), len(inner)))
    check(tag + ".few-pads", max(pads or [0]) <= 256, "%d bytes of MPAD records before a boundary" % max(pads or [0]))


def main():
    fsk.require(fsk.bench_prog("malloc_bench"))
    case("events", 0)
    case("stacks", 32)
    case("handoff", 0, env={"FORKSCOPE_HANDOFF": "1"})
    fsk.finish()


if __name__ == "__main__":
    main()
