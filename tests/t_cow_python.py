#!/usr/bin/env python3
"""COW in a real program: Python multiprocessing with fork
(tests/data/cow_mp.py). Each worker writes one byte in every 4th page of a
32 MiB bytearray the parent filled, and reads 100,000 objects (their
reference counts break COW across the object heap). The report must name
what broke COW: for each worker, the region holding the buffer with at
least that many unshared pages, a COW fault site of exactly that many pages
in python's executable, COW breaks in the object heap beyond the buffer, and
the parent's sum over its workers. Run as root and as nobody."""
import os
import shutil
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check, note, num  # noqa: E402

PY = fsk.system_python()
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "cow_mp.py")


def one(tag, wrap=()):
    d = fsk.fresh_dir(tag)
    os.mkdir(d)
    os.chmod(d, 0o777)
    script = os.path.join(d, "cow_mp.py")
    shutil.copy(SCRIPT, script)
    os.chmod(script, 0o644)
    r = fsk.run_traced([PY, script], timeout=120, cwd=d, wrap=wrap, trace=os.path.join(d, "trace"))
    if not check(tag + ".ran", r.rc == 0, r.describe()):
        return
    workers = fsk.at_dicts(r.out, "worker")
    parent = fsk.at_dicts(r.out, "parent")
    if not check(tag + ".output", len(workers) == 2 and parent and parent[0]["codes"] == "0,0", r.out):
        return
    doc = r.report()
    if not check(tag + ".report", doc is not None, r.report_error):
        return
    procs = fsk.by_pid(doc)
    sampled = fsk.perf_expected()
    for i, w in enumerate(workers):
        t = "%s.worker%d" % (tag, i)
        p = procs.get(num(w["pid"]))
        if not check(t + ".in-report", p is not None, "pid %s not in %r" % (w["pid"], sorted(procs))):
            continue
        buf, written = num(w["buf"]), num(w["written"])
        reg = fsk.region_of(p, buf)
        check(t + ".buffer-region", reg is not None and reg.get("kind") == "anon"
              and reg.get("unshared_pages", 0) >= written,
              "region holding the buffer %#x: %r (wrote %d pages)" % (buf, reg, written))
        unshared = {}
        for rg in p.get("regions") or []:
            unshared[rg["kind"]] = unshared.get(rg["kind"], 0) + rg.get("unshared_pages", 0)
        check(t + ".object-heap-breaks", unshared.get("anon", 0) + unshared.get("heap", 0) > written,
              "refcount writes should break COW beyond the buffer: unshared by kind %r" % unshared)
        if not sampled:
            note("%s: perf page-fault sampling not expected here: COW sites not checked" % t)
            continue
        sites = (p.get("sites") or {}).get("cow") or []
        exact = [s for s in sites if s.get("pages") == written and s.get("kind") == "anon"]
        check(t + ".buffer-site", len(exact) == 1,
              "want one anon COW site of exactly %d pages (the buffer write): %r"
              % (written, [(s.get("pages"), s.get("kind")) for s in sites[:6]]))
        if exact:
            f = (exact[0].get("frames") or [{}])[0]
            mod = os.path.basename(f.get("module") or "")
            check(t + ".site-in-python", mod.startswith("python3") and f.get("offset"),
                  "top frame of the buffer site: %r" % f)
        check(t + ".sites-sum", sum(s.get("pages", 0) for s in sites) >= written + 1,
              "COW sites %r" % [(s.get("pages"), s.get("kind")) for s in sites[:6]])
    pp = procs.get(num(parent[0]["pid"]))
    if sampled and check(tag + ".parent-in-report", pp is not None, parent):
        cc = (pp.get("sites") or {}).get("cow_children") or {}
        want = sum(num(w["written"]) for w in workers)
        pages = [s.get("pages") for s in cc.get("sites") or [] if s.get("kind") == "anon"]
        check(tag + ".children-sum", cc.get("children") == 2 and want in pages,
              "cow_children: %d children, anon site pages %r, want a site of %d" % (
                  cc.get("children", 0), pages[:6], want))


def main():
    fsk.require(PY, SCRIPT)
    for tag, wrap in fsk.user_runs():
        one(tag, wrap)
    fsk.finish()


if __name__ == "__main__":
    main()
