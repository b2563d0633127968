/*
 * report_tree: the process-tree part of `forkscope report`: totals of the
 * whole tree and of each subtree (time from its root's start to the last
 * end in it, processes, malloc calls and bytes, sampled COW faults, pages
 * unshared since a fork, zombie time, orphans), then where observation
 * stops: processes without a stream of their own (static or set-id
 * binaries, a dropped preload), whose descendants the trace cannot see,
 * and streams that ended without an END record.
 */
#include "report_tree.h"

#include <inttypes.h>
#include <stdlib.h>

#include "escape.h"
#include "report.h"

#define REPORT_TREE_ROWS 30     /* subtrees listed in the text */

struct report_tree_sum {
	uint64_t first, last;   /* earliest start, latest end (or last seen) */
	uint64_t procs, calls, bytes, cow_faults, unshared, zombie_ns, orphans, untraced;
};

static uint64_t report_tree_last(const struct model_proc *p)
{
	const struct model_image *im = model_image_last(p);

	if (p->has_end)
		return p->end_ns;
	return im->stream ? im->last_ns : p->start_ns;
}

static int report_tree_untraced(const struct model_proc *p)
{
	return !p->traced || model_image_last(p)->state == MODEL_SS_UNTRACED;
}

static void report_tree_add(struct report_tree_sum *s, const struct report_tree_sum *c)
{
	if (c->first < s->first)
		s->first = c->first;
	if (c->last > s->last)
		s->last = c->last;
	s->procs += c->procs, s->calls += c->calls, s->bytes += c->bytes;
	s->cow_faults += c->cow_faults, s->unshared += c->unshared;
	s->zombie_ns += c->zombie_ns, s->orphans += c->orphans, s->untraced += c->untraced;
}

/* Sums of every subtree, indexed like m->procs; NULL on ENOMEM. The
 * pre-order of the walk, reversed, visits every child before its parent. */
static struct report_tree_sum *report_tree_sums(const struct model *m, size_t **pre, size_t *npre)
{
	struct report_tree_sum *s = calloc(m->n + 1, sizeof(*s));
	size_t *order = malloc((m->n + 1) * sizeof(*order)), n = 0, i, d;
	struct model_walk w;

	if (!s || !order || model_walk_begin(&w, m) < 0) {
		free(s);
		free(order);
		return NULL;
	}
	while ((i = model_walk_next(&w, &d)) != MODEL_NONE)
		order[n++] = i;
	model_walk_end(&w);
	for (size_t k = 0; k < m->n; k++) {
		const struct model_proc *p = m->procs[k];
		struct report_tree_sum *x = &s[k];
		x->first = p->start_ns;
		x->last = report_tree_last(p);
		x->procs = 1;
		x->calls = p->heap.calls;
		x->bytes = p->heap.bytes;
		x->cow_faults = p->cow_fault_samples;
		x->unshared = p->unshared_pages;
		x->zombie_ns = p->has_zombie ? p->zombie_ns : 0;
		x->orphans = p->orphaned != 0;
		x->untraced = report_tree_untraced(p);
	}
	for (size_t k = n; k-- > 0;) {
		const struct model_proc *p = m->procs[order[k]];
		if (p->parent != MODEL_NONE)
			report_tree_add(&s[p->parent], &s[order[k]]);
	}
	*pre = order;
	*npre = n;
	return s;
}

static void report_tree_row(FILE *f, const struct model_proc *p, const struct report_tree_sum *x)
{
	char span[32], z[32], b[32];

	report_dur(span, sizeof(span), x->last > x->first ? x->last - x->first : 0);
	report_dur(z, sizeof(z), x->zombie_ns);
	report_bytes(b, sizeof(b), x->bytes);
	fprintf(f, "  %7" PRIu32 " %6" PRIu64 " %10s %11" PRIu64 " %11s %9" PRIu64 " %9" PRIu64
		" %10s %7" PRIu64 " %8" PRIu64 "\n", p->pid, x->procs, span, x->calls, b,
		x->cow_faults, x->unshared, z, x->orphans, x->untraced);
}

