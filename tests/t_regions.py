"""Region change events and ELF sections.

Region change events: samples/regions makes the heap appear with its first
malloc (cause malloc, not unknown: the break at trace start is known), mmaps, mremaps (grown in place,
moved), mprotects, munmaps (a tail, a whole region), moves the break with
malloc, sbrk and brk, mallocs and frees a block big enough for a mapping
of its own, recurses until the stack grows and starts a thread, with a
fork and a wait (after which forkscope scans) between two changes. Each
"@ change" line it prints must appear in `forkscope report --json` as one
of the main process's region_events with the same what, kind and cause
and the exact addresses; the text report lists them too. Runs as root
and, via setpriv, as nobody.

ELF sections: the report's regions of the sample executable hold .text,
.rodata, .data and .bss at exactly the addresses readelf gives plus the
load bias; libc's text mapping is "lib text" and the anonymous tail after
its data is "lib bss" holding .bss up to its exact end. A copy of the
sample that is overwritten (another build-id) or replaced (another inode)
after the run names no sections and says why."""
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check, note, num  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def page_up(v):
    return (v + PAGE - 1) & ~(PAGE - 1)


def matches(kv, e):
    """Whether region event e is the change the sample described in kv."""
    if e.get("what") != kv["what"] or e.get("kind") != kv["kind"]:
        return False
    if e.get("cause") != kv["cause"].replace("_", " "):
        return False
    addr = {k: num(e[k]) for k in ("start", "end", "old_start", "old_end") if e.get(k)}
    for k in ("start", "end", "old_start", "old_end"):
        if k in kv and addr.get(k) != num(kv[k]):
            return False
    for k in ("perms", "old_perms"):
        if k in kv and e.get(k) != kv[k]:
            return False
    if "block" in kv:  # glibc's chunk header sits 16 bytes below the block
        block, size = num(kv["block"]), num(kv["size"])
        if addr["start"] != (block - 16) & ~(PAGE - 1) or addr["end"] != page_up(block + size):
            return False
    if "lowest" in kv:  # the deepest frame is inside the grown part
        low = num(kv["lowest"])
        if not (addr["start"] <= low < addr.get("old_start", 0) and addr["end"] == addr.get("old_end")):
            return False
    if "inside" in kv:
        sp = num(kv["inside"])
        if not (addr["start"] <= sp < addr["end"] and addr["end"] - addr["start"] >= 1 << 20):
            return False
    return True


def elf_sections(path):
    """{name: (addr, size)} of the allocated sections, from readelf."""
    out = subprocess.run(["readelf", "-SW", path], stdout=subprocess.PIPE, check=True).stdout.decode()
    secs = {}
    for line in out.splitlines():
        f = line.replace("[ ", "[").split()
        if len(f) >= 7 and f[0].startswith("[") and f[1].startswith("."):
            secs[f[1]] = (int(f[3], 16), int(f[5], 16))
    return secs


def first_load_vaddr(path):
    out = subprocess.run(["readelf", "-lW", path], stdout=subprocess.PIPE, check=True).stdout.decode()
    return min(int(ln.split()[2], 16) for ln in out.splitlines() if ln.strip().startswith("LOAD"))


def extent(regions, name):
    """(lo, hi) of section name over regions, or None."""
    hits = [(num(x["start"]), num(x["end"])) for r in regions for x in r.get("sections") or []
            if x["name"] == name]
    return (min(h[0] for h in hits), max(h[1] for h in hits)) if hits else None


def check_sections(tag, p, exe, text):
    regs = p.get("regions") or []
    mine = [r for r in regs if r.get("path") == exe]
    base = [r for r in mine if r.get("offset") == 0]
    if not check(tag + ".exe-regions", base, "no offset-0 mapping of %s" % exe):
        return
    bias = num(base[0]["start"]) - first_load_vaddr(exe)
    secs = elf_sections(exe)
    for name in (".text", ".rodata", ".data", ".bss"):
        a, n = secs[name]
        got = extent(mine, name)
        check("%s.exe%s" % (tag, name), got == (bias + a, bias + a + n),
              "report %r, readelf %#x+%#x bias %#x" % (got, a, n, bias))
    sub = {x["name"]: r.get("subkind") for r in mine for x in r.get("sections") or []}
    check(tag + ".exe-subkinds", sub.get(".text") == "text" and sub.get(".data") == "data",
          "subkinds %r" % sub)
    libc = [r for r in regs if (r.get("path") or "").endswith("/libc.so.6")]
    if not check(tag + ".libc-regions", libc, "no libc mapping"):
        return
    lpath = libc[0]["path"]
    lbias = num([r for r in libc if r["offset"] == 0][0]["start"]) - first_load_vaddr(lpath)
    ls = elf_sections(lpath)
    lt = [r for r in libc if r.get("subkind") == "text"]
    check(tag + ".libc-text", lt and lt[0]["kind"] == "lib" and
          extent(lt, ".text") == (lbias + ls[".text"][0], lbias + sum(ls[".text"])),
          "libc text regions %r" % [(r["start"], r.get("subkind")) for r in lt])
    last = max(num(r["end"]) for r in libc)
    tail = [r for r in regs if num(r["start"]) == last and not r.get("path")]
    bss_end = lbias + sum(ls[".bss"])
    check(tag + ".libc-bss-tail", tail and tail[0]["kind"] == "lib" and tail[0].get("subkind") == "bss"
          and [x["name"] for x in tail[0]["sections"]] == [".bss"]
          and num(tail[0]["sections"][0]["end"]) == bss_end,
          "tail after libc %r, .bss ends at %#x" % (tail[:1], bss_end))
    check(tag + ".text-layout", "lib text" in text and "lib bss" in text and " .text " in text,
          "layout lines missing in the text report")


