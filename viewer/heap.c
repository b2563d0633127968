/* heap: see heap.h. */
#include "heap.h"

#include <string.h>

#include "forkscope/trace.h"

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
		h->live_bytes -= old;
	h->live_bytes += size;
	heap_peak(h);
}

static void heap_remove(struct heap *h, uint64_t addr)
{
	uint64_t size;

	if (h->ended)
		return;
	if (table_del(&h->live, addr, &size))
		h->live_bytes -= size;
	else
		h->unknown_frees++;
}

void heap_alloc(struct heap *h, uint64_t addr, uint64_t size, unsigned flags)
{
	h->calls++;
	if (flags & FSK_AF_FAILED || !addr) {
		h->failed++;
		return;
	}
	h->bytes += size;
	if (flags & FSK_AF_MMAPPED)
		h->mmap_served++;
	else
		h->brk_served++;
	heap_insert(h, addr, size);
}

void heap_free(struct heap *h, uint64_t addr)
{
	h->frees++;
	heap_remove(h, addr);
}

void heap_realloc(struct heap *h, uint64_t old_addr, uint64_t new_addr,
		  uint64_t size, unsigned flags)
{
	if (!old_addr) {
		heap_alloc(h, new_addr, size, flags);
		return;
	}
	if (flags & FSK_AF_FAILED) {
		h->failed++;
		return;
	}
	if (!new_addr) {
		heap_free(h, old_addr);
		return;
	}
	h->reallocs++;
	heap_remove(h, old_addr);
	heap_insert(h, new_addr, size);
}

int heap_inherit(struct heap *child, const struct heap *parent)
{
	if (table_copy(&child->live, &parent->live) < 0)
		return -1;
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