/* Where the trace stops seeing the tree: untraced processes and streams
 * that ended without END, with the chain of traced ancestors. */
static void report_tree_limits(FILE *f, const struct model *m)
{
	int head = 0;
	char t[32];

	for (size_t oi = 0; oi < m->n; oi++) {
		const struct model_proc *p = m->procs[m->order[oi]];
		const struct model_image *im = model_image_last(p);
		int untraced = report_tree_untraced(p);
		size_t cut = 0;
		for (size_t k = 0; k < p->nimages; k++)
			cut += p->images[k].state == MODEL_SS_CUT || p->images[k].state == MODEL_SS_CORRUPT ||
			       p->images[k].state == MODEL_SS_STOPPED;
		if (!untraced && !cut)
			continue;
		if (!head)
			fputs("where the tree stops being observed:\n", f);
		head = 1;
		fprintf(f, "  %" PRIu32, p->pid);
		for (size_t a = p->parent, hops = 0; a != MODEL_NONE && hops < 8; a = m->procs[a]->parent, hops++)
			fprintf(f, " <- %" PRIu32, m->procs[a]->pid);
		fputs(" ", f);
		escape_text(f, im->argv && im->argv[0] ? im->argv[0] : im->exe);
		if (untraced) {
			fputs(": not traced (", f);
			escape_text(f, p->untraced_reason ? p->untraced_reason
				    : im->untraced_reason ? im->untraced_reason : "no stream");
			fputs("); what it and its descendants did is not recorded\n", f);
		} else if (im->state == MODEL_SS_STOPPED) {
			uint64_t last = report_tree_last(p);
			report_dur(t, sizeof(t), last > p->start_ns ? last - p->start_ns : 0);
			fprintf(f, ": tracing stopped %s after it started, when it installed a seccomp "
				"filter (which could refuse forkscope's system calls); nothing after "
				"that is recorded\n", t);
		} else {
			uint64_t last = report_tree_last(p);
			report_dur(t, sizeof(t), last > p->start_ns ? last - p->start_ns : 0);
			fprintf(f, ": %s without an END record %s after it started (killed or crashed); "
				"nothing after its last record is known\n",
				im->state == MODEL_SS_CORRUPT ? "stream corrupt" : "stream ended", t);
		}
	}
}

void report_tree_text(FILE *f, const struct model *m)
{
	size_t *pre = NULL, npre = 0, rows = 0, inner = 0;
	struct report_tree_sum all = { .first = UINT64_MAX }, *s;
	char span[32], z[32];

	if (!m->n || !(s = report_tree_sums(m, &pre, &npre)))
		return;
	for (size_t r = 0; r < m->nroots; r++)
		report_tree_add(&all, &s[m->roots[r]]);
	report_dur(span, sizeof(span), all.last > all.first ? all.last - all.first : 0);
	report_dur(z, sizeof(z), all.zombie_ns);
	fprintf(f, "\nprocess tree: %" PRIu64 " process%s in %zu tree%s over %s; zombie time %s in total; "
		"%" PRIu64 " orphan%s; %" PRIu64 " untraced\n", all.procs, all.procs == 1 ? "" : "es",
		m->nroots, m->nroots == 1 ? "" : "s", span, z, all.orphans, all.orphans == 1 ? "" : "s",
		all.untraced);
	for (size_t k = 0; k < m->n; k++)
		inner += m->procs[k]->nchildren > 0;
	if (inner) {
		fputs("subtrees (a process and all its descendants; span = first start to last end):\n"
		      "      pid  procs       span alloc-calls alloc-bytes cow-fault  unshared     zombie"
		      " orphans untraced\n", f);
		for (size_t k = 0; k < npre && rows < REPORT_TREE_ROWS; k++) {
			const struct model_proc *p = m->procs[pre[k]];
			if (!p->nchildren)
				continue;
			report_tree_row(f, p, &s[pre[k]]);
			rows++;
		}
		if (inner > rows)
			fprintf(f, "  ... and %zu more subtrees\n", inner - rows);
	}
	report_tree_limits(f, m);
	free(s);
	free(pre);
}
