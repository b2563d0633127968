/* sites: see sites.h. */
#include "sites.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "vec.h"

#define SITES_SIZE_BITS 40
#define SITES_SIZE_MASK ((1ull << SITES_SIZE_BITS) - 1)

static uint64_t sites_pack(size_t stack, uint64_t size)
{
	uint64_t st = stack == STACKS_NONE ? 0 : (uint64_t)stack + 1;
	return st << SITES_SIZE_BITS | (size > SITES_SIZE_MASK ? SITES_SIZE_MASK : size);
}

static size_t sites_unpack_stack(uint64_t v)
{
	uint64_t st = v >> SITES_SIZE_BITS;
	return st ? (size_t)st - 1 : STACKS_NONE;
}

/* The site of stack in (idx, v), added when new; NULL on ENOMEM. */
static struct sites_site *sites_site(struct table *idx, struct sites_site **v, size_t *n, size_t *cap,
				     size_t stack)
{
	uint64_t key = stack == STACKS_NONE ? (uint64_t)-1 : (uint64_t)stack + 1, i;

	if (table_get(idx, key, &i))
		return &(*v)[i - 1];
	if (vec_reserve(v, cap, *n + 1, sizeof(**v)) < 0 || table_put(idx, key, *n + 1, NULL) < 0)
		return NULL;
	memset(&(*v)[*n], 0, sizeof(**v));
	(*v)[*n].stack = stack;
	return &(*v)[(*n)++];
}

static int sites_insert(struct sites_proc *p, uint64_t addr, uint64_t size, size_t stack, uint64_t ts)
{
	uint64_t old;
	int r;

	if (p->ended || !addr)
		return 0;
	r = table_put(&p->live, addr, sites_pack(stack, size), &old);
	if (r < 0)
		return r;
	if (r == 0)
		p->live_bytes -= old & SITES_SIZE_MASK;
	p->live_bytes += size;
	if (p->live_bytes > p->peak_bytes) {
		p->peak_bytes = p->live_bytes;
		p->peak_stack = stack;
		p->peak_ns = ts;
	}
	return 0;
}

static void sites_remove(struct sites_proc *p, uint64_t addr)
{
	uint64_t v;

	if (!p->ended && table_del(&p->live, addr, &v))
		p->live_bytes -= v & SITES_SIZE_MASK;
}

/* One recorded call of `*size` bytes at a site; under sampling *size
 * becomes the estimated bytes it stands for (heap_weight). */
static int sites_count(struct sites_proc *p, size_t stack, uint64_t *size,
		       const struct reader_stream *rs)
{
	struct sites_site *s = sites_site(&p->idx, &p->alloc, &p->nalloc, &p->acap, stack);
	double calls;

	if (!s)
		return -ENOMEM;
	*size = heap_weight(rs->sample_bytes, *size, &calls);
	s->wcalls += calls;
	s->calls = heap_round(s->wcalls);
	s->bytes += *size;
	return 0;
}

static int sites_leak_cmp(const void *a, const void *b)
{
	const struct sites_leak *x = a, *y = b;

	if (x->bytes != y->bytes)
		return x->bytes < y->bytes ? 1 : -1;
	if (x->blocks != y->blocks)
		return x->blocks < y->blocks ? 1 : -1;
	return x->stack < y->stack ? -1 : x->stack > y->stack;
}

struct sites_leak *sites_live_by_stack(const struct sites_proc *p, size_t *n)
{
	struct table idx = { 0 };
	struct sites_leak *v = NULL;
	size_t cap = 0;

