/* timeline: see timeline.h. */
#include "timeline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "describe.h"
#include "table.h"
#include "vec.h"

#define TIMELINE_EVERY 8192     /* first snapshot interval, in events */
#define TIMELINE_SNAPS 96       /* more than this: the interval doubles */
#define TIMELINE_NEAR 4096      /* stepping back: a private checkpoint this
                                   close below the cursor */

/*
 * A snapshot is a model whose processes are shared with the snapshots
 * before and after it when no event changed them in between (most of a
 * big trace's processes are idle or over at any time): t->refs counts
 * the snapshots holding each copy. Snapshots are never modified; a seek
 * deep-copies one into cur.
 */
static void timeline_snap_free(struct timeline *t, struct timeline_snap *s)
{
	struct model *m = &s->m;

	for (size_t i = 0; i < m->n; i++) {
		uint64_t refs = 0;
		table_get(&t->refs, (uintptr_t)m->procs[i], &refs);
		if (refs > 1) {
			table_put(&t->refs, (uintptr_t)m->procs[i], refs - 1, NULL);
		} else {
			table_del(&t->refs, (uintptr_t)m->procs[i], NULL);
			model_proc_free(m->procs[i]);
		}
	}
	m->n = 0;
	model_free(m);
}

static void timeline_drop_revs_after(struct timeline *t, size_t pos)
{
	while (t->nrevs && t->revs[t->nrevs - 1].pos > pos)
		free(t->revs[--t->nrevs].r.path);
	if (t->revs_upto > pos)
		t->revs_upto = pos;
}

/* Keeps the changes p's scan just added (those after its first `from`). */
static int timeline_revs_take(struct timeline *t, const struct model_proc *p, size_t from)
{
	for (size_t k = from; k < p->nrevs; k++) {
		struct timeline_rev *x;
		if (vec_reserve(&t->revs, &t->revs_cap, t->nrevs + 1, sizeof(*t->revs)) < 0)
			return -ENOMEM;
		x = &t->revs[t->nrevs];
		x->pos = t->applied;
		x->pid = p->pid;
		x->r = p->revs[k];
		if (p->revs[k].path && !(x->r.path = strdup(p->revs[k].path)))
			return -ENOMEM;
		t->nrevs++;
	}
	return 0;
}

size_t timeline_revs_at(const struct timeline *t, size_t pos, const struct timeline_rev **first)
{
	size_t lo = 0, hi = t->nrevs, k;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->revs[mid].pos < pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (k = lo; k < t->nrevs && t->revs[k].pos == pos; k++)
		;
	*first = t->revs + lo;
	return k - lo;
}

/* Applies the next event; region changes it brings are kept the first
 * time. */
static int timeline_apply(struct timeline *t)
{
	const struct model_event *ev = &t->load.ev[t->applied];
	struct model_proc *p = NULL;
	size_t from = 0;

	if (ev->kind == FSK_REC_SCAN_END && t->applied >= t->revs_upto &&
	    (p = model_find(&t->cur, describe_pid(ev))))
		from = p->nrevs;
	if (model_apply(&t->cur, ev) < 0)
		return -ENOMEM;
	t->applied++;
	if (t->applied > t->revs_upto) {
		if (p && timeline_revs_take(t, p, from) < 0)
			return -ENOMEM;
		t->revs_upto = t->applied;
	}
	return 0;
}

static void timeline_drop_snaps_after(struct timeline *t, size_t pos)
{
	if (t->has_near && t->near_pos > pos) {
		model_free(&t->near);
		t->has_near = 0;
	}
	while (t->nsnaps && t->snaps[t->nsnaps - 1].pos > pos)
		timeline_snap_free(t, &t->snaps[--t->nsnaps]);
}

/* Keeps every other snapshot and doubles the interval: memory stays bounded
 * however long the trace. */
static void timeline_thin(struct timeline *t)
{
	size_t k = 0;

	t->every *= 2;
	for (size_t i = 0; i < t->nsnaps; i++) {
		if (t->snaps[i].pos % t->every == 0)
			t->snaps[k++] = t->snaps[i];
		else
			timeline_snap_free(t, &t->snaps[i]);
	}
	t->nsnaps = k;
}

/* s->m becomes a snapshot of cur: the scalars and tables copied, each
 * process shared with prev when it has not changed since, else copied. */
