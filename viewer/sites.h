/*
 * sites: where memory came from, per process: allocation sites (bytes and
 * calls per call stack), the peak of live heap and the allocation that
 * reached it, leaks at exit grouped by stack, mmap calls by stack.
 *
 * It replays the load's events in the model's order and follows the same
 * rules as the model's heap accounting (heap.h): a fork child starts with
 * its parent's live blocks, exec drops them, the heap ends at the image's
 * END or at the wait that reaps the process. Every call that returned a
 * block counts at its site, realloc included. Memory is proportional to
 * live blocks and distinct stacks, not to events.
 */
#ifndef FORKSCOPE_SITES_H
#define FORKSCOPE_SITES_H

#include <stddef.h>
#include <stdint.h>

#include "load.h"
#include "stacks.h"
#include "table.h"

struct sites_site {
	size_t stack;           /* STACKS_NONE: recorded without a stack */
	uint64_t bytes, calls;
	double wcalls;          /* sampled streams: calls before rounding */
};

struct sites_leak {
	size_t stack;
	uint64_t bytes, blocks;
};

/* COW faults the process took at one place (sampled page faults of class
 * COW), in one kind of region. */
struct sites_cow {
	size_t stack;           /* the faulting address as a one-frame stack,
	                           or the fault's call stack when recorded */
	uint16_t kind;          /* enum fsk_region_kind of the page */
	uint64_t pages;
};

struct sites_proc {
	struct table live;      /* address -> (stack + 1) << 40 | size */
	struct table idx;       /* stack + 1 -> alloc site index + 1 */
	struct sites_site *alloc;
	size_t nalloc, acap;
	struct table midx;      /* stack + 1 -> mmap site index + 1 */
	struct sites_site *mmap;/* bytes = lengths mapped */
	size_t nmmap, mcap;
	uint64_t live_bytes, peak_bytes, peak_ns;
	size_t peak_stack;      /* the allocation that reached the peak */
	int started, ended;
	const struct reader_stream *stream;     /* current image */
	struct sites_leak *leaks;               /* largest first */
	size_t nleaks;
	struct table cidx;      /* (stack + 1) << 16 | kind -> cow index + 1 */
	struct sites_cow *cow;  /* most pages first once built */
	size_t ncow, ccap;
};

struct sites {
	struct stacks st;
	const struct model *m;
	struct sites_proc *p;   /* parallel to m->procs */
	size_t n;
};

/* Called after every event that changed a process's live heap. */
struct sites_watch {
	void (*fn)(void *ctx, const struct sites *s, size_t proc, uint64_t ts_ns);
	void *ctx;
};

/* Builds everything from a loaded trace (load_build done): 0 or -ENOMEM.
 * watch may be NULL. */
int sites_build(struct sites *s, const struct load *l, const struct sites_watch *watch);
void sites_free(struct sites *s);

/* Indexes of p's alloc sites sorted by bytes (by_calls = 0) or by calls,
 * largest first; malloc'd, NULL when there are none or on ENOMEM. */
size_t *sites_sorted(const struct sites_proc *p, int by_calls);

/* Live bytes per stack of p now, largest first (what a massif snapshot
 * shows); malloc'd, *n entries. */
struct sites_leak *sites_live_by_stack(const struct sites_proc *p, size_t *n);

/* The COW sites of the children of process index parent summed: sites
 * with the same addresses and region kind merge (a prefork server's
 * workers run the same code). Most pages first; malloc'd, *n entries,
 * NULL when there are none or on ENOMEM. *nkids: children that had any. */
struct sites_cow *sites_cow_children(const struct sites *s, size_t parent, size_t *n, size_t *nkids);
/* COW faults forkscope's own code took in the children of parent (no
 * sites: model_proc.cow_fault_samples_tracer counts them). */
uint64_t sites_tracer_cow_children(const struct sites *s, size_t parent);

#endif /* FORKSCOPE_SITES_H */
