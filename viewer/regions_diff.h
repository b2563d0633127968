/*
 * regions_diff: region change events (added, removed, grown, shrunk,
 * protection changed, moved) from two consecutive scans of a process, with
 * their cause taken from what the hooks recorded in between. The model
 * calls regions_diff_hint() for every MAP, BRK, ALLOC, FREE and REALLOC
 * record and regions_diff_scan() when a scan ends; the events land in
 * model_proc.revs, which the report, the JSON and the viewer read.
 */
#ifndef FORKSCOPE_REGIONS_DIFF_H
#define FORKSCOPE_REGIONS_DIFF_H

#include "model.h"

/* Keeps what ev (MAP, BRK, ALLOC, FREE, REALLOC) says about p's address
 * space until the next scan. Call before the heap sees a FREE (it needs
 * the block's size). 0 or -ENOMEM. */
int regions_diff_hint(struct model_proc *p, const struct model_event *ev);

/* Appends to p->revs the changes from scan a (before) to scan b (after,
 * taken at b->ts_ns), and forgets the hints they used. 0 or -ENOMEM. */
int regions_diff_scan(struct model_proc *p, const struct model_scan *a,
		      const struct model_scan *b);

/* exec: a new address space; the hints of the old one mean nothing. */
void regions_diff_reset(struct model_proc *p);

/* Frees p's events and hints. */
void regions_diff_free(struct model_proc *p);

/* Deep copies of src's events and hints into dst (fields overwritten).
 * 0 or -ENOMEM. */
int regions_diff_copy(struct model_proc *dst, const struct model_proc *src);

/* "added", "removed", "grown", "shrunk", "prot", "moved". */
const char *regions_diff_what_name(unsigned what);

/* "mmap", "munmap", "mremap", "mprotect", "malloc", "brk", "sbrk",
 * "stack growth", "thread start", "unknown". */
const char *regions_diff_cause_name(unsigned cause);

#endif /* FORKSCOPE_REGIONS_DIFF_H */
