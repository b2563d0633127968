/* stacks: see stacks.h. */
#include "stacks.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vec.h"

static struct stacks_stream *stacks_stream(struct stacks *st, const struct reader_stream *s)
{
	uint64_t v;

	if (table_get(&st->by_stream, (uintptr_t)s, &v))
		return &st->streams[v - 1];
	if (vec_reserve(&st->streams, &st->scap, st->nstreams + 1, sizeof(*st->streams)) < 0 ||
	    table_put(&st->by_stream, (uintptr_t)s, st->nstreams + 1, NULL) < 0)
		return NULL;
	memset(&st->streams[st->nstreams], 0, sizeof(*st->streams));
	st->streams[st->nstreams].s = s;
	st->streams[st->nstreams].parent = STACKS_NONE;
	st->streams[st->nstreams].group = STACKS_NONE;
	return &st->streams[st->nstreams++];
}

/* Puts module mod in the stream's list, kept sorted by base. */
static int stacks_module_link(struct stacks *st, struct stacks_stream *ss, size_t mod)
{
	size_t k;

	if (vec_reserve(&ss->mods, &ss->cap, ss->nmods + 1, sizeof(*ss->mods)) < 0)
		return -ENOMEM;
	for (k = ss->nmods; k > 0 && st->mods[ss->mods[k - 1]].base > st->mods[mod].base; k--)
		ss->mods[k] = ss->mods[k - 1];
	ss->mods[k] = mod;
	ss->nmods++;
	return 0;
}

/* Does the stream's list have a module at base (with that path, unless
 * path is NULL)? */
static int stacks_module_has(const struct stacks *st, const struct stacks_stream *ss, uint64_t base,
			     const char *path)
{
	for (size_t k = 0; k < ss->nmods; k++) {
		const struct stacks_module *o = &st->mods[ss->mods[k]];
		if (o->base == base && (!path || !strcmp(o->path, path)))
			return 1;
	}
	return 0;
}

static int stacks_module_add(struct stacks *st, struct stacks_stream *ss, const struct model_event *ev)
{
	struct fsk_module m;
	uint32_t pos = sizeof(m);
	char *path = NULL;

	memcpy(&m, ev->payload, sizeof(m));
	if (reader_str(ev->payload, ev->len, &pos, &path) < 0)
		return -ENOMEM;
	if (stacks_module_has(st, ss, m.base, path)) {
		free(path); /* the same object again (a rescan) */
		return 0;
	}
	if (vec_reserve(&st->mods, &st->mcap, st->nmods + 1, sizeof(*st->mods)) < 0) {
		free(path);
		return -ENOMEM;
	}
	struct stacks_module *d = &st->mods[st->nmods];
	d->path = path;
	d->base = m.base;
	d->bias = m.bias;
	d->build_id_len = m.build_id_len > 20 ? 20 : m.build_id_len;
	memcpy(d->build_id, m.build_id, sizeof(d->build_id));
	if (stacks_module_link(st, ss, st->nmods) < 0) {
		free(path);
		return -ENOMEM;
	}
	st->nmods++;
	return 0;
}

static int stacks_stack_add(struct stacks *st, struct stacks_stream *ss, const struct model_event *ev)
{
	struct fsk_stack s;

	memcpy(&s, ev->payload, sizeof(s));
	if (!s.id || (uint64_t)s.depth * 8 > ev->len - sizeof(s))
		return 0;
	if (vec_reserve(&st->v, &st->cap, st->n + 1, sizeof(*st->v)) < 0)
		return -ENOMEM;
	st->v[st->n].ips = ev->payload + sizeof(s);
	st->v[st->n].depth = s.depth;
	st->v[st->n].exact = 0;
	st->v[st->n].owned = 0;
	st->v[st->n].stream = (size_t)(ss - st->streams);
	st->v[st->n].id = s.id;
	if (table_put(&ss->ids, s.id, st->n + 1, NULL) < 0)
		return -ENOMEM;
	st->n++;
	return 0;
}

static int stacks_is_self(const struct stacks *st, size_t stream, uint64_t ip)
{
	size_t m = stacks_module_of(st, stream, ip);
	const char *b;

	if (m == STACKS_NONE)
		return 0;
	b = strrchr(st->mods[m].path, '/');
	return !strncmp(b ? b + 1 : st->mods[m].path, "libforkscope", 12);
}

/* Return addresses in libforkscope.so are forkscope's own frames (the
 * wrapper of main that tells a return from exit()), not the program's: a
 * stack keeps its own copy without them. */