def changed_on_disk(tag):
    """The sample copied, traced, then overwritten and then replaced."""
    d = fsk.fresh_dir(tag)
    os.mkdir(d)
    exe = os.path.join(d, "regions")
    shutil.copy(fsk.sample("regions"), exe)
    r = fsk.run_traced([exe], timeout=120, cwd=d, trace=os.path.join(d, "trace"))
    if not check(tag + ".ran", r.rc == 0, r.describe()):
        return
    with open(fsk.sample("fork_twice"), "rb") as src, open(exe, "wb") as dst:
        dst.write(src.read())  # same inode, another build-id
    for what, why in (("overwritten", "build-id differs"), ("replaced", "another inode")):
        if what == "replaced":
            shutil.copy(fsk.sample("regions"), exe + ".new")
            os.rename(exe + ".new", exe)
        doc, err = fsk.load_report(r.trace)
        if not check("%s.%s.report" % (tag, what), doc, err):
            continue
        main = num(fsk.at_dicts(r.out, "proc")[0]["pid"])
        mine = [x for x in fsk.by_pid(doc)[main]["regions"] if x.get("path") == exe]
        check("%s.%s" % (tag, what), mine and all(not x["sections"] and why in x.get("sections_unknown", "")
                                                  for x in mine),
              [(x["start"], x.get("sections_unknown"), len(x["sections"])) for x in mine])


def run(tag, wrap):
    d = fsk.fresh_dir(tag)
    os.mkdir(d)
    os.chmod(d, 0o777)
    r = fsk.run_traced([fsk.sample("regions")], timeout=120, cwd=d, wrap=wrap,
                       trace=os.path.join(d, "trace"))
    if not check(tag + ".ran", r.rc == 0, r.describe()):
        return
    plain = fsk.run_plain([fsk.sample("regions")], timeout=120, cwd=d, wrap=wrap)
    check(tag + ".stdout-same-as-untraced", plain.rc == 0 and fsk.normalize(plain.out) == fsk.normalize(r.out),
          "untraced rc=%s, outputs differ: %r" % (plain.rc, [(a, b) for a, b in zip(
              fsk.normalize(plain.out).splitlines(), fsk.normalize(r.out).splitlines()) if a != b][:2]))
    doc = r.report()
    if not check(tag + ".report", doc is not None, r.report_error):
        return
    main = num(fsk.at_dicts(r.out, "proc")[0]["pid"])
    p = fsk.by_pid(doc).get(main)
    evs = (p or {}).get("region_events") or []
    if not check(tag + ".events", evs, "process %d has no region_events" % main):
        return
    want = fsk.at_dicts(r.out, "change")
    check(tag + ".changes-printed", len(want) == 14, "the sample printed %d changes" % len(want))
    for i, kv in enumerate(want):
        name = "%s.%02d-%s-%s-%s" % (tag, i, kv["what"], kv["kind"], kv["cause"])
        hit = [e for e in evs if matches(kv, e)]
        near = [e for e in evs if e.get("what") == kv["what"] and e.get("kind") == kv["kind"]]
        check(name, len(hit) == 1, "want %r; %d matches; same what+kind: %r" % (kv, len(hit), near))
    # Every change happened after the process started and was seen by a scan.
    check(tag + ".event-times", all(p["start_ns"] <= e["t_ns"] and p["start_ns"] <= e["scan_ns"]
                                    for e in evs), [e for e in evs if e["t_ns"] < p["start_ns"]][:2])
    # The text report shows the same changes.
    t = subprocess.run([fsk.fsk(), "report", r.trace], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    text = t.stdout.decode("utf-8", "replace")
    mv = [kv for kv in want if kv["what"] == "moved"][0]
    line = [ln for ln in text.splitlines() if " moved " in ln and ("0x%x" % num(mv["start"])) in ln]
    check(tag + ".text-moved", line and "mremap" in line[0] and ("0x%x" % num(mv["old_start"])) in line[0],
          "no text line for the move: %r" % [ln for ln in text.splitlines() if "moved" in ln])
    check_sections(tag, p, os.path.realpath(fsk.sample("regions")), text)


def main():
    fsk.require(fsk.sample("regions"), fsk.sample("fork_twice"))
    if not fsk.tool("readelf"):
        fsk.skip("readelf (binutils) is needed for the ELF section checks")
    for tag, wrap in fsk.user_runs():
        run(tag, wrap)
    changed_on_disk("ondisk")
    fsk.finish()


if __name__ == "__main__":
    main()
