#!/usr/bin/env python3
"""A program built with gcc's AddressSanitizer runs traced as untraced.

gcc's ASan runtime is a library of the program's own (libasan.so), and it
refuses to run unless it is the first library loaded ("ASan runtime does
not come first in initial library list"): a preloaded one always comes
before it, so such a program exited 1 at once under forkscope. The runner
now turns that check off for the traced tree (ASAN_OPTIONS gets
verify_asan_link_order=0 appended) unless the user set it, and ASan works
as untraced: our hooks call its malloc as the real one.

tests/progs/asan_prog (4 threads, 8000 malloc/free pairs) must print its
line and end with status 0, with its calls in the report, served by a
malloc other than glibc's; with "overflow" it must end as untraced, with
ASan's heap-buffer-overflow report and its exit status. Where the user
set verify_asan_link_order themselves, their setting is kept (=1: the
program refuses to run, traced, as ASan says it must)."""
import os
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402

REPORT = "ERROR: AddressSanitizer: heap-buffer-overflow"


def user_asan(extra):
    """The ASAN_OPTIONS of the tests' own environment (the runner is built
    with ASan too) with extra appended."""
    old = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (old + ":" if old else "") + extra}


def main():
    prog = fsk.prog("asan_prog")
    fsk.require(prog)
    plain = fsk.run_plain([prog], timeout=60)
    if not check("untraced", plain.rc == 0 and "@ asan_prog blocks=8000" in plain.out, plain.describe()):
        fsk.finish()
        return
    r = fsk.run_traced([prog], timeout=120)
    if check("traced.ran", r.rc == 0 and not r.timed_out and r.out == plain.out, r.describe()):
        doc = r.report()
        if check("traced.report", doc is not None, r.report_error):
            p = [q for q in fsk.processes(doc) if q["exe"].endswith("/asan_prog")]
            m = (p[0].get("malloc") or {}) if p else {}
            check("traced.calls", len(p) == 1 and m.get("calls", 0) >= 8000 and m.get("frees", 0) >= 8000
                  and m.get("other_served", 0) >= 8000 and p[0]["stream_state"] == "clean", m)
    bad_plain = fsk.run_plain([prog, "overflow"], timeout=60)
    bad = fsk.run_traced([prog, "overflow"], timeout=120)
    # ASan's exit status: 1, or the exitcode the tests' ASAN_OPTIONS give
    check("overflow.as-untraced", bad_plain.rc == bad.rc and bad.rc not in (0, None)
          and REPORT in bad_plain.err and REPORT in bad.err
          and bad.out == bad_plain.out, "traced: %s\nuntraced: %s" % (bad.describe(), bad_plain.describe()))
    kept = fsk.run_traced([prog], timeout=120, env=user_asan("verify_asan_link_order=1"))
    check("user-setting-kept", kept.rc not in (0, None) and "does not come first" in kept.err, kept.describe())
    fsk.finish()


if __name__ == "__main__":
    main()