static int stacks_hide_self(struct stacks *st)
{
	for (size_t i = 0; i < st->n; i++) {
		struct stacks_stack *v = &st->v[i];
		uint32_t kept = 0;
		unsigned char *c;

		for (uint32_t k = 0; k < v->depth; k++)
			kept += !stacks_is_self(st, v->stream, stacks_ip(st, i, k));
		if (kept == v->depth || kept == 0)
			continue;
		if (!(c = malloc((size_t)kept * 8)))
			return -ENOMEM;
		kept = 0;
		for (uint32_t k = 0; k < v->depth; k++)
			if (!stacks_is_self(st, v->stream, stacks_ip(st, i, k)))
				memcpy(c + 8 * (size_t)kept++, v->ips + 8 * (size_t)k, 8);
		v->ips = c;
		v->depth = kept;
		v->owned = 1;
	}
	return 0;
}

static const struct stacks *stacks_sorting;

/* Streams with a header by pid, then start time. */
static int stacks_pid_cmp(const void *a, const void *b)
{
	const struct fsk_header *x = &stacks_sorting->streams[*(const size_t *)a].s->hdr;
	const struct fsk_header *y = &stacks_sorting->streams[*(const size_t *)b].s->hdr;

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return x->start_ns < y->start_ns ? -1 : x->start_ns > y->start_ns;
}

/* By start time only: a parent starts before its children. */
static int stacks_start_cmp(const void *a, const void *b)
{
	const struct fsk_header *x = &stacks_sorting->streams[*(const size_t *)a].s->hdr;
	const struct fsk_header *y = &stacks_sorting->streams[*(const size_t *)b].s->hdr;

	return x->start_ns < y->start_ns ? -1 : x->start_ns > y->start_ns;
}

/* The stream that forked the one of header h: pid h->ppid's image that was
 * running at h->parent_start_ns, started before h (so links never loop);
 * STACKS_NONE when the trace has none. by_pid: n indexes, stacks_pid_cmp
 * order. */
static size_t stacks_parent_of(const struct stacks *st, const size_t *by_pid, size_t n,
			       const struct fsk_header *h)
{
	size_t lo = 0, hi = n;

	while (lo < hi) { /* the first stream after (ppid, parent_start_ns) */
		size_t mid = (lo + hi) / 2;
		const struct fsk_header *m = &st->streams[by_pid[mid]].s->hdr;
		if (m->pid < h->ppid || (m->pid == h->ppid && m->start_ns <= h->parent_start_ns))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return STACKS_NONE;
	const struct fsk_header *p = &st->streams[by_pid[lo - 1]].s->hdr;
	return p->pid == h->ppid && p->start_ns < h->start_ns ? by_pid[lo - 1] : STACKS_NONE;
}

/* Links every fork child's stream to its parent's, gives it the parent's
 * modules after its own, and gathers the ids of each stack group
 * (trace.h, "Stack ids"). */
static int stacks_inherit(struct stacks *st, const struct load *l)
{
	size_t *by_pid, *by_start, n = 0;
	int e = 0;

	for (size_t i = 0; i < l->dir.n; i++)
		if (l->dir.streams[i]->hdr.version && !stacks_stream(st, l->dir.streams[i]))
			return -ENOMEM;
	by_pid = malloc((st->nstreams + 1) * sizeof(*by_pid));
	by_start = malloc((st->nstreams + 1) * sizeof(*by_start));
	if (!by_pid || !by_start) {
		free(by_pid);
		free(by_start);
		return -ENOMEM;
	}
	for (size_t i = 0; i < st->nstreams; i++)
		if (st->streams[i].s->hdr.version)
			by_pid[n] = by_start[n] = i, n++;
	stacks_sorting = st;
	qsort(by_pid, n, sizeof(*by_pid), stacks_pid_cmp);
	qsort(by_start, n, sizeof(*by_start), stacks_start_cmp);
	for (size_t i = 0; i < n && !e; i++) {
		struct stacks_stream *ss = &st->streams[by_start[i]];
		const struct fsk_header *h = &ss->s->hdr;
		if (!h->stack_table || !h->parent_start_ns)
			continue;
		ss->parent = stacks_parent_of(st, by_pid, n, h);
		if (ss->parent == STACKS_NONE)
			continue;
		/* the parent's list and group are complete: it started earlier */
		struct stacks_stream *ps = &st->streams[ss->parent];
		for (size_t k = 0; k < ps->nmods && !e; k++)
			if (!stacks_module_has(st, ss, st->mods[ps->mods[k]].base, NULL))
				e = stacks_module_link(st, ss, ps->mods[k]);
		if (ps->group == STACKS_NONE)
			ps->group = ss->parent;
		ss->group = ps->group;
	}
	free(by_pid);
	free(by_start);
	/* an id has one STACK record in its group; should a damaged trace
	 * have more, the first one read wins */
	for (size_t i = 0; i < st->n && !e; i++) {
		size_t g = st->streams[st->v[i].stream].group;
		uint64_t v;
		if (g != STACKS_NONE && st->v[i].id && !table_get(&st->streams[g].gids, st->v[i].id, &v) &&
		    table_put(&st->streams[g].gids, st->v[i].id, i + 1, NULL) < 0)
			e = -ENOMEM;
	}
	return e;
}

int stacks_build(struct stacks *st, const struct load *l)
{
	int e;

	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < l->nev; i++) {
		const struct model_event *ev = &l->ev[i];
		struct stacks_stream *ss;
		int e = 0;

		if (ev->kind != FSK_REC_STACK && ev->kind != FSK_REC_MODULE)
			continue;
		if (!(ss = stacks_stream(st, ev->stream)))
			return -ENOMEM;
		if (ev->kind == FSK_REC_STACK)
			e = stacks_stack_add(st, ss, ev);
		else
			e = stacks_module_add(st, ss, ev);
		if (e < 0)
			return e;
	}
	if ((e = stacks_inherit(st, l)) < 0)
		return e;
	return stacks_hide_self(st);
}

