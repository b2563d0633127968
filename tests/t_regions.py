"""Region change events: samples/regions mmaps, mremaps (grown in place,
moved), mprotects, munmaps (a tail, a whole region), moves the break with
malloc, sbrk and brk, mallocs and frees a block big enough for a mapping
of its own, recurses until the stack grows and starts a thread, with a
fork and a wait (after which forkscope scans) between two changes. Each
"@ change" line it prints must appear in `forkscope report --json` as one
of the main process's region_events with the same what, kind and cause
and the exact addresses; the text report lists them too. Runs as root
and, via setpriv, as nobody."""
import os
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


def run(tag, wrap):
    d = fsk.fresh_dir(tag)
    os.mkdir(d)
    os.chmod(d, 0o777)
    r = fsk.run_traced([fsk.sample("regions")], timeout=120, cwd=d, wrap=wrap,
                       trace=os.path.join(d, "trace"))
    if not check(tag + ".ran", r.rc == 0, r.describe()):
        return
    doc = r.report()
    if not check(tag + ".report", doc is not None, r.report_error):
        return
    main = num(fsk.at_dicts(r.out, "proc")[0]["pid"])
    p = fsk.by_pid(doc).get(main)
    evs = (p or {}).get("region_events") or []
    if not check(tag + ".events", evs, "process %d has no region_events" % main):
        return
    want = fsk.at_dicts(r.out, "change")
    check(tag + ".changes-printed", len(want) == 13, "the sample printed %d changes" % len(want))
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


def main():
    fsk.require(fsk.sample("regions"))
    runs = [("root", ())]
    if os.geteuid() == 0 and fsk.tool("setpriv"):
        runs.append(("nobody", ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")))
    else:
        note("not root or no setpriv: the unprivileged run was not done")
    for tag, wrap in runs:
        run(tag, wrap)
    fsk.finish()


if __name__ == "__main__":
    main()
