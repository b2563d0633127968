#!/usr/bin/env python3
"""Call stacks cost a program few page faults more than events alone: the
shared tables they use (the trace's rules, the stack group's index tables
and entries, a thread's rule cache and memo) are mapped a run of pages at
a time where each page was a fault of its own (preload/unwind.c,
unwind_levels_map and unwind_entry_map; preload/unwind_cache.c, xrule_map
and cache_rc_map), and the group's rules are looked for only in the pages
that hold one (rule_page_used). A fault costs 12 to 16 us on the VMs this
was measured on, a populated page 0.4 (one that exists) to 3 (a new one).

tests/progs/many_stacks allocates from 4096 distinct stacks, twice each,
under `forkscope run`: events only and with stacks, populated and with
FORKSCOPE_POPULATE=0 (the same tracer without populating), with
address-space randomization off where setarch is (the counts are then the
same from run to run). tests/progs/fault_count, run by the runner, counts
the page faults of the program (user-mode faults: a page populated is not
one, where getrusage counts it), not those of the runner. Measured: 100
faults events only, 117 with stacks (194 before these changes), 185 with
stacks unpopulated. Checked: stacks take at most 40 faults more than
events only, and populating saves at least 40. As root and as nobody."""
import os
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402

MORE = 40    # stacks over events only, at most
SAVED = 40   # populating saves, at least
SLACK = 15   # more of each with randomization on


def faults(tag, opts, pop, wrap):
    """The page faults of many_stacks under the runner, or None when it
    failed; -1 where the counter is not allowed."""
    r = fsk.run_traced([fsk.prog("fault_count"), fsk.prog("many_stacks")], wrap=wrap,
                       options=["-q"] + opts, env={"FORKSCOPE_POPULATE": pop})
    kv = fsk.at_dicts(r.err, "fault_count")
    if not check(tag + ".ran", r.rc == 0 and len(kv) == 1, r.describe()):
        return None
    return fsk.num(kv[0].get("faults"))


def main():
    fsk.require(fsk.prog("fault_count"), fsk.prog("many_stacks"))
    if not fsk.kernel_populates():
        fsk.skip("kernel before 5.14: no MADV_POPULATE_WRITE, the tables are not populated")
    norand = ["setarch", "-R"] if fsk.tool("setarch") else []
    slack = 0 if norand else SLACK
    for tag, wrap in fsk.user_runs():
        wrap = tuple(wrap) + tuple(norand)
        got = {}
        for mode, opts in (("events", ["--stack-depth", "0"]), ("stacks", [])):
            for pop in ("1", "0"):
                got[mode, pop] = faults("%s.%s.populate%s" % (tag, mode, pop), opts, pop, wrap)
        if None in got.values():
            continue
        if -1 in got.values():
            fsk.note("%s: no page-fault counter here (perf_event_open refused): not checked" % tag)
            continue
        why = "faults: events only %d (%d unpopulated), with stacks %d (%d unpopulated)" % (
            got["events", "1"], got["events", "0"], got["stacks", "1"], got["stacks", "0"])
        fsk.note(tag + ": " + why)
        check(tag + ".stacks-few-faults", got["stacks", "1"] <= got["events", "1"] + MORE + slack, why)
        check(tag + ".populating-saves", got["stacks", "1"] <= got["stacks", "0"] - SAVED + slack, why)
    fsk.finish()


if __name__ == "__main__":
    main()
