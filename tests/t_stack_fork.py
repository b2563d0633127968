"""Stack ids across forks (include/forkscope/trace.h, "Stack ids"):
tests/progs/stack_fork makes a parent, a child and a grandchild allocate
from stacks their parent had before the fork (the same return addresses)
and from new ones, a thread of each among them, and prints the bytes each
chain allocated per process. `forkscope export --format collapsed` must
give exactly those chains and bytes per process, nothing else ending in
leaf.

The streams themselves: a fork child's stream defines no stack its
parent's stream defined below the child's stack_base (no STACK written
again) and has no MODULE record (the child loads nothing), its own ids
start at stack_base, and the parent and the child both intern ids from
stack_base on after the fork (so equal ids of the two sides really meet).
tests/progs/stack_many then has 4 threads intern the same 4096 new stacks
at once (the intern table grows by tables as it fills), a fork child use
them and intern 4096 stacks of its own while its parent does: every chain
and its bytes must be exact in both processes.
Run with the normal and the strict library."""
import collections
import os
import struct
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check, num  # noqa: E402

PROG_FUNCS = {"main", "step", "pa", "pp", "pc", "pd", "pg", "thread_main", "tl", "leaf"}
NCHAINS = {"parent": 3, "child": 4, "grandchild": 4}  # what step() runs in each
STACK, MODULE, TINY = 13, 21, 0x8000


def stream_info(path):
    """{pid, ppid, base, stacks: {id: ips tuple}, modules: count} of a
    stream, read with the layout of trace.h (version 4)."""
    b = open(path, "rb").read()
    version, fixed, hdr_size, pid, ppid = struct.unpack_from("<HHIII", b, 8)
    base = struct.unpack_from("<I", b, 80)[0] if version >= 4 and fixed >= 88 else 0
    info = dict(pid=pid, ppid=ppid, base=base, version=version, stacks={}, modules=0)
    off = hdr_size
    while off + 8 <= len(b):
        typ, size = struct.unpack_from("<HH", b, off)
        if typ & TINY:
            off += 8
            continue
        if size < 16 or off + size > len(b):
            break
        if typ == STACK:
            sid, depth = struct.unpack_from("<II", b, off + 16)
            info["stacks"][sid] = struct.unpack_from("<%dQ" % depth, b, off + 24)
        elif typ == MODULE:
            info["modules"] += 1
        off += size
    return info


def program_chain(frames):
    first = [i for i, f in enumerate(frames) if f in PROG_FUNCS]
    if not first or any(f not in PROG_FUNCS for f in frames[first[0]:]):
        return None
    return ";".join(frames[first[0]:])


def check_chains(tag, r, roles):
    got = fsk.collapsed(r.trace)
    if not check(tag + ".export", got is not None, "export failed"):
        return
    want = fsk.expected_chains(r.out)
    for role, pid in sorted(roles.items()):
        check("%s.%s.chains" % (tag, role), len(want[pid]) == NCHAINS[role],
              "the program said %r" % want[pid])
        fsk.check_chains("%s.%s" % (tag, role), want[pid], got.get(pid, {}), "leaf".__eq__, program_chain)


def streams(trace):
    """{pid: stream_info} of a trace whose processes run one image each."""
    info = {}
    for name in os.listdir(trace):
        if name.endswith(".fst"):
            i = stream_info(os.path.join(trace, name))
            info[i["pid"]] = i
    return info


