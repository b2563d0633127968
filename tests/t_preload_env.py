#!/usr/bin/env python3
"""libforkscope.so preloaded by hand, without `forkscope run`: with
FORKSCOPE_DIR unset, relative or missing, nothing is traced, the program's
output and status are its own, and the "not tracing" note is said by the
first image of the tree, not by each of a shell loop's children. No
process may try to write a stream it never opened."""
import os

import fsk

fsk.require()
LIB = fsk.env("FORKSCOPE_LIB")
BASH = fsk.tool("bash")
if not BASH:
    fsk.skip("bash is not installed")

# 20 forked children (subshells and /bin/true), then a last command that is
# not exec'd in place (the trailing `exit` keeps bash in charge).
SCRIPT = "for i in $(seq 10); do /bin/true; (echo sub $i); done; echo done; exit 7"

CASES = [
    ("unset", None, "FORKSCOPE_DIR is not set"),
    ("relative", "relative/dir", "is not an absolute, usable directory: relative/dir"),
    ("missing", os.path.join(fsk.tmpdir(), "no-such-dir"), "is not an absolute, usable directory"),
]

plain = fsk.run_plain([BASH, "-c", SCRIPT])
for tag, d, text in CASES:
    env = {"LD_PRELOAD": LIB}
    base = {k: v for k, v in os.environ.items() if k != "FORKSCOPE_DIR"}
    if d is not None:
        base["FORKSCOPE_DIR"] = d
    base.update(env)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(base)
    try:
        r = fsk.run_plain([BASH, "-c", SCRIPT])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    fsk.check(tag + ".status", r.rc == plain.rc == 7, "rc %r, untraced %r" % (r.rc, plain.rc))
    fsk.check(tag + ".stdout", r.out == plain.out, r.out[-300:])
    lines = [ln for ln in r.err.splitlines() if ln.startswith("forkscope:")]
    other = [ln for ln in r.err.splitlines() if not ln.startswith("forkscope:")]
    fsk.check(tag + ".said-once", len(lines) == 1 and text in lines[0], lines)
    fsk.check(tag + ".no-other-stderr", other == plain.err.splitlines(), other)
    fsk.check(tag + ".no-write-attempt", not any("trace file" in ln for ln in lines), lines)
fsk.finish()
