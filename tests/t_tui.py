"""The viewer in a terminal: `forkscope view` and `forkscope live` driven in
tmux (send-keys, capture-pane) on traces of the samples. Checks what a user
sees: the pids the samples print, their states and exit statuses, the
address space in address order with the child's COW-broken pages, the
state before a fork after seeking back, a readable screen at 80x24 and
200x50 in every pane, the help scrolling at 80x24, jumps to COW bursts on a
generated trace whose ground truth is known (tests/progs/gen_trace), the
region details, bands that flash when the cursor changes them, and a
terminal given back on q and on SIGTERM."""
import os
import re
import shlex
import subprocess
import time

import fsk

TMUX = fsk.tool("tmux")
if not TMUX:
    fsk.skip("tmux is not installed")
fsk.require(*(fsk.sample(s) for s in ("fork_twice", "exit_codes", "zombie", "prefork", "cow_variable")),
            fsk.prog("gen_trace"))

SOCK = "fsk-tui-%d" % os.getpid()


def tmux(*args, check=False):
    p = subprocess.run([TMUX, "-L", SOCK] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    return p.stdout.decode("utf-8", "replace")


def kill_server():
    subprocess.run([TMUX, "-L", SOCK, "kill-server"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


class Screen:
    """One viewer in a tmux session of its own; its stderr goes to a file
    (ASan reports), its exit status is printed when it ends."""

    n = 0

    def __init__(self, argv, w=120, h=40, env=None):
        Screen.n += 1
        self.name = "v%d" % Screen.n
        self.err = fsk.fresh_dir("stderr") + ".txt"
        envs = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in (env or {}).items())
        cmd = "env LANG=C.UTF-8 %s %s 2>%s; echo FSK-EXIT=$?; sleep 60" % (
            envs, " ".join(shlex.quote(a) for a in argv), shlex.quote(self.err))
        tmux("new-session", "-d", "-x", str(w), "-y", str(h), "-s", self.name, cmd)

    def text(self):
        return tmux("capture-pane", "-p", "-t", self.name)

    def wait(self, pred, timeout=20):
        end = time.time() + timeout
        t = ""
        while time.time() < end:
            t = self.text()
            if pred(t):
                return t
            time.sleep(0.15)
        return None

    def keys(self, *keys):
        for k in keys:
            tmux("send-keys", "-t", self.name, k)
            time.sleep(0.12)
        time.sleep(0.3)
        return self.text()

    def resize(self, w, h):
        tmux("resize-window", "-t", self.name, "-x", str(w), "-y", str(h))
        time.sleep(0.6)
        return self.text()

    def quit(self):
        tmux("send-keys", "-t", self.name, "q")
        return self.wait(lambda t: "FSK-EXIT=" in t, 15)

    def stderr(self):
        try:
            with open(self.err, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        tmux("kill-session", "-t", self.name)


def tree_rows(text):
    """pid -> the rest of its tree row (left pane, before the divider)."""
    rows = {}
    for line in text.splitlines():
        left = line.split("\u2502")[0]
        m = re.match(r"^\s*(\d+) (\w+)\s+(.*)$", left)
        if m:
            rows.setdefault(int(m.group(1)), (m.group(2), m.group(3)))
    return rows


def record(name):
    r = fsk.run_traced([fsk.sample(name)], timeout=120)
    if not fsk.check("%s.record" % name, r.rc == 0, r.describe()):
        return None, None
    return r.trace, r.out


def expected_exit(kv):
    if kv.get("exit") == "exited":
        return "exit %s" % kv["code"]
    sig = {"9": "SIGKILL", "11": "SIGSEGV", "6": "SIGABRT", "15": "SIGTERM"}.get(kv.get("sig"), "SIG")
    return sig + (" core" if kv.get("core") == "1" else "")


def opened(scr, tag):
    t = scr.wait(lambda t: "Processes:" in t and "event" in t)
    fsk.check(tag + ".opens", t is not None, "screen: %r" % scr.text()[-800:])
    return t or ""


def check_quit(scr, tag):
    t = scr.quit()
    fsk.check(tag + ".q-exits", t is not None and "FSK-EXIT=0" in t,
              "after q: %r" % (t or scr.text())[-400:])
    alt = tmux("display-message", "-p", "-t", scr.name, "#{alternate_on}").strip()
    fsk.check(tag + ".terminal-restored", alt == "0" and t is not None and "Processes:" not in t,
              "alternate screen %r, screen %r" % (alt, (t or "")[:300]))
    err = scr.stderr()
    fsk.check(tag + ".no-sanitizer-report", "Sanitizer" not in err and "runtime error" not in err,
              err[-600:])
    scr.close()


def test_fork_twice():
    trace, out = record("fork_twice")
    if not trace:
        return
    procs = {kv["role"]: int(kv["pid"]) for kv in fsk.at_dicts(out, "proc")}
    scr = Screen([fsk.fsk(), "view", trace])
    t = opened(scr, "fork_twice")
    rows = tree_rows(t)
    for role, pid in procs.items():
        fsk.check("fork_twice.tree.%s" % role, pid in rows and rows[pid][0] == "reaped"
                  and rows[pid][1].startswith("exit 0"), "row of %d: %r in %r" % (pid, rows.get(pid), t[:600]))
    # Seeking back: at the start nothing ran. Stepping from fork to fork
    # (the runner's spawn of CMD, the parent's fork), the child appears at
    # one and is absent at the one before: the state before the fork.
    t = scr.keys("Home")
    fsk.check("fork_twice.seek-start", not tree_rows(t) and "no process has started" in t, t[:500])
    before = after = None
    for _ in range(4):
        t = scr.keys("f")
        rows = tree_rows(t)
        if procs["child"] in rows:
            after = rows
            break
        before = rows
    fsk.check("fork_twice.fork.child-appears", after and after[procs["child"]][0] == "running",
              t[:600])
    fsk.check("fork_twice.before-fork", before and procs["parent"] in before
              and before[procs["parent"]][0] == "running", "before %r, screen %s" % (before, t[:600]))
    t = scr.keys("F")
    fsk.check("fork_twice.back-before-fork", procs["child"] not in tree_rows(t), t[:600])
    t = scr.keys("End")
    fsk.check("fork_twice.end-again", procs["child"] in tree_rows(t), t[:600])
    t = scr.keys("?")
    fsk.check("fork_twice.help", "forkscope viewer keys" in t and "quit" in t, t)
    t = scr.keys("x")  # any key closes the help
    fsk.check("fork_twice.help-closes", "forkscope viewer keys" not in t, t[:400])
    check_quit(scr, "fork_twice")


def test_exit_codes():
    trace, out = record("exit_codes")
    if not trace:
        return
    scr = Screen([fsk.fsk(), "view", trace])
    t = opened(scr, "exit_codes")
    rows = tree_rows(t)
    for kv in fsk.at_dicts(out, "expect"):
        pid, want = int(kv["pid"]), expected_exit(kv)
        got = rows.get(pid)
        fsk.check("exit_codes.%s" % kv.get("case"), got and got[0] == "reaped" and got[1].startswith(want),
                  "pid %d: want %r, row %r" % (pid, want, got))
        if got and kv.get("sig") == "9":
            # killed before it could end its stream: its lifetime is only
            # bounded, by its reaping
            life = got[1][12:].split()
            fsk.check("exit_codes.%s.lifetime-bounded" % kv.get("case"),
                      life and re.match(r"^<=\d", life[0]), "row %r" % (got,))
    # 80x24 and back: every pid still on screen, no line past the width.
    small = scr.resize(80, 24)
    lines = small.splitlines()
    fsk.check("exit_codes.80x24.width", all(len(l) <= 80 for l in lines), max(map(len, lines or [""])))
    fsk.check("exit_codes.80x24.readable", "Processes:" in small and "Memory" in small
              and "Events" in small and "event " in small, small)
    seen = tree_rows(small)
    fsk.check("exit_codes.80x24.pids", len(seen) >= 5, small)
    big = scr.resize(120, 40)
    fsk.check("exit_codes.back-to-120x40", set(tree_rows(big)) == set(rows), big[:900])
    check_quit(scr, "exit_codes")


def test_zombie():
    trace, out = record("zombie")
    if not trace:
        return
    child = [int(kv["pid"]) for kv in fsk.at_dicts(out, "proc") if kv["role"] == "child"][0]
    scr = Screen([fsk.fsk(), "view", trace])
    opened(scr, "zombie")
    t = scr.keys("Home", "x")  # the first exit: the child's, long before its reaping
    row = tree_rows(t).get(child)
    fsk.check("zombie.between-exit-and-wait", row and row[0] == "zombie", "child %d row %r: %s" % (child, row, t[:600]))
    t = scr.keys("End")
    row = tree_rows(t).get(child)
    fsk.check("zombie.reaped-at-end", row and row[0] == "reaped", "row %r" % (row,))
    check_quit(scr, "zombie")


def space_rows(text):
    """(address, kind, cow) of the address-space pane's bands (right pane)."""
    out = []
    for line in text.splitlines():
        part = line.split("\u2502")[-1]  # the right pane, or all of it zoomed
        m = re.match(r"^\s*([0-9a-f]{6,})\s+[*!]?(\w+)\s+[\d.]+ \S+\s+\S+\s+(?:\d+\s+\d+\s+)?(\d+)", part)
        if m:
            out.append((int(m.group(1), 16), m.group(2), int(m.group(3))))
    return out


def test_cow_variable():
    trace, out = record("cow_variable")
    if not trace:
        return
    doc = fsk.load_report(trace)[0] or {}
    child = [int(kv["pid"]) for kv in fsk.at_dicts(out, "proc") if kv["role"] == "child"][0]
    scr = Screen([fsk.fsk(), "view", trace])
    opened(scr, "cow_variable")
    t = scr.keys("j")  # select the child
    fsk.check("cow_variable.select-child", "Memory of %d" % child in t, t[:400])
    scanned = any(p.get("regions") for p in fsk.processes(doc))
    if not scanned:
        fsk.check("cow_variable.no-scan-said", "no address-space scan recorded" in t, t[:800])
    else:
        t = scr.keys("Tab", "z")   # the address-space pane, zoomed: all of it on one screen
        bands = space_rows(t)
        addrs = [a for a, _, _ in bands]
        fsk.check("cow_variable.space.address-order", len(bands) >= 5 and addrs == sorted(addrs), bands)
        kinds = [k for _, k, _ in bands]
        fsk.check("cow_variable.space.kinds", {"text", "data", "stack"} <= set(kinds), kinds)
        broken = [b for b in bands if b[1] in ("data", "bss") and b[2] > 0]
        fsk.check("cow_variable.space.child-cow-broken", broken, bands)
        t = scr.keys("Enter")
        fsk.check("cow_variable.space.details", "pages: resident" in t and "COW faults" in t, t[:800])
        # the program's own text band: its ELF sections, .text among them
        t = scr.keys("Enter", "g", *(["j"] * kinds.index("text")), "Enter")
        fsk.check("cow_variable.space.elf-sections", re.search(r"ELF sections \(text\):.* \.text \d", t, re.S)
                  and "cow_variable" in t.splitlines()[1], t[:1200])
        t = scr.keys("Enter", "z", "Home")
        fsk.check("cow_variable.space.before-start", "Memory" in t and "COW-broken" not in t, t[:800])
    check_quit(scr, "cow_variable")


def test_prefork_view_narrow():
    trace, out = record("prefork")
    if not trace:
        return
    workers = [int(kv["pid"]) for kv in fsk.at_dicts(out, "worker")]
    scr = Screen([fsk.fsk(), "view", trace], w=80, h=24, env={"NO_COLOR": "1"})
    t = opened(scr, "prefork.80x24")
    fsk.check("prefork.80x24.workers", set(workers) <= set(tree_rows(t)), t)
    t = scr.keys("Tab", "Tab", "/", "wait", "Enter")
    fsk.check("prefork.search", "search: wait" in t, t)
    check_quit(scr, "prefork.80x24")


def test_live():
    d = fsk.fresh_dir("live")
    scr = Screen([fsk.fsk(), "live", "-o", d, "--", fsk.sample("prefork")])
    t = scr.wait(lambda t: "CMD ended with status 0" in t, 60)
    fsk.check("live.cmd-ends", t is not None, scr.text()[-600:])
    try:
        with open(os.path.join(d, "output.txt")) as f:
            text = f.read()
    except OSError as e:
        text = ""
        fsk.check("live.output-file", False, e)
    workers = [int(kv["pid"]) for kv in fsk.at_dicts(text, "worker")]
    fsk.check("live.output-not-on-screen", "@ worker" not in (t or ""), t)
    rows = tree_rows(t or "")
    fsk.check("live.workers-appear", len(workers) == 4 and set(workers) <= set(rows), "%r %r" % (workers, rows))
    t = scr.keys("o")
    fsk.check("live.output-pane", "@ worker" in t, t[-1200:])
    check_quit(scr, "live")


def dur(ns):
    """report_dur()'s words for a time."""
    if ns < 1000:
        return "%d ns" % ns
    if ns < 1000000:
        return "%.1f us" % (ns / 1e3)
    if ns < 1000000000:
        return "%.1f ms" % (ns / 1e6)
    return "%.2f s" % (ns / 1e9)


GEN_T0 = 1000000000  # gen_trace's first event (the runner's start)


def generate(nprocs, nevents):
    tr = fsk.fresh_dir("gen")
    p = subprocess.run([fsk.prog("gen_trace"), tr, str(nprocs), str(nevents)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    fsk.check("gen.%d" % nprocs, p.returncode == 0, p.stderr.decode(errors="replace"))
    return tr, p.stdout.decode()


def test_generated():
    """Exact checks against gen_trace's ground truth: every pid's state and
    exit status, the COW bursts in time order with their pages, the
    details of the heap band, and its flash."""
    tr, out = generate(15, 1500)
    procs = {int(kv["pid"]): kv for kv in fsk.at_dicts(out, "proc")}
    stops = []
    for kv in fsk.at_dicts(out, "burst"):
        pid, un = int(kv["pid"]), int(kv["unshared"])
        if kv["faults_ts"] != "0":
            stops.append((int(kv["faults_ts"]), pid, un - 8, "faults"))
        stops.append((int(kv["scan_ts"]), pid, un, "scan"))
    stops.sort()
    scr = Screen([fsk.fsk(), "view", tr])
    t = opened(scr, "gen")
    rows = tree_rows(t)
    for pid, kv in sorted(procs.items()):
        want = "SIGKILL" if "sig" in kv else "exit %s" % kv["code"]
        got = rows.get(pid)
        fsk.check("gen.tree.%d" % pid, got and got[0] == "reaped" and got[1].startswith(want),
                  "want %r, row %r" % (want, got))
    t = scr.keys("Home")
    for k, (ts, pid, pages, kind) in enumerate(stops[:5]):
        t = scr.keys("b")
        m = re.search(r"Memory of (\d+): (\d+) pages COW-broken", t)
        at = re.search(r"\|\| \+(\S+ \S+) of", t)
        fsk.check("gen.burst%d.%s" % (k, kind), m and (int(m.group(1)), int(m.group(2))) == (pid, pages)
                  and at and at.group(1) == dur(ts - GEN_T0),
                  "want pid %d, %d pages at +%s; got %r at %r" % (
                      pid, pages, dur(ts - GEN_T0), m and m.groups(), at and at.group(1)))
        if kind == "scan" and k < 3:
            fsk.check("gen.burst%d.heap-flashes" % k, re.search(r"1000000 !heap", t), t[:1500])
    ts, pid, pages, kind = stops[3]
    t = scr.keys("B")
    at = re.search(r"\|\| \+(\S+ \S+) of", t)
    fsk.check("gen.burst-back", at and at.group(1) == dur(stops[3][0] - GEN_T0), "%r" % (at and at.group(1)))
    # the first scan that found broken pages: its heap band in detail
    ts, pid, pages, kind = [s for s in stops if s[3] == "scan"][0]
    t = scr.keys("Home")
    while True:
        t = scr.keys("b")
        at = re.search(r"\|\| \+(\S+ \S+) of", t)
        if not at or at.group(1) == dur(ts - GEN_T0) or "no later COW burst" in t:
            break
    t = scr.keys("Tab", "g", "j", "j", "j", "z", "Enter")
    want = ["pages: resident 32, swapped 0, shared %d, unshared (COW broken) %d" % (32 - pages, pages),
            "first touch 0, shared at fork 32, COW faults %d, copied 0" % pages,
            "Top COW sites (%d sampled COW faults up to the cursor):" % pages,
            "%6d  0x400110" % pages]
    fsk.check("gen.region-details", "heap [heap]" in t and all(w in t for w in want),
              "want %r in %s" % (want, t[:1800]))
    t = scr.keys("Enter", "z")
    check_quit(scr, "gen")


def test_help_80x24():
    tr, _ = generate(3, 200)
    scr = Screen([fsk.fsk(), "view", tr], w=80, h=24)
    opened(scr, "help80")
    t = scr.keys("?")
    m = re.search(r"lines 1-(\d+) of (\d+)", t)
    fsk.check("help80.scrolls", m and int(m.group(1)) == 21 and int(m.group(2)) > 21
              and "forkscope viewer keys" in t, t)
    fsk.check("help80.width", all(len(l) <= 80 for l in t.splitlines()), t)
    t = scr.keys(*(["Down"] * 10))
    fsk.check("help80.last-line", "cut (stream stopped early)" in t and "forkscope viewer keys" not in t
              and "next / previous COW burst" in t, t)
    t = scr.keys("Escape")
    fsk.check("help80.closes", "lines 1-" not in t and "Processes:" in t, t)
    check_quit(scr, "help80")


PANES = [("tree", "PID STATE    EXIT"), ("memory", "ADDRESS  KIND"), ("events", "Events: all")]


def test_panes_sizes():
    """Every pane zoomed at 80x24 and at 200x50: its header and rows whole,
    no line past the width; then the plain layout at both sizes."""
    trace, out = record("cow_variable")
    if not trace:
        return
    child = [int(kv["pid"]) for kv in fsk.at_dicts(out, "proc") if kv["role"] == "child"][0]
    for w, h in ((80, 24), (200, 50)):
        tag = "panes.%dx%d" % (w, h)
        scr = Screen([fsk.fsk(), "view", trace], w=w, h=h)
        opened(scr, tag)
        t = scr.keys("j", "z")
        for i, (name, head) in enumerate(PANES):
            if i:
                t = scr.keys("Tab")
            lines = t.splitlines()
            fsk.check("%s.%s.header" % (tag, name), head in t, t)
            fsk.check("%s.%s.width" % (tag, name), all(len(l) <= w for l in lines), t)
            fsk.check("%s.%s.status" % (tag, name), "complete" in lines[-1] and "event " in lines[-2], t)
        bands = space_rows(scr.keys("Tab", "z", "Tab"))
        # the child's data band: its whole name and its broken page
        t = scr.keys("z")
        fsk.check("%s.memory.file-names-whole" % tag, re.search(r"\bdata .* cow_variable\s*$", t, re.M), t)
        fsk.check("%s.memory.child" % tag, "Memory of %d" % child in t, t[:400])
        scr.keys("z", "o", "Tab")
        t = scr.keys("z")
        fsk.check("%s.output.header" % tag, "Output of CMD" in t, t)
        check_quit(scr, tag)


def rev_line(kv):
    """The events pane's text of an "@ change" line of samples/regions
    (after the time and pid columns); heap changes print no start."""
    def rng(a, b):
        return "0x%x-0x%x" % (int(a, 16), int(b, 16))
    what, kind = kv["what"], kv["kind"]
    if "start" not in kv:
        return None
    size = int(kv["end"], 16) - int(kv["start"], 16)
    human = "%.1f MiB" % (size / 1048576) if size >= 1048576 else "%.1f KiB" % (size / 1024)
    text = "region %s %s %s (%s)" % (what, kind, rng(kv["start"], kv["end"]), human)
    if what == "prot":
        text += " %s -> %s" % (kv["old_perms"][:3], kv["perms"][:3])
    elif "old_start" in kv:
        text += " %s %s" % ("from" if what == "moved" else "was", rng(kv["old_start"], kv["old_end"]))
    return text + " by " + kv["cause"]


def test_regions():
    """Region changes in the events pane: each change samples/regions
    makes, at its place (under the scan that found it), in the order it
    made them, with the "regions" filter; / finds one by its cause."""
    if not os.path.exists(fsk.sample("regions")):
        fsk.check("regions.sample-built", False, fsk.sample("regions"))
        return
    trace, out = record("regions")
    if not trace:
        return
    main = [int(kv["pid"]) for kv in fsk.at_dicts(out, "proc") if kv["role"] == "main"][0]
    want = [w for w in map(rev_line, fsk.at_dicts(out, "change")) if w]
    scr = Screen([fsk.fsk(), "view", trace], w=200, h=60)
    opened(scr, "regions")
    t = scr.keys(*["c"] * 5)
    fsk.check("regions.filter-name", "Events: regions" in t, t[-2000:])
    lines = [l.split("\u2502")[-1] for l in t.splitlines()]
    at = []
    for w in want:
        hit = [i for i, l in enumerate(lines) if l.split()[2:3] == [str(main)] and l.rstrip().endswith(w)]
        at.append(hit[0] if hit else None)
    fsk.check("regions.changes-shown", len(want) >= 6 and None not in at,
              "missing %r in %s" % ([w for w, i in zip(want, at) if i is None], t))
    fsk.check("regions.in-order", None not in at and at == sorted(at), at)
    shown = [l for l in lines if re.match(r"^\s*\+\S+ ms\s+\d+\s+\S", l)]
    fsk.check("regions.only-changes", shown and all(" region " in l and " by " in l for l in shown), shown)
    moved = [w for w in want if w.startswith("region moved")]
    prot = [w for w in want if w.startswith("region prot")]
    fsk.check("regions.mremap-move", len(moved) == 1 and "by mremap" in moved[0], want)
    fsk.check("regions.mprotect", len(prot) == 1 and "by mprotect" in prot[0], want)
    # back to every event; a search from the start stops at the scan that
    # found the mprotect: its change right under the scan's line
    t = scr.keys("c", "c", "Home", "/", "by mprotect", "Enter")
    lines = [l.split("\u2502")[-1].rstrip() for l in t.splitlines()]
    i = [k for k, l in enumerate(lines) if prot and l.endswith(prot[0])]
    fsk.check("regions.search-finds", "Events: all" in t and len(i) == 1 and
              "address-space scan" in lines[i[0] - 1] and lines[i[0] - 1].split()[2:3] == [str(main)],
              t)
    m = re.search(r"event (\d+)/(\d+)", t)
    fsk.check("regions.search-moves-cursor", m and 0 < int(m.group(1)) < int(m.group(2)), t[-600:])
    check_quit(scr, "regions")


def test_monochrome_and_sigterm():
    """No colours (a terminal without them, and NO_COLOR), and SIGTERM to
    the viewer: the terminal comes back all the same."""
    tr, out = generate(4, 300)
    scr = Screen([fsk.fsk(), "view", tr], env={"TERM": "vt100", "NO_COLOR": "1"})
    t = opened(scr, "mono")
    fsk.check("mono.tree", set(int(kv["pid"]) for kv in fsk.at_dicts(out, "proc")) <= set(tree_rows(t)), t)
    pane_pid = tmux("display-message", "-p", "-t", scr.name, "#{pane_pid}").strip()
    kids = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", pane_pid], stdout=subprocess.PIPE,
                          timeout=10).stdout.decode().split("\n")
    viewer = [int(l.split()[0]) for l in kids if l.strip().endswith("forkscope")]
    fsk.check("mono.viewer-pid", len(viewer) == 1, kids)
    if viewer:
        os.kill(viewer[0], 15)
        t = scr.wait(lambda t: "FSK-EXIT=" in t, 15)
        fsk.check("sigterm.exit-status", t and "FSK-EXIT=143" in t, t)
        alt = tmux("display-message", "-p", "-t", scr.name, "#{alternate_on}").strip()
        fsk.check("sigterm.terminal-restored", alt == "0" and t and "Processes:" not in t, "%r %r" % (alt, t))
    scr.close()


# A session that lives as long as the test: the server does not exit (and
# race the next new-session) each time a viewer's session is closed.
tmux("new-session", "-d", "-s", "keep", "sleep 3600")
try:
    for test in (test_fork_twice, test_exit_codes, test_zombie, test_cow_variable,
                 test_prefork_view_narrow, test_generated, test_help_80x24, test_panes_sizes,
                 test_monochrome_and_sigterm, test_regions, test_live):
        test()
finally:
    kill_server()
fsk.finish()
