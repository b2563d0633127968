#!/usr/bin/env python3
"""The header of a stream goes out with its first records, and an exec'd
image's header names the executable the START scan found in the maps (the
mapping of its program headers) instead of asking /proc/self/exe. Each
image must still name exactly what /proc/self/exe names: a program run
through a symlink (the link's target), the dynamic linker run by hand
(the linker, which /proc/self/exe names, not the program it loads), a
fork child (its parent's executable, with a clean stream of its own);
as root and as nobody."""
import os
import shutil
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check  # noqa: E402


def images(doc):
    return [(p["pid"], i.get("exe")) for p in fsk.processes(doc) for i in p.get("images") or []]


def dynamic_linker():
    """The PT_INTERP of /bin/true, read from its program headers."""
    with open(os.path.realpath(shutil.which("true")), "rb") as f:
        b = f.read(1 << 16)
    import struct
    phoff, = struct.unpack_from("<Q", b, 32)
    phentsize, phnum = struct.unpack_from("<HH", b, 54)
    for i in range(phnum):
        typ, _, off, _, _, filesz = struct.unpack_from("<IIQQQQ", b, phoff + i * phentsize)
        if typ == 3:
            return b[off:off + filesz].rstrip(b"\0").decode()
    return None


def main():
    true = os.path.realpath(shutil.which("true"))
    bash = os.path.realpath(shutil.which("bash"))
    link = os.path.join(fsk.tmpdir(), "true-link")
    os.symlink(true, link)
    ld = dynamic_linker()
    for tag, wrap in fsk.user_runs():
        r = fsk.run_traced([link], wrap=wrap)
        doc = r.report() if r.rc == 0 else None
        if check(tag + ".link.report", doc is not None, r.describe() + " " + str(r.report_error)):
            got = images(doc)
            check(tag + ".link.exe", [e for _, e in got] == [true], "images %r, want %s" % (got, true))
            q = fsk.processes(doc)[0]
            check(tag + ".link.stream", q["stream_state"] == "clean", q["stream_state"])
            check(tag + ".link.regions", any(g.get("path") == true and g["kind"] == "text"
                                             for g in q["regions"]),
                  sorted((g["kind"], g.get("path") or "") for g in q["regions"])[:8])

        if ld and os.path.exists(ld):
            r = fsk.run_traced([ld, true], wrap=wrap)
            doc = r.report() if r.rc == 0 else None
            if check(tag + ".ldso.report", doc is not None, r.describe() + " " + str(r.report_error)):
                got = images(doc)
                want = os.path.realpath(ld)
                check(tag + ".ldso.exe", [e for _, e in got] == [want],
                      "images %r, want %s (what /proc/self/exe names)" % (got, want))
        else:
            fsk.note("no dynamic linker found for /bin/true: the by-hand run was not done")

        # a subshell is a fork child that does not exec; the outer
        # /bin/true an exec'd child of bash
        r = fsk.run_traced([bash, "-c", "( exit 3 ); echo $?; %s" % true], wrap=wrap)
        doc = r.report() if r.rc == 0 else None
        if check(tag + ".fork.report", doc is not None and r.out.strip() == "3",
                 r.describe() + " out=%r " % r.out + str(r.report_error)):
            procs = fsk.processes(doc)
            sub = [p for p in procs if (p.get("exit") or {}).get("code") == 3]
            check(tag + ".fork.child", len(sub) == 1 and [i.get("exe") for i in sub[0]["images"]] == [bash],
                  [(p["pid"], p.get("exit"), [i.get("exe") for i in p.get("images") or []]) for p in procs])
            check(tag + ".fork.streams", all(p["stream_state"] == "clean" for p in procs),
                  [(p["pid"], p["stream_state"]) for p in procs])
            exes = sorted(e for _, e in images(doc))
            check(tag + ".fork.exes", exes == sorted([bash, bash, bash, true]) or
                  exes == sorted([bash, bash, true]), exes)
    fsk.finish()


if __name__ == "__main__":
    main()
