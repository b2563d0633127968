#!/usr/bin/env python3
"""A program whose malloc is not glibc's must run as untraced and have
its calls counted exactly.

LD_PRELOAD=libjemalloc.so.2 (or tcmalloc) under `forkscope run` puts that
allocator after our library: our hooks call it as the real malloc. The
hooks read glibc's chunk header, the word before a block, for its MMAPPED
bit; under jemalloc a block can follow an unmapped page, and python3 died
of that read (SIGSEGV) at its first thread, every run, with the library
of this session's start too. The header is now read only when the real
malloc is glibc's (preload/resolve.c).

- tests/progs/lib/other_malloc.c, a malloc that puts every block right
  after an inaccessible page, preloaded after ours: tests/progs/
  malloc_count (4 threads, every malloc-family function) must end with
  status 0 and errno kept, and the report must count exactly the calls
  and frees it made over what it makes with no iterations (stacks and
  events only), as served by a malloc other than glibc's (the header's
  FSK_HF_MALLOC_OTHER: nothing says heap or mmap). With the library
  before, it dies at its first malloc.
- Where libjemalloc2 and libtcmalloc-minimal4 are installed (make deps
  installs them), python3 starting four threads, and malloc_bench on two
  threads, under each: the output and status of an untraced run with the
  same allocator, and the calls recorded."""
import os
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check, num  # noqa: E402

ITERS = 2000
THREADS = 4
LIBDIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib")
PY_THREADS = ("import threading\nr = []\n"
              "ts = [threading.Thread(target=lambda: r.append(len([str(i) for i in range(20000)])))"
              " for _ in range(4)]\n[t.start() for t in ts]\n[t.join() for t in ts]\nprint(sorted(r))")


def preloaded(lib, argv):
    """argv with lib preloaded after our library: the runner of the tests
    is built with ASan, whose runtime must come first in its own
    LD_PRELOAD, so the library goes in the command's only."""
    return ["sh", "-c", 'LD_PRELOAD="$LD_PRELOAD %s" exec "$@"' % lib, "sh"] + argv


def counted(tag, shim, iters, options):
    """(program's counts, report's malloc dict) of malloc_count ITERS under
    the shim, or None."""
    r = fsk.run_traced(preloaded(shim, [fsk.prog("malloc_count"), str(iters), str(THREADS)]), timeout=180,
                       cwd=fsk.tmpdir(), options=options)
    counts = fsk.at_dicts(r.out, "counts")
    if not check(tag + ".ran", r.rc == 0 and not r.timed_out and len(counts) == 1, r.describe()):
        return None
    doc = r.report()
    if not check(tag + ".report", doc is not None, r.report_error):
        return None
    procs = [p for p in fsk.processes(doc) if p["exe"].endswith("/malloc_count")]
    if not check(tag + ".one-process", len(procs) == 1, [p["exe"] for p in fsk.processes(doc)]):
        return None
    return {k: num(v) for k, v in counts[0].items()}, procs[0].get("malloc") or {}


def shim_case(shim):
    plain = fsk.run_plain([fsk.prog("malloc_count"), str(ITERS), str(THREADS)], timeout=180,
                          env={"LD_PRELOAD": shim})
    check("shim.untraced", plain.rc == 0 and "@ counts" in plain.out, plain.describe())
    for tag, options in (("shim.stacks", ()), ("shim.events-only", ("--stack-depth", "0"))):
        base = counted(tag + ".baseline", shim, 0, options)
        got = counted(tag, shim, ITERS, options)
        if not (base and got):
            continue
        c, m = got
        check(tag + ".errno-kept", c["errno_changed"] == 0, "errno changed %d times" % c["errno_changed"])
        fns = ["malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign"]
        separate = "reallocs" in m
        calls = sum(c[f] for f in fns if not (separate and f == "realloc"))
        want = base[1].get("calls", 0) + calls
        check(tag + ".calls-exact", m.get("calls") == want,
              "report %r, expected %d = baseline %r + program %d" % (m.get("calls"), want, base[1].get("calls"), calls))
        want = base[1].get("frees", 0) + c["free"]
        check(tag + ".frees-exact", m.get("frees") == want,
              "report %r, expected %d = baseline %r + program %d" % (m.get("frees"), want, base[1].get("frees"), c["free"]))
        # no glibc chunk header to say a block was mmapped: the report
        # says another malloc served the program's calls
        check(tag + ".served-by-other", m.get("mmap_served") == 0 and m.get("other_served", 0) >= calls,
              m)


def real_allocator_case(name, path):
    py = fsk.system_python()
    runs = [("malloc_bench", [os.path.join(fsk.top(), "build", "bench", "malloc_bench"), "200000", "2", "0"])]
    if py:
        runs.append(("python3", [py, "-c", PY_THREADS]))
    for what, argv in runs:
        if not os.path.exists(argv[0]):
            continue
        tag = "%s.%s" % (name, what)
        plain = fsk.run_plain(argv, timeout=120, env={"LD_PRELOAD": path})
        r = fsk.run_traced(preloaded(path, argv), timeout=120, options=("-q",))
        if not check(tag + ".same", r.rc == plain.rc == 0 and not r.timed_out and r.out == plain.out,
                     "traced: %s\nuntraced: %s" % (r.describe(), plain.describe())):
            continue
        doc = r.report()
        if check(tag + ".report", doc is not None, r.report_error):
            calls = max((p.get("malloc") or {}).get("calls", 0) for p in fsk.processes(doc))
            check(tag + ".recorded", calls >= 1000, "at most %d malloc calls recorded" % calls)


def main():
    shim = os.path.join(os.path.dirname(fsk.prog("malloc_count")), "libother_malloc.so")
    fsk.require(fsk.prog("malloc_count"), shim)
    shim_case(shim)
    for name, lib in (("jemalloc", "libjemalloc.so.2"), ("tcmalloc", "libtcmalloc_minimal.so.4")):
        path = next((os.path.join(d, lib) for d in LIBDIRS if os.path.exists(os.path.join(d, lib))), None)
        if path:
            real_allocator_case(name, path)
        else:
            fsk.note("%s is not installed: its case is left out" % lib)
    fsk.finish()


if __name__ == "__main__":
    main()
