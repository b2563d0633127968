/*
 * model_copy: deep copies of a model's applied state. The viewer's
 * timeline keeps them as snapshots so that seeking to a time replays a
 * few thousand events from the nearest one rather than the whole trace.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "regions_diff.h"

static char *model_copy_str(const char *s, int *err)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*err = 1;
	return d;
}

static char **model_copy_strv(char **v, int *err)
{
	char **d;

	if (!v)
		return NULL;
	d = reader_strv_dup(v);
	if (!d)
		*err = 1;
	return d;
}

static int model_copy_scan(struct model_scan *d, const struct model_scan *s)
{
	int err = 0;

	*d = *s;
	d->v = NULL;
	d->cap = 0;
	if (!s->n)
		return 0;
	d->v = calloc(s->n, sizeof(*d->v));
	if (!d->v) {
		d->n = 0;
		return -ENOMEM;
	}
	d->cap = s->n;
	for (size_t i = 0; i < s->n; i++) {
		d->v[i].r = s->v[i].r;
		d->v[i].path = model_copy_str(s->v[i].path, &err);
	}
	return err ? -ENOMEM : 0;
}

static int model_copy_proc(struct model_proc *d, const struct model_proc *s)
{
	int err = 0;

	*d = *s;
	d->images = NULL;
	d->nimages = d->cap = 0;
	d->children = NULL;
	d->nchildren = 0;
	memset(&d->heap.live, 0, sizeof(d->heap.live));
	memset(&d->cur, 0, sizeof(d->cur));
	memset(&d->pending, 0, sizeof(d->pending));
	d->revs = NULL;
	d->hints = NULL;
	d->images = calloc(s->nimages, sizeof(*d->images));
	if (!d->images)
		return -ENOMEM;
	d->cap = s->nimages;
	for (size_t k = 0; k < s->nimages; k++) {
		struct model_image *di = &d->images[k];
		const struct model_image *si = &s->images[k];
		*di = *si;
		di->exe = model_copy_str(si->exe, &err);
		di->argv = model_copy_strv(si->argv, &err);
		di->exec_path = model_copy_str(si->exec_path, &err);
		di->exec_argv = model_copy_strv(si->exec_argv, &err);
		d->nimages++;
	}
	if (err || table_copy(&d->heap.live, &s->heap.live) < 0 ||
	    model_copy_scan(&d->cur, &s->cur) < 0 ||
	    model_copy_scan(&d->pending, &s->pending) < 0 || regions_diff_copy(d, s) < 0)
		return -ENOMEM;
	return 0;
}

struct model_proc *model_proc_dup(const struct model_proc *src)
{
	struct model_proc *p = calloc(1, sizeof(*p));

	if (p && model_copy_proc(p, src) < 0) {
		model_proc_free(p);
		p = NULL;
	}
	return p;
}

int model_copy_shell(struct model *dst, const struct model *src)
{
	model_init(dst);
	dst->has_runner = src->has_runner;
	dst->runner_pid = src->runner_pid;
	dst->runner_start_ns = src->runner_start_ns;
	dst->runner_end_ns = src->runner_end_ns;
	dst->finished = src->finished;
	dst->partial = src->partial;
	dst->events = src->events;
	dst->last_ns = src->last_ns;
	if ((src->n && !(dst->procs = calloc(src->n, sizeof(*dst->procs)))) ||
	    table_copy(&dst->pids, &src->pids) < 0 || table_copy(&dst->streams, &src->streams) < 0) {
		model_free(dst);
		return -ENOMEM;
	}
	dst->cap = src->n;
	return 0;
}

int model_copy(struct model *dst, const struct model *src)
{
	if (model_copy_shell(dst, src) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < src->n; i++) {
		struct model_proc *p = model_proc_dup(src->procs[i]);
		if (!p) {
			model_free(dst);
			return -ENOMEM;
		}
		dst->procs[dst->n++] = p;
	}
	return 0;
}
