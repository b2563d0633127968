/* load: see load.h. */
#include "load.h"
#include "vec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOAD_CHUNK (1u << 20)

struct load_chunk {
	struct load_chunk *next;
	size_t used;
	unsigned char data[LOAD_CHUNK];
};

static void load_msg(struct load *l, int fatal, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (fatal)
		l->fatal = 1;
	if (vec_reserve(&l->msgs, &l->msgs_cap, l->nmsgs + 1, sizeof(*l->msgs)) < 0)
		return;
	l->msgs[l->nmsgs].text = strdup(buf);
	l->msgs[l->nmsgs].fatal = fatal;
	l->msgs[l->nmsgs].cut = NULL;
	if (l->msgs[l->nmsgs].text)
		l->nmsgs++;
}

/* A stable copy of a record payload (the reader's buffer moves on). */
static const unsigned char *load_keep(struct load *l, const unsigned char *p, uint32_t n)
{
	struct load_chunk *c = l->chunks;
	unsigned char *d;

	if (!c || LOAD_CHUNK - c->used < n) {
		c = malloc(sizeof(*c));
		if (!c)
			return NULL;
		c->next = l->chunks;
		c->used = 0;
		l->chunks = c;
	}
	d = c->data + c->used;
	memcpy(d, p, n);
	c->used += (n + 7) & ~7u;
	return d;
}

/*
 * Takes the stream's next event (payload still in the reader's window).
 * In memory, every event is kept with a copy of its payload; streamed, the
 * merge index notes it and only what stacks.c and report_layout.c gather
 * before the replays (STACK, MODULE) is kept.
 */
static int load_add(struct load *l, struct model_event *ev)
{
	struct model_event *e;

	ev->order = l->order++;
	if (l->streamed && merge_add(&l->merge, ev->stream, ev) < 0)
		return -ENOMEM;
	if (l->streamed && ev->kind != FSK_REC_STACK && ev->kind != FSK_REC_MODULE)
		return 0;
	if (vec_reserve(&l->ev, &l->cap, l->nev + 1, sizeof(*l->ev)) < 0)
		return -ENOMEM;
	e = &l->ev[l->nev];
	*e = *ev;
	if (e->kind != MODEL_EV_OPEN && !(e->payload = load_keep(l, ev->payload, ev->len)))
		return -ENOMEM;
	l->nev++;
	return 0;
}

int load_init(struct load *l, const char *dir)
{
	int e;

	memset(l, 0, sizeof(*l));
	model_init(&l->model);
	e = reader_dir_open(&l->dir, dir);
	if (e < 0)
		return e;
	e = reader_dir_poll(&l->dir);
	if (e < 0) {
		load_msg(l, 1, "cannot read trace directory: %s: %s", dir, strerror(-e));
		return e;
	}
	return 0;
}

static uint64_t load_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

#define LOAD_PROGRESS_AFTER 1000000000ull      /* show it after 1 s */
#define LOAD_PROGRESS_EVERY 250000000ull       /* then redraw every 250 ms */

/*
 * load_dir on a terminal: "reading: N events (M MiB)" on stderr once
 * reading has taken more than a second, redrawn in place, erased when
 * done. progress_t0 = 0: off (not load_dir, or stderr is not a tty).
 */
static void load_progress(struct load *l, const char *what, uint64_t done)
{
	uint64_t now;
	char buf[160];
	int n;

	if (!l->progress_t0 || (now = load_now()) < l->progress_next)
		return;
	l->progress_next = now + LOAD_PROGRESS_EVERY;
	if (now - l->progress_t0 < LOAD_PROGRESS_AFTER)
		return;
	if (done == l->order)
		n = snprintf(buf, sizeof(buf), "\rforkscope: %s: %" PRIu64 " events (%.0f MiB)...\033[K",
			     what, l->order, (double)l->progress_bytes / 1048576);
	else
		n = snprintf(buf, sizeof(buf), "\rforkscope: %s: event %" PRIu64 " of %" PRIu64
			     "...\033[K", what, done, l->order);
	if (n > 0 && write(2, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1) > 0)
		l->progress_shown = 1;
}

static void load_progress_end(struct load *l)
{
	if (l->progress_shown && write(2, "\r\033[K", 4) < 0)
		l->progress_shown = 0;
	l->progress_t0 = 0;
	l->progress_shown = 0;
}

