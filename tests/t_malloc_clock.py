"""Compact malloc records and their clock, read from the raw stream with a
decoder of its own (include/forkscope/trace.h, versions 2 to 5), so the C reader
is not the only judge: tests/progs/malloc_clock mallocs in bursts between
fork and waitpid and hands blocks to a second thread. Checks: every record
of a thread is in time order in the file (TSC stamps next to clock_gettime
ones; stack/module definitions and fault samples aside); each round's
FORK, the malloc right after it, the WAIT and the malloc right after that
come in that order; every expected malloc size is there exactly as often
as made; in time order each block is freed while live, also the 200
blocks the second thread frees (another thread's TSC estimate); the report
counts the same allocations as this decoder. Then a third thread frees
blocks the main thread malloc'd and the main thread mallocs them again at
once (BACKS rounds after bursts whose records may reuse a stamp): each of
those mallocs that got the block back (the program counts them) sorts
after the other thread's free; and the same with a worker that mallocs
after the main thread was quiet for 1.5 ms (it may take the clock); a
quiet thread's mallocs 3 ms apart are stamped near their calls, and
mallocs 100 us apart (a thread too slow for reused stamps to pay) each
within its own call. Run with stacks (CALLOC) and without (CMALLOC). Last, two threads allocate at once and then hand blocks to
each other (malloc_clock pingpong): in time order every block of theirs
is malloc'd while free and freed while live, also with one arena for both
(MALLOC_ARENA_MAX=1); with an arena each, both reuse stamps while they
keep to their own blocks."""
import collections
import glob
import os
import struct
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402

ROUNDS, BURST, HANDS = 60, 400, 200
BACKS, BACK_BURST, BACK_SIZE = 300, 20, 5000
TAKES, TAKE_BURST, TAKE_SIZE = 40, 300, 5001
ALLOC, FREE, REALLOC, FORK, WAIT, STACK, FAULT, MODULE = 1, 2, 3, 6, 11, 13, 20, 21
CTX, CBASE, CFREE, CALLOC, CMALLOC = 22, 23, 24, 25, 26


def decode(path):
    """[(type, tid, ts, fields dict)] in file order; raises on damage."""
    b = open(path, "rb").read()
    version = struct.unpack_from("<H", b, 8)[0]
    if b[:8] != b"FSKTRACE" or version not in (2, 3, 4, 5):
        raise ValueError("not a version 2 to 5 stream")
    off = struct.unpack_from("<I", b, 12)[0]
    # per thread: its last compact record's time and address, and its
    # last compact allocation's stack id
    cur, base, last, addr_of, stack_of, out = None, {}, {}, {}, {}, []
    while off + 4 <= len(b):
        typ = struct.unpack_from("<H", b, off)[0]
        n = fsk.tiny_len(typ, version)
        if n:  # the time of the thread's last compact record
            w = int.from_bytes(b[off:off + n], "little")
            ev = fsk.tiny_event(w, n, version, addr_of.get(cur, 0), stack_of.get(cur, 0))
            off += n
            if ev is None:
                continue
            kind, addr, size_, stack, _, _, dt = ev
            addr_of[cur] = addr
            last[cur] += dt
            reused = not (version >= 5 and n == 8 and w >> 12 & 3 == 3)  # not a TLATER
            if kind == "malloc":
                stack_of[cur] = stack
                out.append((ALLOC, cur, last[cur], dict(addr=addr, size=size_, stack=stack, tiny=reused)))
            else:
                out.append((FREE, cur, last[cur], dict(addr=addr, tiny=reused)))
            continue
        typ, size = struct.unpack_from("<HH", b, off)
        if size < 16 or size % 8 or off + size > len(b):
            raise ValueError("bad record at %d" % off)
        if typ in (CTX, CBASE):
            tid, ts = struct.unpack_from("<IQ", b, off + 4)
            cur = tid
            if typ == CBASE:
                base[tid] = ts
        elif typ in (CFREE, CALLOC, CMALLOC):
            dt, w = struct.unpack_from("<IQ", b, off + 4)
            ts = base[cur] + dt
            last[cur] = ts
            if typ == CFREE:
                out.append((FREE, cur, ts, dict(addr=w & ~15)))
            elif typ == CMALLOC:
                out.append((ALLOC, cur, ts, dict(addr=(w & ((1 << 44) - 1)) << 4,
                                                 size=(w >> 44) & ((1 << 19) - 1), stack=0)))
            else:
                size_, sf = struct.unpack_from("<II", b, off + 16)
                out.append((ALLOC, cur, ts, dict(addr=w & ~15, size=size_, stack=sf & 0xffffff)))
            addr_of[cur] = out[-1][3]["addr"]
            if typ != CFREE:
                stack_of[cur] = out[-1][3]["stack"]
        else:
            tid, ts = struct.unpack_from("<IQ", b, off + 4)
            f = {}
            if typ == ALLOC:
                f = dict(zip(("addr", "size", "stack"), struct.unpack_from("<QQI", b, off + 16)))
            elif typ == FREE:
                f = dict(addr=struct.unpack_from("<Q", b, off + 16)[0])
            elif typ == FORK:
                child, _, _, side = struct.unpack_from("<IiHH", b, off + 16)
                f = dict(child=child, side=side)
            elif typ == WAIT:
                f = dict(result=struct.unpack_from("<i", b, off + 20)[0])
            out.append((typ, tid, ts, f))
        off += size
    return out


