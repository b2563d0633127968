/* heap: see heap.h. */
#include "heap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "forkscope/trace.h"

static size_t heap_page_of(uint64_t addr)
{
	return (size_t)((addr * 0x9e3779b97f4a7c15ull) >> 58) & (HEAP_PAGES - 1);
}

static void heap_page_put(struct heap_page *pg)
{
	if (pg && !--pg->refs) {
		table_free(&pg->t);
		free(pg);
	}
}

static void heap_live_free(struct heap_live *l)
{
	if (l->dir && !--l->dir->refs) {
		for (size_t i = 0; i < HEAP_PAGES; i++)
			heap_page_put(l->dir->pg[i]);
		free(l->dir);
	}
	l->dir = NULL;
	l->n = 0;
}

/* The page addr falls in, made private to l (its directory and the page
 * copied when shared, created when missing): NULL when out of memory. */
static struct table *heap_live_own(struct heap_live *l, uint64_t addr)
{
	struct heap_dir *d = l->dir;
	struct heap_page *pg;
	size_t i = heap_page_of(addr);

	if (!d || d->refs > 1) {
		struct heap_dir *nd = d ? malloc(sizeof(*nd)) : calloc(1, sizeof(*nd));
		if (!nd)
			return NULL;
		if (d) {
			*nd = *d;
			for (size_t k = 0; k < HEAP_PAGES; k++)
				if (nd->pg[k])
					nd->pg[k]->refs++;
			d->refs--;
		}
		nd->refs = 1;
		l->dir = d = nd;
	}
	pg = d->pg[i];
	if (!pg || pg->refs > 1) {
		struct heap_page *np = calloc(1, sizeof(*np));
		if (!np || (pg && table_copy(&np->t, &pg->t) < 0)) {
			free(np);
			return NULL;
		}
		np->refs = 1;
		if (pg)
			pg->refs--;
		d->pg[i] = pg = np;
	}
	return &pg->t;
}

int heap_lookup(const struct heap *h, uint64_t addr, uint64_t *size)
{
	const struct heap_page *pg = h->live.dir ? h->live.dir->pg[heap_page_of(addr)] : NULL;

	return pg ? table_get(&pg->t, addr, size) : 0;
}

void heap_share(struct heap *dst, const struct heap *src)
{
	*dst = *src;
	if (dst->live.dir)
		dst->live.dir->refs++;
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
	struct table *t;
	uint64_t old = 0;
	int e;

	if (h->ended || !addr || !(t = heap_live_own(&h->live, addr)))
		return;
	e = table_put(t, addr, size, &old);
	if (e < 0)
		return;
	if (e == 0)
		h->live_bytes -= old;
	else
		h->live.n++;
	h->live_bytes += size;
	heap_peak(h);
}

static void heap_remove(struct heap *h, uint64_t addr)
{
	struct table *t;
	uint64_t size;

	if (h->ended)
		return;
	/* a miss changes nothing: no page is copied for it */
	if (!heap_lookup(h, addr, NULL)) {
		h->unknown_frees++;
		return;
	}
	if (!(t = heap_live_own(&h->live, addr)) || !table_del(t, addr, &size))
		return;
	h->live_bytes -= size;
	h->live.n--;
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
	heap_live_free(&child->live);
	child->live = parent->live;
	if (child->live.dir)
		child->live.dir->refs++;
	child->inherited_blocks = parent->live.n;
	child->inherited_bytes = parent->live_bytes;
	child->live_bytes = parent->live_bytes;
	heap_peak(child);
	return 0;
}

void heap_exec(struct heap *h)
{
	heap_live_free(&h->live);
	h->live_bytes = 0;
	h->ended = 0;
}

void heap_end(struct heap *h)
{
	if (h->ended)
		return;
	h->exit_blocks = h->live.n;
	h->exit_bytes = h->live_bytes;
	heap_live_free(&h->live);
	h->ended = 1;
}

void heap_free_all(struct heap *h)
{
	heap_live_free(&h->live);
}
