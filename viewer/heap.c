/* heap: see heap.h. */
#include "heap.h"

#include <dlfcn.h>
#include <gnu/lib-names.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forkscope/trace.h"

/* libm's expm1, loaded the first time a sampled trace needs it: linked,
 * libm cost every `forkscope run` (which never needs it) 0.3-0.4 ms of
 * its start (run -q /bin/true, 2 x 150 alternating runs, medians). It is
 * part of the C library's package: a system without it is broken, said
 * in one line. */
static double (*s_expm1)(double);

static void heap_libm(void)
{
	void *h = dlopen(LIBM_SO, RTLD_NOW | RTLD_LOCAL);

	if (h)
		*(void **)&s_expm1 = dlsym(h, "expm1");
	if (!s_expm1) {
		fprintf(stderr, "forkscope: cannot load expm1 from %s, needed to estimate sampled totals: %s\n",
			LIBM_SO, dlerror());
		exit(2);
	}
}

static double heap_expm1(double x)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, heap_libm);
	return s_expm1(x);
}

uint64_t heap_weight(uint64_t mean, uint64_t size, double *calls)
{
	if (!mean) {
		*calls = 1;
		return size;
	}
	double p = -heap_expm1(-(double)(size ? size : 1) / (double)mean);
	*calls = 1 / p;
	return heap_round((double)size / p);
}

/* Adds one recorded call of `size` bytes to the estimate *w (and its
 * rounded value *n); without sampling, just one. */
static void heap_count(struct heap *h, uint64_t *n, double *w, uint64_t size)
{
	double c;

	if (!h->sample_bytes) {
		(*n)++;
		return;
	}
	heap_weight(h->sample_bytes, size, &c);
	*w += c;
	*n = heap_round(*w);
}

static uint64_t heap_est(const struct heap *h, uint64_t size)
{
	double c;

	return heap_weight(h->sample_bytes, size, &c);
}

static void heap_peak(struct heap *h)
{
	if (h->live_bytes > h->peak_live_bytes)
		h->peak_live_bytes = h->live_bytes;
}

/* Adds a live block; a duplicate address (a free we never saw) replaces
 * the old block. Out of memory only makes the live numbers approximate. */
static void heap_insert(struct heap *h, uint64_t addr, uint64_t size)
{
	uint64_t old = 0;

	if (h->ended || !addr)
		return;
	if (table_put(&h->live, addr, size, &old) == 0)
		h->live_bytes -= heap_est(h, old);
	h->live_bytes += heap_est(h, size);
	heap_peak(h);
}

/* Takes a block out; its size, or 0 (counted unknown) if it was not live.
 * Under sampling a realloc's old block often went unrecorded: `quiet`. */
static uint64_t heap_remove(struct heap *h, uint64_t addr, int quiet)
{
	uint64_t size = 0;

	if (h->ended)
		return 0;
	if (table_del(&h->live, addr, &size))
		h->live_bytes -= heap_est(h, size);
	else if (!quiet)
		h->unknown_frees++;
	return size;
}

void heap_alloc(struct heap *h, uint64_t addr, uint64_t size, unsigned flags)
{
	double c;

	heap_count(h, &h->calls, &h->w_calls, size);
	if (flags & FSK_AF_FAILED || !addr) {
		heap_count(h, &h->failed, &h->w_failed, size);
		return;
	}
	if (!h->sample_bytes) {
		h->bytes += size;
	} else {
		h->w_bytes += (double)heap_weight(h->sample_bytes, size, &c);
		h->bytes = heap_round(h->w_bytes);
	}
	uint64_t n = h->sample_bytes ? heap_round(c) : 1;
	if (h->other_malloc)
		h->other_served += n;
	else if (flags & FSK_AF_MMAPPED)
		h->mmap_served += n;
	else
		h->brk_served += n;
	heap_insert(h, addr, size);
}

void heap_free(struct heap *h, uint64_t addr)
{
	uint64_t size = heap_remove(h, addr, 0);

	if (!h->sample_bytes || h->ended)
		h->frees++;
	else
		heap_count(h, &h->frees, &h->w_frees, size);
}

void heap_release(struct heap *h, uint64_t addr)
{
	heap_remove(h, addr, 1);
}

void heap_realloc(struct heap *h, uint64_t old_addr, uint64_t new_addr,
		  uint64_t size, unsigned flags)
{
	if (!old_addr) {
		heap_alloc(h, new_addr, size, flags);
		return;
	}
	if (flags & FSK_AF_FAILED) {
		heap_count(h, &h->failed, &h->w_failed, size);
		return;
	}
	if (!new_addr) {
		heap_free(h, old_addr);
		return;
	}
	heap_count(h, &h->reallocs, &h->w_reallocs, size);
	heap_remove(h, old_addr, h->sample_bytes != 0);
	heap_insert(h, new_addr, size);
}

int heap_inherit(struct heap *child, const struct heap *parent)
{
	if (table_copy(&child->live, &parent->live) < 0)
		return -1;
	child->sample_bytes = parent->sample_bytes;
	child->inherited_blocks = parent->live.n;
	child->inherited_bytes = parent->live_bytes;
	child->live_bytes = parent->live_bytes;
	heap_peak(child);
	return 0;
}

void heap_exec(struct heap *h)
{
	table_free(&h->live);
	h->live_bytes = 0;
	h->ended = 0;
}

void heap_end(struct heap *h)
{
	if (h->ended)
		return;
	h->exit_blocks = h->live.n;
	h->exit_bytes = h->live_bytes;
	table_free(&h->live);
	h->ended = 1;
}

void heap_free_all(struct heap *h)
{
	table_free(&h->live);
}
