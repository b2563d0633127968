"""C++ names: tests/progs/cxx_alloc leaks from a namespaced method, a
template function, through operator new and from a method inlined into
another, and prints each site's bytes and blocks as "@ site" lines. The
report, JSON and text, and the collapsed and massif exports must name those
functions exactly as c++filt (binutils, the oracle) prints the program's own
symbols and DWARF linkage names, with the leaked bytes exact. Operator new
calls malloc, so a leak through it starts in libstdc++'s operator new and
its first frame in the program is the caller of new."""
import collections
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check, num  # noqa: E402

GROW = "ns::Widget::grow(unsigned long)"
FILL = "void fill<int>(std::vector<int, std::allocator<int> >&, int)"
NODES = "ns::make_nodes(int)"
STASH = "ns::Widget::stash(unsigned long)"
STASH_ALL = "ns::Widget::stash_all(int)"
NEW = "operator new(unsigned long)"


def oracle(exe):
    """Every symbol and DWARF linkage name of exe, and operator new's,
    as c++filt demangles them."""
    names = set(["_Znwm"])
    nm = subprocess.run(["nm", exe], stdout=subprocess.PIPE, check=True).stdout.decode()
    for ln in nm.splitlines():
        names.add(ln.split()[-1])
    wi = subprocess.run(["readelf", "--debug-dump=info", exe], stdout=subprocess.PIPE,
                        check=True).stdout.decode("utf-8", "replace")
    names.update(re.findall(r"DW_AT_linkage_name\s*:.*?:\s*(_Z\S+)", wi))
    mangled = sorted(n for n in names if n.startswith("_Z"))
    out = subprocess.run(["c++filt"], input="\n".join(mangled).encode(), stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    return set(out.splitlines())


def groups_at(leaks, first):
    """The leak groups whose innermost frame names first."""
    return [g for g in leaks if g["frames"] and g["frames"][0]["function"] == first]


def main():
    exe = fsk.prog("cxx_alloc")
    if not fsk.tool("g++"):
        fsk.skip("g++ is not installed: no C++ test program to trace")
    for t in ("c++filt", "nm", "readelf"):
        if not fsk.tool(t):
            fsk.skip("%s (binutils) is not installed: no oracle for C++ names" % t)
    fsk.require(exe)
    known = oracle(exe)
    for name in (GROW, FILL, NODES, STASH, STASH_ALL, NEW):
        check("cxx.oracle." + name.split("(")[0].split()[-1], name in known,
              "c++filt does not print %r for any symbol of the program" % name)

    r = fsk.run_traced([exe], cwd=fsk.tmpdir(), options=["--stack-depth", "32"])
    if not check("cxx.ran", r.rc == 0 and not r.timed_out, r.describe()):
        fsk.finish()
    doc = r.report()
    if not check("cxx.report", doc is not None, r.report_error):
        fsk.finish()
    sites = {s["name"]: (num(s["bytes"]), num(s["blocks"])) for s in fsk.at_dicts(r.out, "site")}
    check("cxx.sites", sorted(sites) == ["fill", "grow", "make_nodes", "stash"], sites)
    proc = fsk.processes(doc)[0]
    leaks = proc["leaks"]

    def total(gs):
        return sum(g["bytes"] for g in gs), sum(g["blocks"] for g in gs)

    def show(gs):
        return [(g["bytes"], [f["function"] for f in g["frames"][:3]]) for g in gs][:8]

    for key, name in (("grow", GROW), ("fill", FILL)):
        gs = groups_at(leaks, name)
        check("cxx.leak." + key, gs and total(gs) == sites.get(key),
              "want %r at %s, got %r" % (sites.get(key), name, show(leaks)))
    gs = [g for g in groups_at(leaks, STASH) if len(g["frames"]) > 1 and g["frames"][1]["function"] == STASH_ALL]
    check("cxx.leak.inlined", gs and total(gs) == sites.get("stash"),
          "want %r at %s inlined into %s, got %r" % (sites.get("stash"), STASH, STASH_ALL, show(leaks)))

    # operator new: frames in libstdc++ (operator new itself) up to the
    # first frame of the program, which is the caller of new
    def first_in_program(g):
        for i, f in enumerate(g["frames"]):
            if f["module"] == os.path.realpath(exe) or f["module"].endswith("/cxx_alloc"):
                return i, f
        return None, None

    news = [g for g in leaks if first_in_program(g)[1] and first_in_program(g)[1]["function"] == NODES]
    check("cxx.leak.new", news and total(news) == sites.get("make_nodes"),
          "want %r under %s, got %r" % (sites.get("make_nodes"), NODES, show(leaks)))
    lib = [f for g in news for f in g["frames"][:first_in_program(g)[0]]]
    check("cxx.leak.new-frames", lib and lib[0]["function"] == NEW and all(
        os.path.basename(f["module"]).startswith("libstdc++") and f["function"].startswith("operator new")
        for f in lib), "frames before %s: %r" % (NODES, [(f["function"], f["module"]) for f in lib]))

    raw = sorted(set(f["function"] for g in leaks + proc["sites"]["alloc"] for f in g["frames"]
                     if (f["function"] or "").startswith("_Z")))
    check("cxx.no-mangled", not raw, "mangled names left: %r" % raw[:5])

    text = subprocess.run([fsk.fsk(), "report", r.trace], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = text.stdout.decode("utf-8", "replace")
    want = ["%s (cxx_alloc.cpp:" % n for n in (GROW, FILL, STASH)] + ["%s (libstdc++" % NEW]
    check("cxx.text", text.returncode == 0 and all(w in out for w in want),
          "missing %r" % [w for w in want if w not in out])

    p = subprocess.run([fsk.fsk(), "export", r.trace, "--format", "collapsed", "--what", "alloc"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    per = collections.defaultdict(int)
    for ln in p.stdout.decode("utf-8", "replace").splitlines():
        stack, _, n = ln.rpartition(" ")
        per[tuple(stack.split(";")[-2:])] += int(n)
    got = {k: per[k] for k in ((NODES, NEW), (STASH_ALL, STASH))}
    check("cxx.collapsed", p.returncode == 0 and got == {(NODES, NEW): sites.get("make_nodes")[0],
                                                         (STASH_ALL, STASH): sites.get("stash")[0]},
          "%r %s" % (got, p.stderr.decode()[-200:]))

    p = subprocess.run([fsk.fsk(), "export", r.trace, "--format", "massif"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.decode("utf-8", "replace")
    check("cxx.massif", p.returncode == 0 and all(": %s (cxx_alloc.cpp:" % n in out for n in (GROW, FILL, STASH)),
          "massif output without the demangled names: %r" % out[-300:])
    fsk.finish()


main()
