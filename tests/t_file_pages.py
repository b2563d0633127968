#!/usr/bin/env python3
"""Resident pages of private file mappings, checked against the program's
own count (tests/progs/file_pages).

A read-only private file mapping holds the file's pages only, so the
scans count it from PAGEMAP_SCAN's runs of present pages without reading
each page's pagemap entry; a writable one is read page by page. The
program maps a 4 MiB file both ways, reads a quarter of each (and writes
the writable one's first page), forks; the child reads another quarter
of each. Each side prints, right before it ends, the present pages of
each mapping, those not present at the fork and those still shared with
the other side, read from /proc/self/pagemap itself. A read-only shared mapping of the file and
shared anonymous memory are counted by runs too (first touches are not
counted in shared mappings: they have no baseline). A read-only private
/dev/zero mapping it reads holds the zero page only, resident in no count (its smaps Rss,
which the program prints, says 0). So does a small anonymous mapping read
before the fork, which the child then writes: its first touches, not
copy-on-write breaks (pagemap shows the zero page as it shows a page
shared after a fork; PAGEMAP_SCAN tells them apart). And once more without the fork: a
process that never forked has no relative to share a page with, and all
its regions are counted by runs, private anonymous memory too, from one
walk of PAGEMAP_SCAN over the whole address space whose runs span
neighbouring regions (two parts of one written mapping, one made
read-only, must each count their own). And once more with
FORKSCOPE_PMSCAN=0, as on a kernel without that ioctl (before Linux 6.7):
the same counts, except that as nobody nothing tells the zero page from a
shared page (root knows its frame). A kernel that maps no zero page
(a VM booted with pvm_no_zero_page; the program says zero_page=0) gives
each of those reads a page of its own: the program then counts those
mappings from pagemap as the others, and zw's pages, read before the
fork, are the parent's, which the child's writes copy. In the report, each process's region at that
address must have as many resident pages and as many first touched
(against the fork's baseline: the child's fork scan is the prefork scan
of its parent), and as many shared. As root and as nobody."""
import os
import re
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check, num  # noqa: E402


def kernel_has_pmscan():
    """PAGEMAP_SCAN came in Linux 6.7."""
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (6, 7)


def run(tag, wrap, data, nofork=False, pmscan=True):
    r = fsk.run_traced([fsk.prog("file_pages"), data] + (["nofork"] if nofork else []), timeout=120, wrap=wrap,
                       env=None if pmscan else {"FORKSCOPE_PMSCAN": "0"})
    if not check(tag + ".ran", r.rc == 0, r.describe()):
        return
    doc = r.report()
    if not check(tag + ".report", doc is not None, r.report_error):
        return
    want = fsk.at_dicts(r.out, "file_pages")
    check(tag + ".printed", len(want) == (9 if nofork else 14) and all(int(kv["resident"]) >= 0 for kv in want), r.out)
    procs = fsk.by_pid(doc)
    for kv in want:
        zero_page = kv.get("zero_page") != "0"
        if zero_page and (not pmscan or not kernel_has_pmscan()) and wrap and kv["map"] in ("zero", "zw", "small"):
            continue  # the zero page: told apart only by PAGEMAP_SCAN or its frame (root)
        pid = int(kv["pid"])
        side = "child" if pid != fsk.roots(doc)[0]["pid"] else "parent" if not nofork else "alone"
        name = "%s.%s.%s" % (tag, side, kv["map"])
        regs = [g for g in (procs.get(pid) or {}).get("regions") or [] if num(g["start"]) == num(kv["start"])]
        if not check(name + ".region", len(regs) == 1, "pid %d has no region at %s" % (pid, kv["start"])):
            continue
        g = regs[0]
        check(name + ".resident", g["resident_pages"] == int(kv["resident"]),
              "report %d, the program %s" % (g["resident_pages"], kv["resident"]))
        # shared mappings have no baseline: what they hold is the object's
        # (file or shared memory), touched by whichever process
        first = 0 if kv["map"].startswith("sh") else int(kv["since_fork"])
        check(name + ".first-touched", g["first_touch_pages"] == first,
              "report %d, expected %d" % (g["first_touch_pages"], first))
        # the zero page, which pagemap shows as a page shared after a fork
        # would be, is in no count (small, zero: smaps's Rss says 0 and
        # the program prints shared=0); the child shares the parent's
        # written pages, anonymous and rw's first
        check(name + ".shared", g["shared_pages"] == int(kv["shared"]),
              "report %d, the program %s" % (g["shared_pages"], kv["shared"]))
        if kv["map"] == "zw" and zero_page:
            # the child's writes to the zero page it shared with its
            # parent: first touches, neither unshared pages nor COW faults
            check(name + ".no-cow", g["unshared_pages"] == 0 and g["cow_faults"] == 0,
                  "unshared %d, cow faults %d" % (g["unshared_pages"], g["cow_faults"]))
        elif kv["map"] == "zw" and side == "child":
            # no zero page: its 32 pages read before the fork were the
            # parent's own, shared at the fork, and the child's writes
            # copied them all
            check(name + ".copied", g["unshared_pages"] == 32,
                  "unshared %d, cow faults %d" % (g["unshared_pages"], g["cow_faults"]))


def raw_fork(tag, wrap, data):
    """A fork our hook does not see (a raw system call): the parent's scans
    while the child lives must still see the pages it shares with it."""
    r = fsk.run_traced([fsk.prog("file_pages"), data, "rawfork"], timeout=120, wrap=wrap)
    if not check(tag + ".ran", r.rc == 0, r.describe()):
        return
    kv = (fsk.at_dicts(r.out, "file_pages") or [{}])[0]
    shared = int(kv.get("shared_with_raw_child", 0))
    if not check(tag + ".program-saw-sharing", shared > 200, r.out):
        return
    path = os.path.join(r.trace, "%s.0.fst" % kv["pid"])
    seen = [reg["shared"] for _, _, _, regs in fsk.stream_scans(path) for reg in regs
            if reg["start"] == num(kv["start"])]
    check(tag + ".scan-saw-sharing", any(n >= shared for n in seen),
          "the anonymous region's shared pages in each scan %r, the program counted %d" % (seen, shared))


def main():
    fsk.require(fsk.prog("file_pages"))
    d = fsk.fresh_dir("file_pages")
    os.mkdir(d)
    os.chmod(d, 0o755)
    data = os.path.join(d, "data")
    with open(data, "wb") as f:
        f.write(os.urandom(4 << 20))
    os.chmod(data, 0o644)
    for tag, wrap in fsk.user_runs():
        run(tag, wrap, data)
        run(tag + ".nofork", wrap, data, nofork=True)
        # as on a kernel without PAGEMAP_SCAN (before Linux 6.7): every
        # page read; root tells the zero page by its frame
        run(tag + ".nopmscan", wrap, data, pmscan=False)
        raw_fork(tag + ".rawfork", wrap, data)
    fsk.finish()


if __name__ == "__main__":
    main()
