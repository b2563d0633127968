"""Call stacks, symbols and leaks: tests/progs/stacks allocates and leaks at
known functions and lines, in the executable, in a library it dlopens, in
a signal handler and in a fork child, and prints them as "@ site" lines.
The JSON report must name those functions, files and lines in its leaks
and sites, with the leaked bytes exact; a stripped copy of the program must
still give a report, with its frames as module+offset."""
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check, num  # noqa: E402


def top_frame(frames, func):
    """The first frame naming func, or None."""
    for f in frames:
        if f.get("function") == func:
            return f
    return None


def frame_ok(f, site):
    return (f is not None and os.path.basename(f.get("file") or "") == site["file"]
            and f.get("line") == num(site["line"]))


def check_frames_shape(tag, frames):
    keys = {"address", "module", "offset", "function", "file", "line"}
    bad = [f for f in frames if set(f) != keys or not f["address"].startswith("0x")
           or not f["offset"].startswith("0x")]
    return check(tag + ".frame-shape", not bad, "bad frames %r" % bad[:2])


def run(tag, exe, libdir):
    r = fsk.run_traced([exe, libdir], cwd=fsk.tmpdir(), options=["--stack-depth", "32"])
    if not check(tag + ".ran", r.rc == 0 and not r.timed_out, r.describe()):
        return None, None
    doc = r.report()
    if not check(tag + ".report", doc is not None, r.report_error):
        return None, None
    return r, doc


def main():
    exe = fsk.prog("stacks")
    libdir = os.path.dirname(exe)
    fsk.require(exe, os.path.join(libdir, "libstacks_lib.so"))
    r, doc = run("stacks", exe, libdir)
    if not doc:
        fsk.finish()
    sites = fsk.at_dicts(r.out, "site")
    child = num(fsk.at_dicts(r.out, "child")[0]["pid"])
    procs = fsk.by_pid(doc)
    parent = [p for p in fsk.processes(doc) if p["pid"] != child][0]
    kid = procs.get(child)
    check("stacks.two-processes", kid is not None and len(fsk.processes(doc)) == 2,
          "pids %r" % list(procs))
    for p in (parent, kid or {}):
        check("stacks.keys.%d" % p.get("pid", 0), isinstance(p.get("leaks"), list)
              and isinstance(p.get("sites", {}).get("alloc"), list) and isinstance(p["sites"].get("cow"), list),
              "leaks/sites missing: %r" % sorted(p))
    for s in sites:
        name = s["name"]
        proc = kid if name == "child_leak" else parent
        if proc is None:
            continue
        if s["leaked"] == "1":
            groups = [g for g in proc["leaks"] if frame_ok(top_frame(g["frames"], s["func"]), s)]
            got = sum(g["bytes"] for g in groups), sum(g["blocks"] for g in groups)
            check("stacks.leak.%s" % name, len(groups) == 1 and got == (num(s["bytes"]), num(s["blocks"])),
                  "want %s bytes in %s blocks at %s %s:%s, got groups %r" % (
                      s["bytes"], s["blocks"], s["func"], s["file"], s["line"],
                      [(g["bytes"], g["blocks"], g["frames"][:2]) for g in proc["leaks"]][:6]))
        else:
            found = [a for a in proc["sites"]["alloc"] if frame_ok(top_frame(a["frames"], s["func"]), s)]
            check("stacks.site.%s" % name, len(found) == 1 and found[0]["bytes"] == num(s["bytes"])
                  and found[0]["calls"] == num(s["blocks"]),
                  "want %s bytes in %s calls at %s:%s, got %r" % (
                      s["bytes"], s["blocks"], s["func"], s["line"], found[:2]))
            check("stacks.not-leaked.%s" % name,
                  not [g for g in proc["leaks"] if top_frame(g["frames"], s["func"])], "listed as a leak")
    lib = [g for g in parent["leaks"] if top_frame(g["frames"], "lib_leak")]
    check("stacks.lib-module", lib and lib[0]["frames"][0]["module"].endswith("/libstacks_lib.so"),
          "lib_leak frames %r" % (lib[0]["frames"][:1] if lib else None))
    sig = [g for g in parent["leaks"] if top_frame(g["frames"], "on_usr1")]
    check("stacks.signal-through", sig and top_frame(sig[0]["frames"], "main") is not None,
          "the handler's stack does not reach main: %r" % (sig[0]["frames"][:6] if sig else None))
    # forkscope's own frames (its wrapper of main) are not the program's
    below_main = [g["frames"] for g in parent["leaks"] if top_frame(g["frames"], "main") is not None]
    check("stacks.no-forkscope-frames", below_main and not any(
        "libforkscope" in os.path.basename(f.get("module") or "") for fr in below_main for f in fr),
        [[(f.get("function"), os.path.basename(f.get("module") or "")) for f in fr] for fr in below_main[:2]])
    check("stacks.leaks-sorted", all(a["bytes"] >= b["bytes"] for a, b in zip(parent["leaks"], parent["leaks"][1:])),
          "not largest first")
    total = sum(g["bytes"] for g in parent["leaks"])
    check("stacks.leaks-sum", total == parent["malloc"]["live_at_exit_bytes"],
          "leak groups sum %d, malloc.live_at_exit_bytes %d" % (total, parent["malloc"]["live_at_exit_bytes"]))
    check_frames_shape("stacks", [f for g in parent["leaks"] for f in g["frames"]])
    text = subprocess.run([fsk.fsk(), "report", r.trace], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = text.stdout.decode("utf-8", "replace")
    check("stacks.text", text.returncode == 0 and "leaks at exit" in out and "exe_leak (stacks.c:" in out,
          out[-400:])

    # A stripped copy: no crash, frames fall back to module+offset.
    strip = shutil.which("strip")
    if strip:
        bare = os.path.join(fsk.tmpdir(), "stacks-stripped")
        shutil.copy(exe, bare)
        subprocess.run([strip, bare], check=True)
        r2, doc2 = run("stripped", bare, libdir)
        if doc2:
            p2 = [p for p in fsk.processes(doc2) if p["ppid"] not in fsk.by_pid(doc2)][0]
            frames = [f for g in p2["leaks"] for f in g["frames"] if f["module"].endswith("stacks-stripped")]
            check("stripped.raw-frames", frames and all(f["file"] is None for f in frames),
                  "frames %r" % frames[:2])
            check("stripped.leaked-bytes", p2["malloc"]["live_at_exit_bytes"] == sum(g["bytes"] for g in p2["leaks"]),
                  "sum differs")
    else:
        fsk.note("no strip(1): stripped check left out")
    fsk.finish()


main()