	*n = 0;
	for (size_t i = 0; i < p->live.cap; i++) {
		const struct table_slot *sl = &p->live.slots[i];
		uint64_t key, k;
		if (!sl->key)
			continue;
		key = (sl->val >> SITES_SIZE_BITS) + 1;
		if (!table_get(&idx, key, &k)) {
			if (vec_reserve(&v, &cap, *n + 1, sizeof(*v)) < 0 ||
			    table_put(&idx, key, *n + 1, NULL) < 0)
				break;
			v[*n].stack = sites_unpack_stack(sl->val);
			v[*n].bytes = v[*n].blocks = 0;
			k = ++*n;
		}
		v[k - 1].bytes += sl->val & SITES_SIZE_MASK;
		v[k - 1].blocks++;
	}
	table_free(&idx);
	if (*n)
		qsort(v, *n, sizeof(*v), sites_leak_cmp);
	return v;
}

/* The heap of this process ended: what is live now leaked. */
static void sites_end(struct sites_proc *p)
{
	if (p->ended)
		return;
	free(p->leaks);
	p->leaks = sites_live_by_stack(p, &p->nleaks);
	table_free(&p->live);
	p->ended = 1;
}

/* A stream opens: a fork child copies its parent's live blocks; a later
 * image of the same process (exec) starts empty. */
static int sites_open(struct sites *s, size_t pi, const struct model_event *ev)
{
	struct sites_proc *p = &s->p[pi];
	const struct model_proc *mp = s->m->procs[pi];

	if (p->stream && p->stream != ev->stream) {
		table_free(&p->live);
		p->live_bytes = 0;
		p->ended = 0;
	} else if (!p->started && ev->stream->hdr.parent_start_ns && mp->parent != MODEL_NONE) {
		const struct sites_proc *par = &s->p[mp->parent];
		if (!par->ended) {
			if (table_copy(&p->live, &par->live) < 0)
				return -ENOMEM;
			p->live_bytes = p->peak_bytes = par->live_bytes;
			p->peak_stack = STACKS_NONE;
			p->peak_ns = ev->ts_ns;
		}
	}
	p->stream = ev->stream;
	p->started = 1;
	return 0;
}

static int sites_heap(struct sites *s, struct sites_proc *p, const struct model_event *ev)
{
	const struct stacks *st = &s->st;

	if (ev->kind == FSK_REC_ALLOC) {
		struct fsk_alloc a;
		memcpy(&a, ev->payload, sizeof(a));
		if (a.flags & FSK_AF_FAILED || !a.addr)
			return 0;
		size_t stack = stacks_get(st, ev->stream, a.stack);
		if (sites_count(p, stack, &a.size, ev->stream) < 0)
			return -ENOMEM;
		return sites_insert(p, a.addr, a.size, stack, ev->ts_ns);
	}
	if (ev->kind == FSK_REC_FREE) {
		struct fsk_free f;
		memcpy(&f, ev->payload, sizeof(f));
		sites_remove(p, f.addr);
		return 0;
	}
	struct fsk_realloc r;
	memcpy(&r, ev->payload, sizeof(r));
	if (r.flags & FSK_AF_FAILED || (!r.old_addr && !r.new_addr))
		return 0;
	if (!r.new_addr) {
		sites_remove(p, r.old_addr);
		return 0;
	}
	size_t stack = stacks_get(st, ev->stream, r.stack);
	if (sites_count(p, stack, &r.size, ev->stream) < 0)
		return -ENOMEM;
	if (r.old_addr)
		sites_remove(p, r.old_addr);
	return sites_insert(p, r.new_addr, r.size, stack, ev->ts_ns);
}