static int timeline_snap_take(struct timeline *t, struct model *d, const struct timeline_snap *prev)
{
	const struct model *c = &t->cur;

	if (model_copy_shell(d, c) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < c->n; i++) {
		struct model_proc *p;
		uint64_t refs = 0;
		if (prev && i < prev->m.n && c->procs[i]->touched <= prev->m.events)
			p = prev->m.procs[i];
		else if (!(p = model_proc_dup(c->procs[i])))
			return -ENOMEM;
		table_get(&t->refs, (uintptr_t)p, &refs);
		if (table_put(&t->refs, (uintptr_t)p, refs + 1, NULL) < 0) {
			if (!refs)
				model_proc_free(p);
			return -ENOMEM;
		}
		d->procs[d->n++] = p;
	}
	return 0;
}

static int timeline_snap(struct timeline *t)
{
	struct timeline_snap *s;

	if (t->nsnaps && t->snaps[t->nsnaps - 1].pos >= t->applied)
		return 0;
	if (vec_reserve(&t->snaps, &t->snaps_cap, t->nsnaps + 1, sizeof(*t->snaps)) < 0)
		return -ENOMEM;
	s = &t->snaps[t->nsnaps];
	s->pos = t->applied;
	if (timeline_snap_take(t, &s->m, t->nsnaps ? &t->snaps[t->nsnaps - 1] : NULL) < 0) {
		timeline_snap_free(t, s);
		return -ENOMEM;
	}
	t->nsnaps++;
	if (t->nsnaps > TIMELINE_SNAPS)
		timeline_thin(t);
	return 0;
}

/* cur becomes a copy of the newest snapshot at or before pos (or empty). */
static int timeline_restore(struct timeline *t, size_t pos)
{
	size_t i = t->nsnaps;

	while (i && t->snaps[i - 1].pos > pos)
		i--;
	model_free(&t->cur);
	t->applied = 0;
	if (t->has_near && t->near_pos <= pos && (!i || t->near_pos > t->snaps[i - 1].pos)) {
		if (model_copy(&t->cur, &t->near) < 0)
			return -ENOMEM;
		t->applied = t->near_pos;
		return 0;
	}
	if (!i) {
		model_init(&t->cur);
		return 0;
	}
	if (model_copy(&t->cur, &t->snaps[i - 1].m) < 0)
		return -ENOMEM;
	t->applied = t->snaps[i - 1].pos;
	return 0;
}

/*
 * Puts the events read since the last poll in place: sorted among
 * themselves, then merged with the old ones from the first old event that
 * sorts after the smallest new one (none, usually: a live trace grows at
 * its end). Snapshots past that point are stale.
 */
