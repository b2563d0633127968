"""Stack ids across forks (include/forkscope/trace.h, "Stack ids"):
tests/progs/stack_fork makes a parent, a child, a grandchild and a second
child allocate from stacks a relative had before (the same return
addresses) and from new ones, a thread of each among them, and prints the
bytes each chain allocated per process. `forkscope export --format
collapsed` must give exactly those chains and bytes per process, nothing
else ending in leaf.

The streams themselves (one stack group): every child's header says it
shares its parent's table; no id has a STACK record in two streams; a
stream defines no stack that a relative's stream defined before it
started (no STACK written again: the child's stacks from before its fork,
the second child's pc from its sibling), and a child has no MODULE record
(it loads nothing).
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
NCHAINS = {"parent": 3, "child": 4, "grandchild": 4, "second": 1}  # what step() runs in each
STACK, MODULE = 13, 21


def stream_info(path):
    """{pid, ppid, start, table, stacks: {id: (ips tuple, ts)}, modules:
    count} of a stream, read with the layout of trace.h (version 4 or 5)."""
    b = open(path, "rb").read()
    version, fixed, hdr_size, pid, ppid = struct.unpack_from("<HHIII", b, 8)
    start = struct.unpack_from("<Q", b, 32)[0]
    table = struct.unpack_from("<I", b, 80)[0] if version >= 4 and fixed >= 88 else None
    info = dict(pid=pid, ppid=ppid, start=start, table=table, version=version, stacks={}, modules=0)
    off = hdr_size
    while off + 4 <= len(b):
        typ, size = struct.unpack_from("<HH", b, off)
        if fsk.tiny_len(typ, version):
            off += fsk.tiny_len(typ, version)
            continue
        if size < 16 or off + size > len(b):
            break
        if typ == STACK:
            ts, sid, depth = struct.unpack_from("<QII", b, off + 8)
            info["stacks"][sid] = (struct.unpack_from("<%dQ" % depth, b, off + 24), ts)
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


def check_streams(tag, r, roles, pairs):
    """pairs: (role, relative): relative's stream, started earlier, has
    stacks role's stream must not define again."""
    info = streams(r.trace)
    group = [i for i in info.values() if i["pid"] in roles.values()]
    owners = collections.defaultdict(list)
    for i in group:
        for sid in i["stacks"]:
            owners[sid].append(i["pid"])
    twice = sorted(sid for sid, pids in owners.items() if len(pids) > 1)
    check(tag + ".ids-once", len(group) == len(roles) and not twice,
          "%d streams; ids with a STACK record in two streams: %r" % (len(group), twice[:8]))
    for role, relative in pairs:
        c, p = info.get(roles[role]), info.get(roles[relative])
        if not check("%s.%s.stream" % (tag, role), c and p and c["version"] >= 4 and c["table"] == 1,
                     "streams of pids %r, this one %r" % (sorted(info), c and (c["version"], c["table"]))):
            continue
        before = {ips for ips, ts in p["stacks"].values() if ts < c["start"]}
        again = [sid for sid, (ips, ts) in c["stacks"].items() if ips in before]
        check("%s.%s.no-stack-again" % (tag, role), len(before) > 0 and not again,
              "%d stacks of the %s's stream before it; ids %r define them again" %
              (len(before), relative, again[:8]))
        check("%s.%s.no-module-again" % (tag, role), c["modules"] == 0,
              "%d MODULE records" % c["modules"])


def run(tag, lib=None):
    r = fsk.run_traced([fsk.prog("stack_fork")], cwd=fsk.tmpdir(), timeout=120, lib=lib)
    if not check(tag + ".ran", r.rc == 0 and not r.timed_out, r.describe()):
        return
    roles = {d["role"]: num(d["pid"]) for d in fsk.at_dicts(r.out, "proc")}
    if not check(tag + ".roles", sorted(roles) == ["child", "grandchild", "parent", "second"], repr(roles)):
        return
    check_chains(tag, r, roles)
    check_streams(tag, r, roles, (("child", "parent"), ("grandchild", "child"), ("second", "child")))


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
