"""A process that forks keeps an empty stream file made ahead by its
flusher thread (preload/spare.c), and its next fork child renames that
file to its own stream instead of creating one on the fork path. The
traced Python program below lists the trace directory itself: a spare
appears after two forks, the third child takes it (it is gone, and the
child's stream is complete), and none is left after the run, also when
the process that made it was killed (`forkscope run` removes those)."""
import json
import os
import sys

sys.dont_write_bytecode = True  # keep tests/ free of __pycache__
import fsk  # noqa: E402
from fsk import check  # noqa: E402

PROG = r"""
import json, os, sys, time
d = os.environ["FORKSCOPE_DIR"]
def spares():
    return sorted(n for n in os.listdir(d) if n.startswith(".spare."))
for code in (3, 5):
    pid = os.fork()
    if pid == 0:
        os._exit(code)
    os.waitpid(pid, 0)
deadline = time.time() + 10
while not spares() and time.time() < deadline:
    time.sleep(0.01)
before = spares()
if sys.argv[1] == "kill":
    print(json.dumps({"before": before, "pid": os.getpid()}), flush=True)
    os.kill(os.getpid(), 9)
pid = os.fork()
if pid == 0:
    os._exit(4)
os.waitpid(pid, 0)
print(json.dumps({"before": before, "after": spares(), "child": pid, "pid": os.getpid()}), flush=True)
"""


def leftovers(trace):
    return sorted(n for n in os.listdir(trace) if not n.endswith(".fst"))


def case(mode):
    tag = "spare-" + mode
    r = fsk.run_traced([sys.executable, "-c", PROG, mode], timeout=60, options=("-q",))
    want_rc = -9 if mode == "kill" else 0
    if not check(tag + ".ran", r.rc in (want_rc, 128 + 9) and r.out.strip(), r.describe()):
        return
    seen = json.loads(r.out.strip().splitlines()[-1])
    prefix = ".spare.%d." % seen["pid"]
    check(tag + ".spare-made", seen["before"] and all(n.startswith(prefix) for n in seen["before"]),
          "spares before the third fork: %r" % seen["before"])
    check(tag + ".none-left", leftovers(r.trace) == [], "left in the trace: %r" % leftovers(r.trace))
    doc = r.report()
    if not check(tag + ".report", doc is not None, r.report_error):
        return
    procs = {p.get("pid"): p for p in doc["processes"]}
    kids = [p for p in doc["processes"] if p.get("ppid") == seen["pid"]]
    codes = sorted(p.get("exit", {}).get("code") for p in kids)
    if mode == "kill":
        check(tag + ".children", codes == [3, 5], "children's exit codes %r" % codes)
        return
    # spares are handed out in the order they were made
    first = min(seen["before"] or [""], key=lambda n: int(n.rsplit(".", 1)[1]) if n else 0)
    check(tag + ".spare-taken", first and first not in seen["after"],
          "spares before %r, after the third child %r" % (seen["before"], seen["after"]))
    child = procs.get(seen["child"])
    check(tag + ".child-stream", os.path.exists(os.path.join(r.trace, "%d.0.fst" % seen["child"])),
          sorted(os.listdir(r.trace)))
    check(tag + ".child-traced", child is not None and child.get("exit", {}).get("code") == 4 and
          child.get("stream_state") == "clean" and child.get("exit_how") == "_exit",
          child and {k: child.get(k) for k in ("exit", "stream_state", "exit_how")})
    check(tag + ".children", codes == [3, 4, 5], "children's exit codes %r" % codes)


def main():
    fsk.require(fsk.fsk())
    case("use")
    case("kill")
    fsk.finish()


if __name__ == "__main__":
    main()