def check_streams(tag, r, roles, pairs=(("child", "parent"), ("grandchild", "child"))):
    info = streams(r.trace)
    for role, parent_role in pairs:
        c, p = info.get(roles[role]), info.get(roles[parent_role])
        if not check("%s.%s.stream" % (tag, role), c and p and c["version"] == 4,
                     "streams of pids %r" % sorted(info)):
            continue
        base = c["base"]
        inherited = {ips for sid, ips in p["stacks"].items() if sid < base}
        check("%s.%s.base" % (tag, role), base > 1 and len(inherited) > 0,
              "stack_base %d, %d stacks below it in the parent's stream" % (base, len(inherited)))
        again = [sid for sid, ips in c["stacks"].items() if ips in inherited]
        check("%s.%s.no-stack-again" % (tag, role), not again,
              "ids %r define stacks the parent's stream had" % again[:8])
        check("%s.%s.own-ids" % (tag, role), c["stacks"] and min(c["stacks"]) >= base,
              "ids %r, stack_base %d" % (sorted(c["stacks"])[:8], base))
        check("%s.%s.no-module-again" % (tag, role), c["modules"] == 0,
              "%d MODULE records" % c["modules"])
        both = {sid for sid in p["stacks"] if sid >= base} & set(c["stacks"])
        check("%s.%s.ids-meet" % (tag, role), len(both) > 0,
              "no id interned after the fork on both sides: parent %r, child %r" %
              (sorted(s for s in p["stacks"] if s >= base)[:8], sorted(c["stacks"])[:8]))


def run(tag, lib=None):
    r = fsk.run_traced([fsk.prog("stack_fork")], cwd=fsk.tmpdir(), timeout=120, lib=lib)
    if not check(tag + ".ran", r.rc == 0 and not r.timed_out, r.describe()):
        return
    roles = {d["role"]: num(d["pid"]) for d in fsk.at_dicts(r.out, "proc")}
    if not check(tag + ".roles", sorted(roles) == ["child", "grandchild", "parent"], repr(roles)):
        return
    check_chains(tag, r, roles)
    check_streams(tag, r, roles)


def many_chains(kv):
    """{chain: bytes} that stack_many says one process allocated."""
    bits, threads = num(kv["bits"]), num(kv["threads"])
    want = {}
    for code in range(1 << bits):
        path = ";".join("b" if code >> i & 1 else "a" for i in range(bits))
        size = 16 + code % 61 * 8
        want["thread_main;walk;%s;leaf" % path] = threads * size
        want["main;%s;walk;%s;leaf" % (kv["roots"], path)] = size
    return want


def run_many(tag, lib=None):
    """Thousands of stacks: the intern table grows past its first tables
    while 4 threads intern the same new stacks at once, and a fork child
    uses them and interns as many of its own."""
    r = fsk.run_traced([fsk.prog("stack_many")], cwd=fsk.tmpdir(), timeout=300, lib=lib)
    if not check(tag + ".ran", r.rc == 0 and not r.timed_out, r.describe()):
        return
    said = {num(kv["pid"]): kv for kv in fsk.at_dicts(r.out, "many")}
    roles = {("parent" if kv["roots"] == "p_root" else "child"): pid for pid, kv in said.items()}
    if not check(tag + ".roles", sorted(roles) == ["child", "parent"], repr(said)):
        return
    got = fsk.collapsed(r.trace)
    if not check(tag + ".export", got is not None, "export failed"):
        return
    funcs = {"main", "thread_main", "p_root", "c_root", "walk", "a", "b", "leaf"}
    for role, pid in sorted(roles.items()):
        want = many_chains(said[pid])
        have = collections.Counter()
        for frames, n in got.get(pid, {}).items():
            if frames[-1] == "leaf":
                first = min(i for i, f in enumerate(frames) if f in funcs)
                have[";".join(frames[first:])] += n
        wrong = sorted(c for c in set(want) | set(have) if want.get(c) != have.get(c))
        check("%s.%s.chains" % (tag, role), len(want) == 2 << 12 and not wrong,
              "%d of %d chains differ, e.g. %r" %
              (len(wrong), len(want), [(c, want.get(c), have.get(c)) for c in wrong[:2]]))
    info = streams(r.trace)
    p = info.get(roles["parent"], {"stacks": {}})
    check(tag + ".parent.stacks", len(p["stacks"]) >= 2 << 12,
          "%d STACK records in the parent's stream" % len(p["stacks"]))
    check_streams(tag, r, roles, (("child", "parent"),))


def main():
    fsk.require(fsk.prog("stack_fork"), fsk.prog("stack_many"))
    run("fork")
    run("strict", fsk.env("FSK_STRICT_LIB"))
    run_many("many")
    run_many("many-strict", fsk.env("FSK_STRICT_LIB"))
    fsk.finish()


main()