static int sites_cow_add(struct sites *s, struct sites_proc *p, const struct model_event *ev)
{
	struct fsk_fault f;
	struct sites_cow *c;
	size_t stack;
	uint64_t key, i;

	memcpy(&f, ev->payload, sizeof(f));
	if ((f.cls & FSK_FAULT_CLASS_MASK) != FSK_FAULT_COW)
		return 0;
	if (f.cls & FSK_FAULT_TRACER)
		return 0; /* the tracer's own frames and data: no site of the program's */
	stack = f.stack ? stacks_get(&s->st, ev->stream, f.stack)
			: stacks_of_ip(&s->st, ev->stream, ev->payload + offsetof(struct fsk_fault, ip));
	key = (stack == STACKS_NONE ? 0 : (uint64_t)stack + 1) << 16 | f.kind;
	if (!key)
		key = 1ull << 63; /* no stack, kind 0 */
	if (table_get(&p->cidx, key, &i)) {
		p->cow[i - 1].pages++;
		return 0;
	}
	if (vec_reserve(&p->cow, &p->ccap, p->ncow + 1, sizeof(*p->cow)) < 0 ||
	    table_put(&p->cidx, key, p->ncow + 1, NULL) < 0)
		return -ENOMEM;
	c = &p->cow[p->ncow++];
	c->stack = stack;
	c->kind = f.kind;
	c->pages = 1;
	return 0;
}

static int sites_cow_cmp(const void *a, const void *b)
{
	const struct sites_cow *x = a, *y = b;

	if (x->pages != y->pages)
		return x->pages < y->pages ? 1 : -1;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return x->stack < y->stack ? -1 : x->stack > y->stack;
}

/* Same addresses (whatever stream recorded them) and region kind. */
static int sites_cow_same(const struct stacks *st, const struct sites_cow *a, const struct sites_cow *b)
{
	if (a->kind != b->kind)
		return 0;
	if (a->stack == STACKS_NONE || b->stack == STACKS_NONE)
		return a->stack == b->stack;
	const struct stacks_stack *x = &st->v[a->stack], *y = &st->v[b->stack];
	return x->depth == y->depth && !memcmp(x->ips, y->ips, 8 * (size_t)x->depth);
}

struct sites_cow *sites_cow_children(const struct sites *s, size_t parent, size_t *n, size_t *nkids)
{
	const struct model_proc *mp = s->m->procs[parent];
	struct sites_cow *v = NULL;
	size_t cap = 0;

	*n = *nkids = 0;
	for (size_t c = 0; c < mp->nchildren; c++) {
		const struct sites_proc *k = &s->p[mp->children[c]];
		*nkids += k->ncow > 0;
		for (size_t i = 0; i < k->ncow; i++) {
			size_t j;
			for (j = 0; j < *n && !sites_cow_same(&s->st, &v[j], &k->cow[i]); j++)
				;
			if (j == *n) {
				if (vec_reserve(&v, &cap, *n + 1, sizeof(*v)) < 0) {
					free(v);
					*n = *nkids = 0;
					return NULL;
				}
				v[(*n)++] = k->cow[i];
			} else {
				v[j].pages += k->cow[i].pages;
			}
		}
	}
	if (*n)
		qsort(v, *n, sizeof(*v), sites_cow_cmp);
	return v;
}

uint64_t sites_tracer_cow_children(const struct sites *s, size_t parent)
{
	const struct model_proc *mp = s->m->procs[parent];
	uint64_t n = 0;

	for (size_t c = 0; c < mp->nchildren; c++)
		n += s->m->procs[mp->children[c]]->cow_fault_samples_tracer;
	return n;
}

