"""The viewer in a terminal: `forkscope view` and `forkscope live` driven in
tmux (send-keys, capture-pane) on traces of the samples. Checks what a user
sees: the pids the samples print, their states and exit statuses, the
address space in address order with the child's COW-broken pages, the
state before a fork after seeking back, a readable screen at 80x24, and a
terminal given back on q."""
import os
import re
import shlex
import subprocess
import time

import fsk

TMUX = fsk.tool("tmux")
if not TMUX:
    fsk.skip("tmux is not installed")
fsk.require(*(fsk.sample(s) for s in ("fork_twice", "exit_codes", "zombie", "prefork", "cow_variable")))

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
        m = re.match(r"^\s*([0-9a-f]{6,})\s+\*?(\w+)\s+[\d.]+ \S+\s+\S+\s+(?:\d+\s+\d+\s+)?(\d+)", part)
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


try:
    for test in (test_fork_twice, test_exit_codes, test_zombie, test_cow_variable,
                 test_prefork_view_narrow, test_live):
        test()
finally:
    kill_server()
fsk.finish()