def stream_records(tag, trace, pid):
    """decode() of process pid's one stream in trace, or None (checks
    TAG.stream and TAG.decode say why)."""
    streams = glob.glob(os.path.join(trace, "%d.*.fst" % pid))
    if not check(tag + ".stream", len(streams) == 1, "%r" % streams):
        return None
    try:
        recs = decode(streams[0])
    except (ValueError, KeyError, struct.error) as e:
        check(tag + ".decode", False, str(e))
        return None
    check(tag + ".decode", True)
    return recs


def run(tag, depth):
    r = fsk.run_traced([fsk.prog("malloc_clock"), str(ROUNDS), str(BURST)], timeout=180,
                       cwd=fsk.tmpdir(), options=["--stack-depth", str(depth), "--scan-ms", "0"])
    if not check(tag + ".ran", r.rc == 0 and "@ counts" in r.out, r.describe()):
        return
    doc = r.report()
    procs = fsk.processes(doc) if doc else []
    roots = [p for p in procs if p.get("ppid") not in {q.get("pid") for q in procs}]
    if not check(tag + ".report", doc is not None and len(roots) == 1, r.report_error or "%d roots" % len(roots)):
        return
    parent = roots[0]
    recs = stream_records(tag, r.trace, parent["pid"])
    if recs is None:
        return

    last, back = {}, []
    for i, (typ, tid, ts, _) in enumerate(recs):
        if typ in (FAULT, STACK, MODULE):
            continue  # fault samples carry the fault's time and are drained later;
            # definitions of stacks and modules may be written ahead of the buffer
        if ts < last.get(tid, 0):
            back.append((i, typ, ts, last[tid]))
        last[tid] = ts
    check(tag + ".thread-time-order", not back, "%d records go back in time, first %r" % (len(back), back[:3]))

    # per round: FORK(parent) < malloc(100000+i) < WAIT < malloc(200000+i), by file order and time
    seq = [(typ, f) for typ, _, _, f in recs
           if typ in (FORK, WAIT) and f.get("side", 1) == 1 or
           typ == ALLOC and 100000 <= f["size"] < 100000 + ROUNDS or
           typ == ALLOC and 200000 <= f["size"] < 200000 + ROUNDS]
    want = []
    for i in range(ROUNDS):
        want += [(FORK, None), (ALLOC, 100000 + i), (WAIT, None), (ALLOC, 200000 + i)]
    got = [(t, f["size"] if t == ALLOC else None) for t, f in seq]
    check(tag + ".round-order", got == want, "first difference at %s" %
          next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), min(len(got), len(want))))

    sizes = collections.Counter(f["size"] for typ, _, _, f in recs
                                if typ == ALLOC and 7000 <= f["size"] < 7000 + BURST)
    check(tag + ".burst-sizes", len(sizes) == BURST and set(sizes.values()) == {ROUNDS},
          "%d sizes, counts %r" % (len(sizes), sorted(set(sizes.values()))[:5]))
    # in time order (stable, as the viewer sorts): every block this program
    # made is freed while live, by the thread that made it or, for the
    # handed blocks, by the other one
    ours = lambda n: (7000 <= n < 7000 + BURST or 100000 <= n < 100000 + ROUNDS or
                      200000 <= n < 200000 + ROUNDS or 300000 <= n < 300000 + HANDS or
                      4000 <= n < 4000 + BACK_BURST or n == BACK_SIZE or
                      4100 <= n < 4120 or n == TAKE_SIZE)
    main_tid = next((tid for typ, tid, _, f in recs if typ == ALLOC and f["size"] == 100000), None)
    live, freed, hands, freed_by, back, taken = {}, 0, [], {}, 0, 0
    for typ, tid, ts, f in sorted(recs, key=lambda r: r[2]):
        if typ == ALLOC and ours(f["size"]):
            live[f["addr"]] = (tid, f["size"])
            if f["size"] == BACK_SIZE and tid == main_tid and freed_by.get(f["addr"]) not in (None, tid):
                back += 1
            if f["size"] == TAKE_SIZE and tid != main_tid and freed_by.get(f["addr"]) == main_tid:
                taken += 1
        elif typ == FREE and f["addr"] in live:
            atid, size = live.pop(f["addr"])
            freed += 1
            if size >= 300000:
                hands.append((size, atid != tid))
        if typ in (ALLOC, FREE):
            freed_by[f["addr"]] = tid if typ == FREE else None
    made = ROUNDS * (BURST + 2) + HANDS + BACKS * (BACK_BURST + 2) + TAKES * (TAKE_BURST + 2)
    check(tag + ".free-after-alloc", freed == made and not live,
          "%d of %d blocks freed after their malloc, %d never" % (freed, made, len(live)))
    check(tag + ".cross-thread-frees", sorted(h[0] for h in hands) == list(range(300000, 300000 + HANDS))
          and all(h[1] for h in hands),
          "%d handed blocks freed after their malloc, %d by the other thread"
          % (len(hands), sum(h[1] for h in hands)))
    counts = fsk.at_dicts(r.out, "counts")[0]
    same, want_taken = int(counts.get("same", -1)), int(counts.get("taken", -1))
    check(tag + ".back-after-free", same > 0 and back == same,
          "%d of the program's %d mallocs that got back a block another thread freed sort after "
          "that free" % (back, same))
    check(tag + ".taken-after-free", want_taken > 0 and taken == want_taken,
          "%d of the worker's %d mallocs that got back a block the main thread freed sort after "
          "that free" % (taken, want_taken))
    # a quiet thread's mallocs 3 ms apart: a reused stamp is never late,
    # and the flusher's 1 ms epochs keep it near its call (only a flusher
    # kept from running lets it lag; the median shows the bound holds)
    sp = {int(d["k"]): (int(d["before"]), int(d["after"])) for d in fsk.at_dicts(r.out, "sparse")}
    stamps = {f["size"] - 6000: ts for typ, _, ts, f in recs if typ == ALLOC and 6000 <= f["size"] < 6000 + len(sp)}
    late = [k for k, ts in stamps.items() if ts > sp[k][1]]
    early = sorted(max(0, sp[k][0] - ts) for k, ts in stamps.items())
    check(tag + ".sparse-stamps", len(sp) == 30 and len(stamps) == 30 and not late and
          early[len(early) // 2] <= 2000000,
          "%d mallocs timed, %d recorded, %d stamped after the call returned, stamps early by "
          "median %.2f ms, max %.2f ms" % (len(sp), len(stamps), len(late),
                                           early[len(early) // 2] / 1e6 if early else -1,
                                           early[-1] / 1e6 if early else -1))
    # mallocs 100 us apart (busy, no sleep), in one epoch ten at a time:
    # too slow for a reused stamp to pay (emit.h, EMIT_HOT_NS), so each
    # carries the time of its own call
    sl = {int(d["k"]): (int(d["before"]), int(d["after"])) for d in fsk.at_dicts(r.out, "slow")}
    sts = {f["size"] - 6500: ts for typ, _, ts, f in recs if typ == ALLOC and 6500 <= f["size"] < 6500 + len(sl)}
    off = sorted(max(sl[k][0] - ts, ts - sl[k][1], 0) for k, ts in sts.items() if k in sl)
    check(tag + ".slow-own-time", len(sl) == 40 and len(off) == 40 and off[-1] <= 20000,
          "%d slow mallocs timed, %d recorded; stamps outside their call by up to %.3f ms (a reused "
          "stamp is early by up to 0.1 ms a malloc since the last read): %r"
          % (len(sl), len(off), off[-1] / 1e6 if off else -1, [round(e / 1e3) for e in off][-5:]))
    if depth:
        nostack = sum(1 for typ, _, _, f in recs if typ == ALLOC and 7000 <= f["size"] < 7000 + BURST and not f["stack"])
        check(tag + ".stacks", nostack == 0, "%d burst mallocs without a stack id" % nostack)
    allocs = sum(1 for typ, _, _, f in recs if typ == ALLOC) + sum(1 for typ, _, _, f in recs if typ == REALLOC)
    frees = sum(1 for typ, _, _, f in recs if typ == FREE)
    m = parent.get("malloc") or {}
    calls, nfree = m.get("calls"), m.get("frees")
    check(tag + ".report-agrees", isinstance(calls, int) and nfree == frees and
          allocs - sum(1 for t, _, _, _ in recs if t == REALLOC) <= calls <= allocs,
          "report calls=%r frees=%r, decoded allocs=%d frees=%d" % (m.get("calls"), m.get("frees"), allocs, frees))


PP_ROUNDS, PP_BURST = 3000, 40
NEAR_NS = 1000


def pp_block(f):
    return 8100 <= f.get("size", 0) < 8120 or 520 <= f.get("size", 0) < 540


def run_pingpong(tag, depth, env=None, reuse=True):
    """Two threads at once, on their own blocks, then handing blocks to
    each other (tests/progs/malloc_clock.c): in time order no block is
    malloc'd while live or freed while not, whichever thread made or
    freed it (records of two threads less than NEAR_NS apart may swap,
    rarely); and with an arena each, both threads reuse stamps (tiny
    records) for most of the first part."""
    r = fsk.run_traced([fsk.prog("malloc_clock"), "pingpong", str(PP_ROUNDS)], timeout=180,
                       cwd=fsk.tmpdir(), env=env, options=["--stack-depth", str(depth), "--scan-ms", "0"])
    pp = fsk.at_dicts(r.out, "pingpong") if r.rc == 0 else []
    if not check(tag + ".ran", len(pp) == 1, r.describe()):
        return
    streams = glob.glob(os.path.join(r.trace, "*.fst"))
    recs = []
    for path in streams:
        try:
            rs = decode(path)
        except (ValueError, KeyError, struct.error) as e:
            check(tag + ".decode", False, "%s: %s" % (os.path.basename(path), e))
            return
        if any(t == ALLOC and pp_block(f) for t, _, _, f in rs):
            recs = rs
    tiny = collections.Counter(tid for _, tid, _, f in recs if f.get("tiny"))
    if not check(tag + ".decode", bool(recs), "no stream with the program's blocks among %d" % len(streams)):
        return
    workers = {tid for t, tid, _, f in recs if t == ALLOC and 8100 <= f["size"] < 8120}
    # per block address, its records in time order (stable) must alternate
    # malloc, free; two records of different threads closer than NEAR_NS
    # may come in either order (trace.h: how far two threads' clocks can
    # disagree), anything else out of order is a failure
    seqs, made = collections.defaultdict(list), 0
    for typ, tid, ts, f in sorted(recs, key=lambda x: x[2]):
        if typ == ALLOC and pp_block(f):
            made += 1
            seqs[f["addr"]].append([ts, 1, tid])
        elif typ == FREE and f["addr"] in seqs:
            seqs[f["addr"]].append([ts, 0, tid])
    bad, near, crossed = [], [], 0
    for addr, q in seqs.items():
        # take the records in time order, each time the next of the type
        # due (malloc, free, malloc, ...): the first pending one, or else
        # one of another thread at most NEAR_NS after it
        i, last_free_tid = 0, None
        while i < len(q):
            due = i % 2 == 0
            if q[i][1] != due:
                j = next((k for k in range(i + 1, len(q)) if q[k][0] - q[i][0] <= NEAR_NS
                          and q[k][1] == due and q[k][2] != q[i][2]), None)
                if j is None:
                    bad.append((hex(addr), i, q[max(0, i - 1):i + 2]))
                    break
                near.append(q[j][0] - q[i][0])
                q.insert(i, q.pop(j))
            ts, is_malloc, tid = q[i]
            if is_malloc and last_free_tid is not None:
                crossed += last_free_tid != tid
            if not is_malloc:
                last_free_tid = tid
            i += 1
        else:
            if len(q) % 2:
                bad.append((hex(addr), "still live", q[-1:]))
    want = 2 * PP_ROUNDS * (2 * PP_BURST + 1)
    check(tag + ".block-order", not bad and made == want and len(near) <= made // 10000,
          "%d blocks of %d made, %d out of order, first %r; %d closer than %d ns in the wrong "
          "order (%r)" % (made, want, len(bad), bad[:2], len(near), NEAR_NS, sorted(near)[-3:]))
    check(tag + ".crossed", len(workers) == 2 and int(pp[0]["crossed"]) > 0 and crossed > 0,
          "%d workers; mallocs that got back a block the other thread freed: program %s, trace %d"
          % (len(workers), pp[0]["crossed"], crossed))
    if reuse:
        got = [tiny.get(t, 0) for t in sorted(workers)]
        # each thread's first part alone is 2 * PP_BURST records a round,
        # 63 in 64 of them reusing a stamp; a scheme where one thread at a
        # time may reuse leaves the other with a few thousand (the clamp
        # after a clock resync also repeats a stamp now and then)
        check(tag + ".both-reuse", len(got) == 2 and min(got) >= PP_BURST // 2 * PP_ROUNDS,
              "tiny records (a reused stamp) of the two threads: %r, want %d each"
              % (got, PP_BURST // 2 * PP_ROUNDS))


def main():
    fsk.require(fsk.prog("malloc_clock"))
    run("events", 0)
    run("stacks", 16)
    run_pingpong("pingpong.events", 0)
    run_pingpong("pingpong.stacks", 16)
    # one arena for both threads: every block is another thread's too, so
    # neither may reuse a stamp, and the order must hold all the same
    run_pingpong("pingpong.one-arena", 0, env={"MALLOC_ARENA_MAX": "1"}, reuse=False)
    fsk.finish()


if __name__ == "__main__":
    main()