static int sites_event(struct sites *s, const struct model_event *ev, const struct sites_watch *w)
{
	uint64_t v;
	struct sites_proc *p;

	if (!table_get(&s->m->streams, (uintptr_t)ev->stream, &v) || v == 0)
		return 0; /* the runner, or a stream the model never opened */
	size_t pi = (size_t)v - 1;
	p = &s->p[pi];
	switch (ev->kind) {
	case MODEL_EV_OPEN:
		return sites_open(s, pi, ev);
	case FSK_REC_ALLOC:
	case FSK_REC_FREE:
	case FSK_REC_REALLOC: {
		int e = sites_heap(s, p, ev);
		if (e == 0 && w && !p->ended)
			w->fn(w->ctx, s, pi, ev->ts_ns);
		return e;
	}
	case FSK_REC_MAP: {
		struct fsk_map m;
		struct sites_site *site;
		memcpy(&m, ev->payload, sizeof(m));
		if (m.op != FSK_MAP_MMAP || m.err)
			return 0;
		site = sites_site(&p->midx, &p->mmap, &p->nmmap, &p->mcap,
				  stacks_get(&s->st, ev->stream, m.stack));
		if (!site)
			return -ENOMEM;
		site->calls++;
		site->bytes += m.len;
		return 0;
	}
	case FSK_REC_FAULT:
		return sites_cow_add(s, p, ev);
	case FSK_REC_END: {
		struct fsk_end e;
		memcpy(&e, ev->payload, sizeof(e));
		if (e.reason != FSK_END_EXEC)
			sites_end(p);
		return 0;
	}
	case FSK_REC_WAIT: {
		struct fsk_wait wt;
		const struct model_proc *c;
		memcpy(&wt, ev->payload, sizeof(wt));
		if (wt.result > 0 && (wt.state == FSK_WS_EXITED || wt.state == FSK_WS_SIGNALED) &&
		    !wt.nowait && (c = model_find(s->m, (uint32_t)wt.result)))
			sites_end(&s->p[c->index]);
		return 0;
	}
	}
	return 0;
}

struct sites_replay {
	struct sites *s;
	const struct sites_watch *watch;
};

static int sites_replay_event(void *ctx, const struct model_event *ev)
{
	struct sites_replay *r = ctx;

	return sites_event(r->s, ev, r->watch);
}

int sites_build(struct sites *s, const struct load *l, const struct sites_watch *watch)
{
	struct sites_replay r = { s, watch };
	int e;

	memset(s, 0, sizeof(*s));
	s->m = &l->model;
	e = stacks_build(&s->st, l);
	if (e < 0)
		return e;
	s->n = s->m->n;
	s->p = calloc(s->n + 1, sizeof(*s->p));
	if (!s->p)
		return -ENOMEM;
	for (size_t i = 0; i < s->n; i++)
		s->p[i].peak_stack = STACKS_NONE;
	if ((e = load_replay(l, sites_replay_event, &r)) < 0)
		return e;
	for (size_t i = 0; i < s->n; i++) {
		struct sites_proc *p = &s->p[i];
		if (!p->ended) { /* still running or cut: live now, table kept */
			free(p->leaks);
			p->leaks = sites_live_by_stack(p, &p->nleaks);
		}
		if (p->ncow)
			qsort(p->cow, p->ncow, sizeof(*p->cow), sites_cow_cmp);
	}
	return 0;
}

void sites_free(struct sites *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct sites_proc *p = &s->p[i];
		table_free(&p->live);
		table_free(&p->idx);
		table_free(&p->midx);
		table_free(&p->cidx);
		free(p->cow);
		free(p->alloc);
		free(p->mmap);
		free(p->leaks);
	}
	free(s->p);
	stacks_free(&s->st);
	memset(s, 0, sizeof(*s));
}

struct sites_sort {
	const struct sites_proc *p;
	int by_calls;
};

static int sites_sort_cmp(const void *a, const void *b, void *ctx)
{
	const struct sites_sort *c = ctx;
	const struct sites_site *x = &c->p->alloc[*(const size_t *)a];
	const struct sites_site *y = &c->p->alloc[*(const size_t *)b];
	uint64_t kx = c->by_calls ? x->calls : x->bytes, ky = c->by_calls ? y->calls : y->bytes;

	if (kx != ky)
		return kx < ky ? 1 : -1;
	return x->stack < y->stack ? -1 : x->stack > y->stack;
}

size_t *sites_sorted(const struct sites_proc *p, int by_calls)
{
	size_t *v = p->nalloc ? malloc(p->nalloc * sizeof(*v)) : NULL;
	struct sites_sort c = { p, by_calls };

	if (!v)
		return NULL;
	for (size_t i = 0; i < p->nalloc; i++)
		v[i] = i;
	qsort_r(v, p->nalloc, sizeof(*v), sites_sort_cmp, &c);
	return v;
}