static int timeline_sort(struct timeline *t, size_t old_n)
{
	struct load *l = &t->load;
	struct model_event *tmp;
	size_t lo = 0, hi = old_n, a, b, k;

	for (size_t i = old_n; i < l->nev; i++) {
		const struct model_event *e = &l->ev[i];
		if (e->kind == FSK_REC_END && e->stream && (e->stream->hdr.flags & FSK_HF_RUNNER))
			t->runner_ended = 1;
	}
	if (l->nev == old_n)
		return 0;
	qsort(l->ev + old_n, l->nev - old_n, sizeof(*l->ev), model_event_cmp);
	if (!old_n || model_event_cmp(&l->ev[old_n - 1], &l->ev[old_n]) <= 0)
		return 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (model_event_cmp(&l->ev[mid], &l->ev[old_n]) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	tmp = malloc((old_n - lo) * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, l->ev + lo, (old_n - lo) * sizeof(*tmp));
	for (a = 0, b = old_n, k = lo; a < old_n - lo; k++) {
		if (b < l->nev && model_event_cmp(&l->ev[b], &tmp[a]) < 0)
			l->ev[k] = l->ev[b++];
		else
			l->ev[k] = tmp[a++];
	}
	free(tmp);
	timeline_drop_snaps_after(t, lo);
	timeline_drop_revs_after(t, lo);
	if (t->applied > lo)
		t->applied = (size_t)-1; /* stale: the next seek restores */
	return 0;
}

long timeline_poll(struct timeline *t, int finished)
{
	size_t old = t->load.nev;
	int e;

	if (t->finished)
		return 0;
	e = load_poll(&t->load, finished);
	if (e < 0)
		return e;
	if (timeline_sort(t, old) < 0)
		return -ENOMEM;
	t->finished = finished;
	t->cur_finished = -1;
	return (long)(t->load.nev - old);
}

int timeline_open(struct timeline *t, const char *dir, int finished)
{
	int e;

	memset(t, 0, sizeof(*t));
	model_init(&t->cur);
	t->every = TIMELINE_EVERY;
	t->cur_finished = -1;
	e = load_init(&t->load, dir);
	if (e < 0)
		return e;
	e = (int)timeline_poll(t, finished);
	return e < 0 ? e : 0;
}

int timeline_seek(struct timeline *t, size_t pos)
{
	size_t n = t->load.nev, near_at = 0;
	int fin;

	if (pos > n)
		pos = n;
	/* A short step back (",", Left held down) would replay up to a
	 * whole snapshot interval every time: keep a checkpoint just below. */
	if (t->applied != (size_t)-1 && t->applied > pos && t->applied - pos <= 2 * TIMELINE_NEAR &&
	    pos >= TIMELINE_NEAR)
		near_at = pos - pos % TIMELINE_NEAR;
	if (t->applied > pos || pos - t->applied > t->every) {
		if (timeline_restore(t, pos) < 0)
			return -ENOMEM;
		t->cur_finished = -1;
	}
	while (t->applied < pos) {
		if (timeline_apply(t) < 0)
			return -ENOMEM;
		t->cur_finished = -1;
		if (t->applied % t->every == 0 && timeline_snap(t) < 0)
			return -ENOMEM;
		if (t->applied == near_at && t->applied % t->every) {
			if (t->has_near)
				model_free(&t->near);
			t->has_near = model_copy(&t->near, &t->cur) == 0;
			t->near_pos = t->applied;
		}
	}
	t->pos = pos;
	fin = t->finished && pos == n;
	t->cur.partial = pos < n;
	if (t->cur_finished != fin) {
		if (model_finish(&t->cur, fin) < 0)
			return -ENOMEM;
		t->cur_finished = fin;
	}
	return 0;
}

uint64_t timeline_start_ns(const struct timeline *t)
{
	return t->load.nev ? t->load.ev[0].key_ns : 0;
}

uint64_t timeline_end_ns(const struct timeline *t)
{
	return t->load.nev ? t->load.ev[t->load.nev - 1].key_ns : 0;
}

uint64_t timeline_now_ns(const struct timeline *t)
{
	if (!t->pos)
		return timeline_start_ns(t);
	return t->load.ev[t->pos - 1].key_ns;
}

size_t timeline_pos_at(const struct timeline *t, uint64_t ns)
{
	size_t lo = 0, hi = t->load.nev;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->load.ev[mid].key_ns <= ns)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

size_t timeline_find_max(const struct timeline *t, size_t pos, int dir,
			 int (*match)(const struct model_event *ev, void *arg), void *arg,
			 size_t max, size_t *stop)
{
	size_t n = t->load.nev, p;

	if (dir > 0) {
		for (p = pos + 1; p <= n && p - pos <= max; p++)
			if (match(&t->load.ev[p - 1], arg))
				return p;
		if (stop)
			*stop = p - 1;
	} else {
		size_t from = pos > n ? n + 1 : pos;
		for (p = from; p-- > 1 && from - p <= max;)
			if (match(&t->load.ev[p - 1], arg))
				return p;
		if (stop)
			*stop = p + 1 > from ? from : p + 1;
	}
	return pos;
}

size_t timeline_find(const struct timeline *t, size_t pos, int dir,
		     int (*match)(const struct model_event *ev, void *arg), void *arg)
{
	return timeline_find_max(t, pos, dir, match, arg, (size_t)-1, NULL);
}

struct timeline_burst_stream {
	uint64_t pending, last;         /* unshared pages: open scan, previous scan */
	uint32_t scan_id;
	int open;
	uint64_t run_ts;                /* last COW fault of the current run */
	size_t run_pos, run_n;          /* its first fault's position, its length */
};

static int timeline_burst_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

static int timeline_burst_add(struct timeline *t, size_t pos)
{
	if (vec_reserve(&t->bursts, &t->bursts_cap, t->nbursts + 1, sizeof(*t->bursts)) < 0)
		return -ENOMEM;
	t->bursts[t->nbursts++] = pos;
	return 0;
}

/* One event of the pass: e is event pos - 1, s its stream's state. */
static int timeline_burst_event(struct timeline *t, struct timeline_burst_stream *s,
				const struct model_event *e, size_t pos)
{
	if (e->kind == FSK_REC_SCAN && e->len >= sizeof(struct fsk_scan)) {
		struct fsk_scan sc;
		memcpy(&sc, e->payload, sizeof(sc));
		s->open = 1;
		s->scan_id = sc.id;
		s->pending = 0;
	} else if (e->kind == FSK_REC_REGION && s->open && e->len >= sizeof(struct fsk_region)) {
		struct fsk_region g;
		memcpy(&g, e->payload, sizeof(g));
		s->pending += g.unshared;
	} else if (e->kind == FSK_REC_SCAN_END && s->open && e->len >= sizeof(struct fsk_scan_end)) {
		struct fsk_scan_end se;
		memcpy(&se, e->payload, sizeof(se));
		if (se.id != s->scan_id)
			return 0;
		s->open = 0;
		if (s->pending > s->last && timeline_burst_add(t, pos) < 0)
			return -ENOMEM;
		s->last = s->pending;
	} else if (e->kind == FSK_REC_FAULT && e->len >= sizeof(struct fsk_fault)) {
		struct fsk_fault f;
		memcpy(&f, e->payload, sizeof(f));
		if (f.cls != FSK_FAULT_COW)
			return 0;
		if (!s->run_n || e->ts_ns - s->run_ts > TIMELINE_BURST_GAP_NS) {
			s->run_n = 0;
			s->run_pos = pos;
		}
		s->run_ts = e->ts_ns;
		if (++s->run_n == TIMELINE_BURST_FAULTS && timeline_burst_add(t, s->run_pos) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int timeline_find_bursts(struct timeline *t)
{
	struct timeline_burst_stream *st = NULL;
	size_t nst = 0, cap = 0;
	struct table ids = { 0 };
	int err = 0;

	t->nbursts = 0;
	for (size_t i = 0; i < t->load.nev && !err; i++) {
		const struct model_event *e = &t->load.ev[i];
		uint64_t k;
		if (e->kind != FSK_REC_SCAN && e->kind != FSK_REC_REGION &&
		    e->kind != FSK_REC_SCAN_END && e->kind != FSK_REC_FAULT)
			continue;
		if (!table_get(&ids, (uintptr_t)e->stream, &k)) {
			if (vec_reserve(&st, &cap, nst + 1, sizeof(*st)) < 0 ||
			    table_put(&ids, (uintptr_t)e->stream, nst + 1, NULL) < 0) {
				err = -ENOMEM;
				break;
			}
			memset(&st[nst], 0, sizeof(*st));
			k = ++nst;
		}
		err = timeline_burst_event(t, &st[k - 1], e, i + 1);
	}
	free(st);
	table_free(&ids);
	if (err)
		return err;
	if (t->nbursts)
		qsort(t->bursts, t->nbursts, sizeof(*t->bursts), timeline_burst_cmp);
	t->bursts_nev = t->load.nev + 1;
	return 0;
}

size_t timeline_burst(struct timeline *t, size_t pos, int dir)
{
	size_t lo = 0, hi;

	if (t->bursts_nev != t->load.nev + 1) {
		if (timeline_find_bursts(t) < 0)
			return pos;
	}
	/* first burst > pos */
	hi = t->nbursts;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->bursts[mid] <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (dir > 0)
		return lo < t->nbursts ? t->bursts[lo] : pos;
	while (lo && t->bursts[lo - 1] >= pos)
		lo--;
	return lo ? t->bursts[lo - 1] : pos;
}

void timeline_free(struct timeline *t)
{
	free(t->bursts);
	timeline_drop_revs_after(t, 0);
	free(t->revs);
	timeline_drop_snaps_after(t, 0);
	while (t->nsnaps)
		timeline_snap_free(t, &t->snaps[--t->nsnaps]);
	if (t->has_near)
		model_free(&t->near);
	free(t->snaps);
	table_free(&t->refs);
	model_free(&t->cur);
	load_free(&t->load);
	memset(t, 0, sizeof(*t));
}