void stacks_free(struct stacks *st)
{
	for (size_t i = 0; i < st->nmods; i++)
		free(st->mods[i].path);
	for (size_t i = 0; i < st->n; i++)
		if (st->v[i].owned)
			free((void *)st->v[i].ips);
	for (size_t i = 0; i < st->nstreams; i++) {
		free(st->streams[i].mods);
		table_free(&st->streams[i].ids);
		table_free(&st->streams[i].gids);
		table_free(&st->streams[i].ips);
	}
	free(st->mods);
	free(st->v);
	free(st->streams);
	table_free(&st->by_stream);
	memset(st, 0, sizeof(*st));
}

size_t stacks_get(const struct stacks *st, const struct reader_stream *s, uint32_t id)
{
	const struct stacks_stream *ss;
	uint64_t v;

	if (!id || !table_get(&st->by_stream, (uintptr_t)s, &v))
		return STACKS_NONE;
	ss = &st->streams[v - 1];
	if (table_get(&ss->ids, id, &v) ||
	    (ss->group != STACKS_NONE && table_get(&st->streams[ss->group].gids, id, &v)))
		return (size_t)v - 1;
	return STACKS_NONE;
}

size_t stacks_of_ip(struct stacks *st, const struct reader_stream *s, const unsigned char *ip_le)
{
	struct stacks_stream *ss = stacks_stream(st, s);
	uint64_t ip, v;

	if (!ss)
		return STACKS_NONE;
	memcpy(&ip, ip_le, 8);
	if (ip + 1 == 0)
		return STACKS_NONE; /* not a key the table can hold */
	if (table_get(&ss->ips, ip + 1, &v))
		return (size_t)v - 1;
	/* a copy: a streamed load's payloads do not outlive the event */
	unsigned char *copy = malloc(8);
	if (!copy || vec_reserve(&st->v, &st->cap, st->n + 1, sizeof(*st->v)) < 0 ||
	    table_put(&ss->ips, ip + 1, st->n + 1, NULL) < 0) {
		free(copy);
		return STACKS_NONE;
	}
	memcpy(copy, ip_le, 8);
	st->v[st->n].ips = copy;
	st->v[st->n].depth = 1;
	st->v[st->n].exact = 1;
	st->v[st->n].owned = 1;
	st->v[st->n].stream = (size_t)(ss - st->streams);
	st->v[st->n].id = 0;
	return st->n++;
}

uint64_t stacks_ip(const struct stacks *st, size_t stack, uint32_t k)
{
	uint64_t ip;

	memcpy(&ip, st->v[stack].ips + 8 * (size_t)k, 8);
	return ip;
}

size_t stacks_module_of(const struct stacks *st, size_t stream, uint64_t ip)
{
	const struct stacks_stream *ss = &st->streams[stream];
	size_t lo = 0, hi = ss->nmods;

	while (lo < hi) { /* first module with base > ip */
		size_t mid = (lo + hi) / 2;
		if (st->mods[ss->mods[mid]].base <= ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? ss->mods[lo - 1] : STACKS_NONE;
}
