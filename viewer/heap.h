/*
 * heap: malloc accounting of one process from ALLOC/FREE/REALLOC records,
 * with a table of live blocks (address -> requested size) so that peak
 * and live-at-exit bytes are exact for what the trace recorded.
 */
#ifndef FORKSCOPE_HEAP_H
#define FORKSCOPE_HEAP_H

#include <stdint.h>

#include "table.h"

struct heap {
	struct table live;
	uint64_t calls;         /* ALLOC records and reallocs that acted as malloc */
	uint64_t frees;         /* FREE records and reallocs that acted as free */
	uint64_t reallocs;      /* reallocs that moved or resized a block */
	uint64_t failed;        /* calls that returned NULL */
	uint64_t bytes;         /* requested by calls */
	uint64_t mmap_served;   /* calls glibc served with its own mmap */
	uint64_t brk_served;    /* calls served from the brk heap/arenas */
	uint64_t other_served;  /* calls another malloc than glibc's served (which
				 * from its own mmap is not known) */
	int other_malloc;       /* the current image's malloc is not glibc's
				 * (FSK_HF_MALLOC_OTHER) */
	uint64_t unknown_frees; /* frees of blocks the trace never saw allocated */
	uint64_t inherited_blocks, inherited_bytes; /* live in the parent at fork */
	uint64_t live_bytes;
	uint64_t peak_live_bytes;
	uint64_t exit_bytes, exit_blocks; /* live when the process ended */
	int ended;              /* heap_end() ran: exit_* are final */
	/* Sampled stream (trace.h): the mean N; every count and byte total
	 * above is then an estimate, each record weighted by heap_weight(). */
	uint64_t sample_bytes;
	double w_calls, w_frees, w_failed, w_reallocs, w_bytes; /* unrounded estimates */
};

/* What a record of `size` bytes stands for under sampling with mean N
 * (0: itself): *calls = 1/p, return value size/p bytes, where p = 1 -
 * exp(-max(size, 1)/N) is the chance the writer recorded it. */
uint64_t heap_weight(uint64_t mean, uint64_t size, double *calls);

/* x (an estimate, >= 0) rounded to the nearest count, halves up, as
 * llround does for it: the viewer links no libm (heap.c). */
static inline uint64_t heap_round(double x)
{
	if (!(x > 0))
		return 0;
	if (x >= 0x1p64)
		return UINT64_MAX;
	uint64_t t = (uint64_t)x;
	return t + (x - (double)t >= 0.5); /* exact: x - floor(x) */
}

void heap_alloc(struct heap *h, uint64_t addr, uint64_t size, unsigned flags);
void heap_free(struct heap *h, uint64_t addr);
/* Sampling: a realloc whose new block went unrecorded released addr. */
void heap_release(struct heap *h, uint64_t addr);
void heap_realloc(struct heap *h, uint64_t old_addr, uint64_t new_addr,
		  uint64_t size, unsigned flags);

/* A fork child starts with its parent's live blocks (counted as inherited,
 * not as calls): 0 or -ENOMEM. */
int heap_inherit(struct heap *child, const struct heap *parent);

/* exec replaced the address space: no block survives, totals stay. */
void heap_exec(struct heap *h);

/* The process ended: record live-at-exit and free the table. */
void heap_end(struct heap *h);

void heap_free_all(struct heap *h);

#endif /* FORKSCOPE_HEAP_H */
