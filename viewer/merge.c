/* merge: see merge.h. */
#include "merge.h"
#include "vec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A run being read: allocated when its first event is due, freed at its
 * end, so memory goes with the runs that overlap in time. */
struct merge_cur {
	const struct merge_run *run;
	uint64_t left;          /* events not read yet */
	uint64_t key, order;    /* of ev */
	int started;
	struct reader_stream rs;
	struct model_event ev;
};

/* A heap entry: the run's next event's sort key; c is NULL until read. */
struct merge_slot {
	uint64_t key, order;
	const struct merge_run *run;
	struct merge_cur *c;
};

void merge_ev_open(struct model_event *e, struct reader_stream *s)
{
	const struct fsk_header *h = &s->hdr;

	memset(e, 0, sizeof(*e));
	e->stream = s;
	e->kind = MODEL_EV_OPEN;
	e->ts_ns = h->start_ns;
	/* A fork child's image starts at the fork: its heap copy is exact. */
	e->key_ns = h->parent_start_ns && h->parent_start_ns < h->start_ns
		? h->parent_start_ns : h->start_ns;
}

void merge_ev_rec(struct model_event *e, struct reader_stream *s, const struct reader_rec *r)
{
	memset(e, 0, sizeof(*e));
	e->stream = s;
	e->kind = r->type;
	e->tid = r->tid;
	e->ts_ns = e->key_ns = r->ts_ns;
	e->off = r->off;
	e->len = r->len;
	e->payload = r->payload;
}

int merge_add(struct merge *m, struct reader_stream *s, const struct model_event *ev)
{
	struct merge_run *r = m->n ? &m->runs[m->n - 1] : NULL;

	if (r && r->s == s && ev->kind != MODEL_EV_OPEN && ev->key_ns >= m->last_key &&
	    s->nctx == m->last_nctx) {
		r->n++;
	} else {
		if (vec_reserve(&m->runs, &m->cap, m->n + 1, sizeof(*m->runs)) < 0)
			return -ENOMEM;
		r = &m->runs[m->n++];
		memset(r, 0, sizeof(*r));
		r->key = ev->key_ns;
		r->order = ev->order;
		r->n = 1;
		r->s = s;
		if (ev->kind == MODEL_EV_OPEN) {
			r->open = 1; /* read from the first record with a fresh context */
			r->mark.off = s->hdr.hdr_size;
		} else {
			reader_mark_get(s, ev->off, &r->mark);
		}
	}
	r->end = s->off;
	m->last_key = ev->key_ns;
	m->last_nctx = s->nctx;
	return 0;
}

void merge_free(struct merge *m)
{
	free(m->runs);
	memset(m, 0, sizeof(*m));
}

/* The cursor's next event into c->ev: 1, 0 when the run is done, -EIO. */
static int merge_read(struct merge_cur *c)
{
	const struct merge_run *r = c->run;
	struct reader_rec rec;

	if (!c->left)
		return 0;
	if (!c->started) {
		c->started = 1;
		reader_stream_resume(&c->rs, r->s, &r->mark);
		if (r->end > r->mark.off && r->end - r->mark.off < c->rs.window)
			c->rs.window = (size_t)(r->end - r->mark.off); /* one read */
		if (r->open) {
			merge_ev_open(&c->ev, r->s);
			goto done;
		}
	}
	if (reader_next(&c->rs, &rec) <= 0)
		return -EIO; /* the file changed since it was indexed */
	merge_ev_rec(&c->ev, r->s, &rec);
done:
	c->ev.order = r->order + (r->n - c->left);
	c->left--;
	c->key = c->ev.key_ns;
	c->order = c->ev.order;
	return 1;
}

static int merge_less(const struct merge_slot *a, const struct merge_slot *b)
{
	return a->key != b->key ? a->key < b->key : a->order < b->order;
}

static void merge_down(struct merge_iter *it, size_t i)
{
	struct merge_slot *h = it->heap;

	for (;;) {
		size_t l = 2 * i + 1, k = i;
		if (l < it->nheap && merge_less(&h[l], &h[k]))
			k = l;
		if (l + 1 < it->nheap && merge_less(&h[l + 1], &h[k]))
			k = l + 1;
		if (k == i)
			return;
		struct merge_slot t = h[i];
		h[i] = h[k];
		h[k] = t;
		i = k;
	}
}

static void merge_cur_free(struct merge_cur *c)
{
	if (c && c->started)
		reader_resume_end(&c->rs);
	free(c);
}

int merge_begin(struct merge_iter *it, const struct merge *m)
{
	memset(it, 0, sizeof(*it));
	it->heap = calloc(m->n + 1, sizeof(*it->heap));
	if (!it->heap)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++) {
		struct merge_slot *s = &it->heap[it->nheap++];
		s->run = &m->runs[i];
		s->key = m->runs[i].key;
		s->order = m->runs[i].order;
	}
	for (size_t i = it->nheap / 2; i-- > 0;)
		merge_down(it, i);
	return 0;
}

int merge_next(struct merge_iter *it, struct model_event *ev)
{
	struct merge_slot *t = &it->heap[0];
	int k;

	if (it->advance) { /* the event returned last came from the top */
		it->advance = 0;
		k = merge_read(t->c);
		if (k < 0)
			return k;
		if (k == 0) {
			merge_cur_free(t->c);
			it->heap[0] = it->heap[--it->nheap];
		} else {
			t->key = t->c->key;
			t->order = t->c->order;
		}
		merge_down(it, 0);
	}
	if (!it->nheap)
		return 0;
	if (!t->c) {
		if (!(t->c = calloc(1, sizeof(*t->c))))
			return -ENOMEM;
		t->c->run = t->run;
		t->c->left = t->run->n;
		k = merge_read(t->c);
		if (k <= 0 || t->c->key != t->key || t->c->order != t->order)
			return -EIO;
	}
	*ev = t->c->ev;
	it->advance = 1;
	return 1;
}

void merge_end(struct merge_iter *it)
{
	for (size_t i = 0; i < it->nheap; i++)
		merge_cur_free(it->heap[i].c);
	free(it->heap);
	memset(it, 0, sizeof(*it));
}
