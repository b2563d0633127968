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
events only, and populating saves at least 40. As root and as nobody.

A short-lived image pays for the same tables differently: what it maps
at all, not how. tests/bench/start_alloc makes three allocations under
the runner (with the trace's rules file, as every image of a trace) and
says how many pages it mapped by then (getrusage's minor faults, which
count a populated page too). Measured: 73 events only; with stacks 165
before these changes (a thread's rule cache and memo, 21 pages, mapped at
its first stack though only used from its 1024th; the trace's rules in
whole 64 KiB windows, 16 pages each, 4 of them), 88 after (the cache and
memo from the 1024th stack on, the first XRULE_PAGES_FIRST pages of a
window alone). Checked: stacks map at most 30 pages more than events
only."""
import os
import sys

sys.dont_write_bytecode = True
import fsk  # noqa: E402
from fsk import check  # noqa: E402

MORE = 40    # stacks over events only, at most
START_MORE = 30  # start_alloc: pages stacks map over events only, at most
SAVED = 40   # populating saves, at least
SLACK = 15   # more of each with randomization on


def faults(tag, opts, pop, wrap):
    """The page faults of many_stacks under the runner, or None when it
    failed; -1 where the counter is not allowed."""
    r = fsk.run_traced([fsk.prog("fault_count"), fsk.prog("many_stacks")], wrap=wrap,
                       options=["-q"] + opts, env={"FORKSCOPE_POPULATE": pop})
    return fsk.at_num(tag, r, r.err, "fault_count", "faults")


def start_pages(tag, opts, wrap):
    """The pages start_alloc mapped (minor faults) under the runner, or
    None when it failed."""
    r = fsk.run_traced([fsk.bench_prog("start_alloc"), "pages"], wrap=wrap, options=["-q"] + opts)
    return fsk.at_num(tag, r, r.err, "start_alloc", "minflt")


def main():
    fsk.require(fsk.prog("fault_count"), fsk.prog("many_stacks"), fsk.bench_prog("start_alloc"))
    if not fsk.kernel_populates():
        fsk.skip("kernel before 5.14: no MADV_POPULATE_WRITE, the tables are not populated")
    norand = ["setarch", "-R"] if fsk.tool("setarch") else []
    slack = 0 if norand else SLACK
    for tag, wrap in fsk.user_runs():
        wrap = tuple(wrap) + tuple(norand)
        ev = start_pages(tag + ".start.events", ["--stack-depth", "0"], wrap)
        st = start_pages(tag + ".start.stacks", [], wrap)
        if ev is not None and st is not None:
            why = "start_alloc mapped %d pages events only, %d with stacks" % (ev, st)
            fsk.note(tag + ": " + why)
            check(tag + ".start.stacks-few-pages", st <= ev + START_MORE + slack, why)
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
