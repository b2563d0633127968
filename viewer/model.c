/* model: applying events, see model.h. model_finish() is in derive.c. */
#include "model.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "regions_diff.h"
#include "vec.h"

int model_event_cmp(const void *a, const void *b)
{
	const struct model_event *x = a, *y = b;

	if (x->key_ns != y->key_ns)
		return x->key_ns < y->key_ns ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

void model_init(struct model *m)
{
	memset(m, 0, sizeof(*m));
}

static void model_scan_clear(struct model_scan *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].path);
	s->n = 0;
}

static void model_scan_free(struct model_scan *s)
{
	model_scan_clear(s);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static void model_image_free(struct model_image *im)
{
	free(im->exe);
	reader_strv_free(im->argv);
	free(im->exec_path);
	reader_strv_free(im->exec_argv);
	memset(im, 0, sizeof(*im));
}

void model_proc_free(struct model_proc *p)
{
	for (size_t k = 0; k < p->nimages; k++)
		model_image_free(&p->images[k]);
	free(p->images);
	free(p->children);
	heap_free_all(&p->heap);
	model_scan_free(&p->cur);
	model_scan_free(&p->pending);
	regions_diff_free(p);
	free(p);
}

void model_free(struct model *m)
{
	for (size_t i = 0; i < m->n; i++)
		model_proc_free(m->procs[i]);
	free(m->procs);
	table_free(&m->pids);
	table_free(&m->streams);
	free(m->order);
	free(m->roots);
	memset(m, 0, sizeof(*m));
}

struct model_proc *model_find(const struct model *m, uint32_t pid)
{
	uint64_t v;

	if (!table_get(&m->pids, (uint64_t)pid + 1, &v))
		return NULL;
	return m->procs[v - 1];
}

const struct model_image *model_image_last(const struct model_proc *p)
{
	return &p->images[p->nimages - 1];
}

/* A process whose pid may be taken by a new one: it ended for good. */
static int model_proc_over(const struct model_proc *p)
{
	const struct model_image *im = model_image_last(p);

	return p->reaped || p->exit_rec ||
	       (im->end_seen && im->end_reason != FSK_END_EXEC && im->end_reason != FSK_END_STOPPED);
}

/* Appends an image with copies of exe and argv; NULL on ENOMEM. */
static struct model_image *model_image_add(struct model_proc *p, const char *exe,
					   char *const *argv, uint64_t t_ns)
{
	struct model_image *im;

	if (vec_reserve(&p->images, &p->cap, p->nimages + 1, sizeof(*p->images)) < 0)
		return NULL;
	im = &p->images[p->nimages];
	memset(im, 0, sizeof(*im));
	im->exe = strdup(exe ? exe : "");
	im->argv = reader_strv_dup(argv);
	if (!im->exe || !im->argv) {
		model_image_free(im);
		return NULL;
	}
	im->t_ns = t_ns;
	im->last_ns = t_ns;
	p->nimages++;
	return im;
}

/* A new process entry for pid, untraced until a stream of its own opens;
 * its first image is a placeholder copy of exe/argv. */
static struct model_proc *model_proc_new(struct model *m, uint32_t pid, uint32_t ppid,
					 uint64_t t_ns, const char *exe, char *const *argv,
					 const char *reason)
{
	struct model_proc *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	if (vec_reserve(&m->procs, &m->cap, m->n + 1, sizeof(*m->procs)) < 0)
		goto fail;
	p->pid = pid;
	p->ppid = ppid;
	p->start_ns = t_ns;
	p->untraced_reason = reason;
	p->parent = MODEL_NONE;
	p->index = m->n;
	if (!model_image_add(p, exe, argv, t_ns))
		goto fail;
	p->images[0].untraced_reason = reason;
	if (table_put(&m->pids, (uint64_t)pid + 1, m->n + 1, NULL) < 0) {
		model_image_free(&p->images[0]);
		goto fail;
	}
	m->procs[m->n++] = p;
	return p;
fail:
	free(p->images);
	free(p);
	return NULL;
}

/* Fills a placeholder image from a stream header. */
static int model_image_set(struct model_image *im, const struct reader_stream *s)
{
	char *exe = strdup(s->exe ? s->exe : "");
	char **argv = reader_strv_dup(s->argv);

	if (!exe || !argv) {
		free(exe);
		reader_strv_free(argv);
		return -ENOMEM;
	}
	free(im->exe);
	reader_strv_free(im->argv);
	im->exe = exe;
	im->argv = argv;
	im->stream = s;
	im->seq = s->seq;
	im->flags = s->hdr.flags;
	im->t_ns = s->hdr.start_ns;
	im->last_ns = s->hdr.start_ns;
	im->untraced_reason = NULL;
	return 0;
}

/*
 * A stream opens: a fork child's first image, an exec'd image of a known
 * process, or a new process (also when a pid is reused after its previous
 * owner ended).
 */
static int model_open(struct model *m, struct reader_stream *s)
{
	const struct fsk_header *h = &s->hdr;
	struct model_proc *p = model_find(m, h->pid);
	struct model_image *im;
	int fresh = 0;

	if (h->flags & FSK_HF_RUNNER) {
		m->has_runner = 1;
		m->runner_pid = h->pid;
		m->runner_start_ns = h->start_ns;
		return table_put(&m->streams, (uintptr_t)s, 0, NULL) < 0 ? -ENOMEM : 0;
	}
	if (!p || model_proc_over(p)) {
		p = model_proc_new(m, h->pid, h->ppid, h->start_ns, NULL, NULL, NULL);
		if (!p)
			return -ENOMEM;
		fresh = 1;
	}
	p->touched = m->events;
	im = &p->images[p->nimages - 1];
	if (fresh || !im->stream) {
		/* The placeholder of a process we heard of becomes real. */
		if (model_image_set(im, s) < 0)
			return -ENOMEM;
		if (!p->traced || fresh)
			p->start_ns = h->start_ns;
		p->traced = 1;
		p->untraced_reason = NULL;
		if (h->parent_start_ns && p->nimages == 1) {
			struct model_proc *parent = model_find(m, p->ppid);
			if (parent && parent != p && !parent->heap.ended &&
			    heap_inherit(&p->heap, &parent->heap) < 0)
				return -ENOMEM;
		}
	} else {
		im = model_image_add(p, NULL, NULL, h->start_ns);
		if (!im || model_image_set(im, s) < 0)
			return -ENOMEM;
		heap_exec(&p->heap);
		model_scan_clear(&p->cur);
		regions_diff_reset(p);
		p->pending_open = 0;
	}
	if (h->flags & FSK_HF_MALLOC)
		p->malloc_traced = 1;
	p->heap.other_malloc = !!(h->flags & FSK_HF_MALLOC_OTHER);
	return table_put(&m->streams, (uintptr_t)s, p->index + 1, NULL) < 0 ? -ENOMEM : 0;
}

/* The process and image a record's stream belongs to; opens the stream
 * first when a record sorted before its header (clock skew). */
static int model_locate(struct model *m, const struct model_event *ev,
			struct model_proc **pp, struct model_image **imp)
{
	uint64_t v;

	*pp = NULL;
	*imp = NULL;
	if (!table_get(&m->streams, (uintptr_t)ev->stream, &v)) {
		int e = model_open(m, ev->stream);
		if (e < 0)
			return e;
		table_get(&m->streams, (uintptr_t)ev->stream, &v);
	}
	if (v == 0)
		return 0; /* the runner */
	*pp = m->procs[v - 1];
	for (size_t i = (*pp)->nimages; i-- > 0;) {
		if ((*pp)->images[i].stream == ev->stream) {
			*imp = &(*pp)->images[i];
			break;
		}
	}
	return 0;
}

/* FORK/SPAWN parent side: the child pid becomes (or already is) a process
 * created by p; without a stream of its own it stays untraced. */
static int model_child(struct model *m, uint32_t ppid, uint32_t pid, uint64_t ts,
		       const char *exe, char *const *argv, const char *reason)
{
	struct model_proc *c = model_find(m, pid);

	if (pid == ppid || (m->has_runner && pid == m->runner_pid))
		return 0;
	if (!c || model_proc_over(c)) {
		c = model_proc_new(m, pid, ppid, ts, exe, argv, reason);
		if (!c)
			return -ENOMEM;
	}
	c->ppid = ppid;
	c->creator_known = 1;
	c->touched = m->events;
	return 0;
}

/* EXEC and SPAWN; p is NULL for the runner's SPAWN of CMD. */
static int model_exec_rec(struct model *m, struct model_proc *p, struct model_image *im,
			  const struct model_event *ev)
{
	struct fsk_exec x;
	uint32_t pos = sizeof(x);
	char *path = NULL, **argv = NULL;
	int e;

	memcpy(&x, ev->payload, sizeof(x));
	if (reader_str(ev->payload, ev->len, &pos, &path) < 0 ||
	    reader_strv(ev->payload, ev->len, &pos, x.argc, &argv) < 0) {
		free(path);
		return 0; /* the reader checked it: only ENOMEM lands here */
	}
	if (ev->kind == FSK_REC_SPAWN) {
		e = 0;
		if (x.child_pid) {
			if (p)
				p->spawns++;
			e = model_child(m, p ? p->pid : m->runner_pid, x.child_pid, ev->ts_ns,
					path, argv,
					"spawned child wrote no stream (static or setuid "
					"binary, or the preload was dropped)");
		}
		free(path);
		reader_strv_free(argv);
		return e;
	}
	if (!im) {
		free(path);
		reader_strv_free(argv);
		return 0;
	}
	free(im->exec_path);
	reader_strv_free(im->exec_argv);
	im->exec_path = path;
	im->exec_argv = argv;
	im->exec_pending = 1;
	im->exec_flags = x.flags;
	im->exec_ts = ev->ts_ns;
	return 0;
}

static int model_wait_rec(struct model *m, uint32_t reaper, struct model_proc *p,
			  const struct model_event *ev)
{
	struct fsk_wait w;
	struct model_proc *c;

	memcpy(&w, ev->payload, sizeof(w));
	if (p) {
		p->waits++;
		p->wait_polls += w.polls;
	}
	if (w.result <= 0 || w.state == FSK_WS_NONE)
		return 0;
	c = model_find(m, (uint32_t)w.result);
	if (!c || (c->reaped && (w.state == FSK_WS_EXITED || w.state == FSK_WS_SIGNALED))) {
		const char *why = "seen only in a wait (no stream, no fork record)";
		c = model_proc_new(m, (uint32_t)w.result, reaper, ev->ts_ns, NULL, NULL, why);
		if (!c)
			return -ENOMEM;
		c->creator_known = !(m->has_runner && reaper == m->runner_pid);
	}
	c->touched = m->events;
	switch (w.state) {
	case FSK_WS_STOPPED:
		c->stopped++;
		break;
	case FSK_WS_CONTINUED:
		c->continued++;
		break;
	case FSK_WS_EXITED:
	case FSK_WS_SIGNALED:
		c->reaped = 1;
		c->reaped_by = reaper;
		c->reap_ts = ev->ts_ns;
		c->reap = w;
		heap_end(&c->heap);
		break;
	}
	return 0;
}

static int model_region_rec(struct model_proc *p, const struct model_event *ev)
{
	struct model_scan *s = &p->pending;
	struct model_region *r;
	uint32_t pos = sizeof(struct fsk_region);

	if (!p->pending_open)
		return 0;
	if (vec_reserve(&s->v, &s->cap, s->n + 1, sizeof(*s->v)) < 0)
		return -ENOMEM;
	r = &s->v[s->n];
	memcpy(&r->r, ev->payload, sizeof(r->r));
	if (reader_str(ev->payload, ev->len, &pos, &r->path) < 0)
		return -ENOMEM;
	if (!r->path[0]) {
		free(r->path);
		r->path = NULL;
	}
	s->n++;
	return 0;
}

static int model_scan_rec(struct model_proc *p, const struct model_event *ev)
{
	int e = 0;

	if (ev->kind == FSK_REC_SCAN) {
		struct fsk_scan sc;
		memcpy(&sc, ev->payload, sizeof(sc));
		model_scan_clear(&p->pending);
		p->pending.id = sc.id;
		p->pending.trigger = sc.trigger;
		p->pending.ts_ns = ev->ts_ns;
		p->pending_open = 1;
	} else {
		struct fsk_scan_end se;
		struct model_scan t;
		memcpy(&se, ev->payload, sizeof(se));
		if (!p->pending_open || se.id != p->pending.id)
			return 0;
		if (p->pending.trigger == FSK_SCAN_EXIT)
			p->exit_scan_end_ns = p->pending.ts_ns + se.cost_ns;
		/* The first scan of an image is where its story starts: only
		 * later scans have changes. */
		if (p->cur.n)
			e = regions_diff_scan(p, &p->cur, &p->pending);
		t = p->cur;
		p->cur = p->pending;
		p->pending = t;
		model_scan_clear(&p->pending);
		p->pending_open = 0;
	}
	return e;
}

static void model_heap_rec(struct model_proc *p, const struct model_event *ev)
{
	p->heap.sample_bytes = ev->stream->sample_bytes;
	if (ev->kind == FSK_REC_ALLOC) {
		struct fsk_alloc a;
		memcpy(&a, ev->payload, sizeof(a));
		heap_alloc(&p->heap, a.addr, a.size, a.flags);
	} else if (ev->kind == FSK_REC_FREE) {
		struct fsk_free f;
		memcpy(&f, ev->payload, sizeof(f));
		if (f.fn == FSK_FN_REALLOC || f.fn == FSK_FN_REALLOCARRAY)
			heap_release(&p->heap, f.addr);
		else
			heap_free(&p->heap, f.addr);
	} else {
		struct fsk_realloc r;
		memcpy(&r, ev->payload, sizeof(r));
		heap_realloc(&p->heap, r.old_addr, r.new_addr, r.size, r.flags);
	}
}

static void model_end_rec(struct model *m, struct model_proc *p, struct model_image *im,
			  const struct model_event *ev)
{
	struct fsk_end e;

	memcpy(&e, ev->payload, sizeof(e));
	if (!p) {
		m->runner_end_ns = ev->ts_ns;
		return;
	}
	im->end_seen = 1;
	im->end_reason = e.reason;
	im->end_dropped = e.dropped;
	if (e.reason != FSK_END_EXEC)
		heap_end(&p->heap);
}

/* Records of a known type whose effect is a counter or a flag. */
static void model_misc_rec(struct model_proc *p, struct model_image *im,
			   const struct model_event *ev)
{
	switch (ev->kind) {
	case FSK_REC_BRK:
		p->brk_moves++;
		break;
	case FSK_REC_MAP:
		p->maps++;
		break;
	case FSK_REC_EXEC_FAIL:
		p->exec_fails++;
		im->exec_pending = 0;
		if (im->end_seen && im->end_reason == FSK_END_EXEC)
			im->end_seen = 0; /* that END is superseded */
		break;
	case FSK_REC_THREAD: {
		struct fsk_thread t;
		memcpy(&t, ev->payload, sizeof(t));
		if (t.what == FSK_THREAD_START)
			p->threads++;
		break;
	}
	case FSK_REC_DROPPED: {
		struct fsk_dropped d;
		memcpy(&d, ev->payload, sizeof(d));
		im->dropped += d.records;
		break;
	}
	case FSK_REC_FAULT: {
		struct fsk_fault f;
		memcpy(&f, ev->payload, sizeof(f));
		p->faults++;
		if ((f.cls & FSK_FAULT_CLASS_MASK) == FSK_FAULT_COW) {
			p->cow_fault_samples++;
			p->cow_fault_samples_tracer += (f.cls & FSK_FAULT_TRACER) != 0;
		}
		break;
	}
	}
}

int model_apply(struct model *m, const struct model_event *ev)
{
	struct model_proc *p;
	struct model_image *im;
	int e = 0;

	m->events++;
	if (ev->ts_ns > m->last_ns)
		m->last_ns = ev->ts_ns;
	if (ev->kind == MODEL_EV_OPEN) {
		uint64_t v;
		if (table_get(&m->streams, (uintptr_t)ev->stream, &v))
			return 0;
		return model_open(m, ev->stream);
	}
	e = model_locate(m, ev, &p, &im);
	if (e < 0)
		return e;
	if (!p) { /* the runner's own stream: CMD, its reaps and its end */
		if (ev->kind == FSK_REC_SPAWN)
			return model_exec_rec(m, NULL, NULL, ev);
		if (ev->kind == FSK_REC_WAIT)
			return model_wait_rec(m, m->runner_pid, NULL, ev);
		if (ev->kind == FSK_REC_END)
			model_end_rec(m, NULL, NULL, ev);
		return 0;
	}
	if (!im)
		return 0;
	p->touched = m->events;
	im->nrecs++;
	if (ev->ts_ns > im->last_ns)
		im->last_ns = ev->ts_ns;
	switch (ev->kind) {
	case FSK_REC_ALLOC:
	case FSK_REC_FREE:
	case FSK_REC_REALLOC:
		e = regions_diff_hint(p, ev);
		model_heap_rec(p, ev);
		break;
	case FSK_REC_FORK: {
		struct fsk_fork f;
		memcpy(&f, ev->payload, sizeof(f));
		if (f.side == FSK_SIDE_PARENT && f.child_pid) {
			p->forks++;
			e = model_child(m, p->pid, f.child_pid, ev->ts_ns, im->exe, im->argv,
					"forked child wrote no stream");
		} else if (f.side == FSK_SIDE_PARENT && f.err) {
			p->fork_fails++;
			p->fork_err = f.err;
		}
		break;
	}
	case FSK_REC_SPAWN:
	case FSK_REC_EXEC:
		e = model_exec_rec(m, p, im, ev);
		break;
	case FSK_REC_EXIT: {
		struct fsk_exit x;
		memcpy(&x, ev->payload, sizeof(x));
		if (!p->exit_rec) {
			p->exit_rec = 1;
			p->exit_code = x.code;
			p->exit_how = x.how;
			p->exit_ts = ev->ts_ns;
		}
		break;
	}
	case FSK_REC_WAIT:
		e = model_wait_rec(m, p->pid, p, ev);
		break;
	case FSK_REC_END:
		model_end_rec(m, p, im, ev);
		break;
	case FSK_REC_SCAN:
	case FSK_REC_SCAN_END:
		e = model_scan_rec(p, ev);
		break;
	case FSK_REC_REGION:
		e = model_region_rec(p, ev);
		break;
	case FSK_REC_MAP:
	case FSK_REC_BRK:
		e = regions_diff_hint(p, ev);
		model_misc_rec(p, im, ev);
		break;
	default:
		model_misc_rec(p, im, ev);
		break;
	}
	return e;
}