/* Reads one stream's complete records into events. */
static int load_stream(struct load *l, struct reader_stream *s, int finished)
{
	int opened = s->state != READER_HEADER;
	struct reader_rec r;
	struct model_event ev;
	int k;

	if (s->state != READER_HEADER && s->state != READER_RECORDS)
		return 0; /* done before */
	for (;;) {
		k = reader_next(s, &r);
		if (!opened && s->hdr.hdr_size) {
			opened = 1;
			merge_ev_open(&ev, s);
			if (load_add(l, &ev) < 0)
				return -ENOMEM;
		}
		if (k <= 0)
			break;
		merge_ev_rec(&ev, s, &r);
		if (load_add(l, &ev) < 0)
			return -ENOMEM;
		l->progress_bytes += r.len + sizeof(struct fsk_rec);
		if ((l->order & 0xffff) == 0)
			load_progress(l, "reading", l->order);
	}
	if (finished && s->state != READER_CORRUPT)
		reader_finish(s);
	else if (finished)
		reader_release(s);
	if (s->state == READER_CORRUPT || s->state == READER_CUT) {
		char buf[900];
		reader_message(s, buf, sizeof(buf));
		load_msg(l, s->state == READER_CORRUPT || s->hdr.hdr_size == 0, "%s", buf);
		if (s->state == READER_CUT && s->hdr.hdr_size && l->nmsgs)
			l->msgs[l->nmsgs - 1].cut = s;
	}
	return 0;
}

int load_poll(struct load *l, int finished)
{
	int e = reader_dir_poll(&l->dir);

	if (e < 0) {
		load_msg(l, 1, "cannot read trace directory: %s: %s", l->dir.path, strerror(-e));
		return e;
	}
	for (size_t i = 0; i < l->dir.n; i++) {
		e = load_stream(l, l->dir.streams[i], finished);
		if (e < 0)
			return e;
	}
	return 0;
}

int load_replay(const struct load *l, int (*fn)(void *ctx, const struct model_event *ev),
		void *ctx)
{
	struct merge_iter it;
	struct model_event ev;
	int e;

	if (!l->streamed) {
		for (size_t i = 0; i < l->nev; i++)
			if ((e = fn(ctx, &l->ev[i])) < 0)
				return e;
		return 0;
	}
	if ((e = merge_begin(&it, &l->merge)) < 0)
		return e;
	while ((e = merge_next(&it, &ev)) > 0)
		if ((e = fn(ctx, &ev)) < 0)
			break;
	merge_end(&it);
	return e;
}

int load_msg_shown(const struct load *l, size_t i)
{
	const struct model *m = &l->model;
	const struct reader_stream *s = l->msgs[i].cut;

	if (!s)
		return 1;
	for (size_t k = 0; k < m->n; k++) {
		const struct model_proc *p = m->procs[k];
		const struct model_image *im = p->nimages ? &p->images[p->nimages - 1] : NULL;
		if (im && im->stream == s)
			return !(p->exit_kind == MODEL_EXIT_SIGNALED && im->state == MODEL_SS_CUT);
	}
	return 1;
}

uint64_t load_first_ns(const struct load *l)
{
	uint64_t t = 0;

	if (!l->streamed)
		return l->nev ? l->ev[0].key_ns : 0;
	for (size_t i = 0; i < l->merge.n; i++)
		if (!i || l->merge.runs[i].key < t)
			t = l->merge.runs[i].key;
	return t;
}

static int load_apply(void *ctx, const struct model_event *ev)
{
	struct load *l = ctx;

	if ((l->model.events & 0xffff) == 0)
		load_progress(l, "modelling", l->model.events);
	return model_apply(&l->model, ev);
}

int load_build(struct load *l, int finished)
{
	int e;

	if (l->nev)
		qsort(l->ev, l->nev, sizeof(*l->ev), model_event_cmp);
	model_free(&l->model);
	model_init(&l->model);
	e = load_replay(l, load_apply, l);
	/* after an error too: the model then holds what was applied */
	if (model_finish(&l->model, finished) < 0 && e == 0)
		e = -ENOMEM;
	return e;
}

int load_dir(struct load *l, const char *dir)
{
	int e = load_init(l, dir);

	if (e < 0)
		return e;
	l->streamed = !getenv("FORKSCOPE_LOAD_ALL");
	if (l->dir.n == 0)
		load_msg(l, 1, "no trace streams (*" FSK_STREAM_SUFFIX ") in directory: %s", dir);
	if (isatty(2))
		l->progress_t0 = load_now();
	e = load_poll(l, 1);
	if (e == 0)
		e = load_build(l, 1);
	load_progress_end(l);
	if (e == -EIO)
		load_msg(l, 1, "a stream changed while it was read: %s", dir);
	else if (e < 0)
		load_msg(l, 1, "%s", strerror(-e));
	return e < 0 ? 1 : l->fatal;
}

void load_free(struct load *l)
{
	while (l->chunks) {
		struct load_chunk *c = l->chunks;
		l->chunks = c->next;
		free(c);
	}
	for (size_t i = 0; i < l->nmsgs; i++)
		free(l->msgs[i].text);
	free(l->msgs);
	free(l->ev);
	merge_free(&l->merge);
	model_free(&l->model);
	reader_dir_close(&l->dir);
	memset(l, 0, sizeof(*l));
}
