/*
 * export_stacks: the call-stack exporters (folded stacks, massif), see
 * export.h. Both read the allocation-site analysis (sites.h) and name
 * frames with the report's symbolizer.
 */
#include "export.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "report_sites.h"
#include "vec.h"

/* One frame name as folded-stack tools read it: no ';' (the separator)
 * and no line break. */
static void export_folded_name(FILE *f, const struct symbols_frame *fr)
{
	char buf[512];
	const char *mod = fr->module ? strrchr(fr->module, '/') : NULL;

	mod = mod ? mod + 1 : fr->module;
	if (fr->function)
		snprintf(buf, sizeof(buf), "%s", fr->function);
	else if (mod)
		snprintf(buf, sizeof(buf), "%s+0x%" PRIx64, mod, fr->offset);
	else
		snprintf(buf, sizeof(buf), "0x%" PRIx64, fr->address);
	for (char *s = buf; *s; s++)
		if (*s == ';' || *s == '\n' || *s == '\r')
			*s = *s == ';' ? ':' : ' ';
	fputs(buf, f);
}

/* "command [pid]", the root frame of each of the process's lines */
static void export_folded_proc(FILE *f, const struct model_proc *p)
{
	const struct model_image *im = model_image_last(p);
	const char *cmd = im->argv && im->argv[0] ? im->argv[0] : im->exe;
	const char *b = strrchr(cmd, '/');

	for (b = b ? b + 1 : cmd; *b; b++)
		putc(*b == ';' || *b == '\n' || *b == '\r' ? '_' : *b, f);
	fprintf(f, " [%" PRIu32 "]", p->pid);
}

static void export_folded_line(FILE *f, struct report_sites *rs, const struct model_proc *p,
			       size_t stack, const char *leaf, uint64_t n)
{
	struct symbols_frame fr[SYMBOLS_INLINE_MAX];

	export_folded_proc(f, p);
	if (stack == STACKS_NONE) {
		fputs(";[no stack]", f);
	} else {
		/* root first: outermost return address, and its inlined calls
		 * outermost first */
		for (uint32_t k = rs->sites.st.v[stack].depth; k-- > 0;) {
			size_t m = symbols_frames(&rs->sym, stack, k, fr, SYMBOLS_INLINE_MAX);
			while (m-- > 0) {
				putc(';', f);
				export_folded_name(f, &fr[m]);
			}
		}
	}
	if (leaf)
		fprintf(f, ";[%s]", leaf);
	fprintf(f, " %" PRIu64 "\n", n);
}

int export_collapsed(FILE *f, const struct load *l, int cow)
{
	const struct model *m = &l->model;
	struct report_sites rs;

	report_sites_init(&rs, l);
	if (!rs.ok)
		return -ENOMEM;
	for (size_t oi = 0; oi < m->n; oi++) {
		size_t i = m->order[oi];
		const struct sites_proc *p = &rs.sites.p[i];
		if (cow) {
			for (size_t k = 0; k < p->ncow; k++)
				export_folded_line(f, &rs, m->procs[i], p->cow[k].stack,
						   model_region_kind_name(p->cow[k].kind),
						   p->cow[k].pages);
			uint64_t tracer = m->procs[i]->cow_fault_samples_tracer;
			if (tracer) { /* a branch of its own, not the program's */
				export_folded_proc(f, m->procs[i]);
				fprintf(f, ";[forkscope's own code] %" PRIu64 "\n", tracer);
			}
			continue;
		}
		for (size_t k = 0; k < p->nalloc; k++)
			if (p->alloc[k].bytes)
				export_folded_line(f, &rs, m->procs[i], p->alloc[k].stack, NULL,
						   p->alloc[k].bytes);
	}
	report_sites_free(&rs);
	return 0;
}

/*
 * massif: snapshots of one process's live heap at regular times (about
 * EXPORT_MASSIF_SNAPS of them, every EXPORT_MASSIF_DETAIL-th detailed),
 * the peak (detailed) when the live heap first reaches the model's peak,
 * and the end (detailed: what was live when the process ended).
 * A detailed tree is massif's: innermost frames under the root, callers
 * below them, bytes summed, children largest first.
 */
#define EXPORT_MASSIF_SNAPS 50
#define EXPORT_MASSIF_DETAIL 10

struct export_snap {
	uint64_t ts, bytes;
	const char *tree;       /* "empty", "detailed" or "peak" */
	struct sites_leak *v;   /* live bytes by stack (detailed) */
	size_t n;
};

struct export_massif {
	FILE *out;
	struct report_sites *rs;
	size_t proc;
	uint64_t t0, step, next, peak;
	int peak_done, failed;
	struct export_snap *snaps;
	size_t nsnaps, cap;
};

struct export_group {
	size_t from, n;
	uint64_t bytes;
};

struct export_massif_sort {
	const struct stacks *st;
	uint32_t k;
};

static int export_frameless(const struct stacks *st, const struct sites_leak *e, uint32_t k)
{
	return e->stack == STACKS_NONE || k >= st->v[e->stack].depth;
}

static uint64_t export_ip(const struct stacks *st, const struct sites_leak *e, uint32_t k)
{
	return export_frameless(st, e, k) ? 0 : stacks_ip(st, e->stack, k);
}

static int export_ip_cmp(const void *a, const void *b, void *ctx)
{
	const struct export_massif_sort *s = ctx;
	uint64_t x = export_ip(s->st, a, s->k), y = export_ip(s->st, b, s->k);

	return x < y ? -1 : x > y;
}

static int export_group_cmp(const void *a, const void *b)
{
	const struct export_group *x = a, *y = b;

	if (x->bytes != y->bytes)
		return x->bytes < y->bytes ? 1 : -1;
	return x->from < y->from ? -1 : x->from > y->from;
}

/* Groups v[0..n) (all deeper than k) by return address k, largest first;
 * malloc'd, *ng groups; NULL with *ng = 0 on ENOMEM or n = 0. */
static struct export_group *export_groups(const struct stacks *st, struct sites_leak *v, size_t n,
					  uint32_t k, size_t *ng)
{
	struct export_massif_sort s = { st, k };
	struct export_group *g = n ? malloc(n * sizeof(*g)) : NULL;

	*ng = 0;
	if (!g)
		return NULL;
	qsort_r(v, n, sizeof(*v), export_ip_cmp, &s);
	for (size_t i = 0; i < n; i++) {
		if (!*ng || export_ip(st, &v[i], k) != export_ip(st, &v[g[*ng - 1].from], k))
			g[(*ng)++] = (struct export_group){ i, 0, 0 };
		g[*ng - 1].n++;
		g[*ng - 1].bytes += v[i].bytes;
	}
	qsort(g, *ng, sizeof(*g), export_group_cmp);
	return g;
}

/* Entries of v[0..n) deeper than level k move to the front; how many. */
static size_t export_deeper(const struct stacks *st, struct sites_leak *v, size_t n, uint32_t k)
{
	size_t d = 0;

	for (size_t i = 0; i < n; i++) {
		if (v[i].stack != STACKS_NONE && st->v[v[i].stack].depth > k) {
			struct sites_leak t = v[d];
			v[d++] = v[i];
			v[i] = t;
		}
	}
	return d;
}

static void export_massif_node(struct export_massif *x, struct sites_leak *v, size_t n, uint32_t k)
{
	const struct stacks *st = &x->rs->sites.st;
	size_t ng, deeper;
	struct export_group *g = export_groups(st, v, n, k, &ng);
	char name[600];

	for (size_t i = 0; i < ng; i++) {
		struct sites_leak *e = &v[g[i].from];
		size_t cg = 0;
		deeper = export_deeper(st, e, g[i].n, k + 1);
		if (deeper) {
			struct export_group *c = export_groups(st, e, deeper, k + 1, &cg);
			free(c);
		}
		if (export_frameless(st, e, k)) {
			fprintf(x->out, "%*sn0: %" PRIu64 " (no call stack recorded)\n", (int)k + 1, "",
				g[i].bytes);
			continue;
		}
		report_sites_frame_str(x->rs, e->stack, k, name, sizeof(name));
		for (char *s = name; *s; s++)
			if (*s == '\n' || *s == '\r')
				*s = ' ';
		fprintf(x->out, "%*sn%zu: %" PRIu64 " 0x%" PRIx64 ": %s\n", (int)k + 1, "", cg,
			g[i].bytes, stacks_ip(st, e->stack, k), name);
		if (deeper)
			export_massif_node(x, e, deeper, k + 1);
	}
	free(g);
}

static void export_massif_snap(struct export_massif *x, unsigned i, const struct export_snap *sn)
{
	uint64_t d = sn->ts > x->t0 ? sn->ts - x->t0 : 0;
	size_t ng;

	fprintf(x->out, "#-----------\nsnapshot=%u\n#-----------\ntime=%" PRIu64 ".%06" PRIu64
		"\nmem_heap_B=%" PRIu64 "\nmem_heap_extra_B=0\nmem_stacks_B=0\nheap_tree=%s\n",
		i, d / 1000000, d % 1000000, sn->bytes, sn->tree);
	if (!strcmp(sn->tree, "empty"))
		return;
	free(export_groups(&x->rs->sites.st, sn->v, sn->n, 0, &ng));
	fprintf(x->out, "n%zu: %" PRIu64 " (heap allocation functions) malloc/new/new[], "
		"--alloc-fns, etc.\n", ng, sn->bytes);
	export_massif_node(x, sn->v, sn->n, 0);
}

/* Adds a snapshot (v is taken over); on ENOMEM the export fails. */
static void export_massif_add(struct export_massif *x, uint64_t ts, uint64_t bytes,
			      const char *tree, struct sites_leak *v, size_t n)
{
	if (vec_reserve(&x->snaps, &x->cap, x->nsnaps + 1, sizeof(*x->snaps)) < 0) {
		x->failed = 1;
		free(v);
		return;
	}
	x->snaps[x->nsnaps++] = (struct export_snap){ ts, bytes, tree, v, n };
}

/* sites_build's watch: after each change of a live heap. */
static void export_massif_watch(void *ctx, const struct sites *s, size_t proc, uint64_t ts)
{
	struct export_massif *x = ctx;
	const struct sites_proc *p = &s->p[proc];
	int peak = 0, regular = 0;
	struct sites_leak *v = NULL;
	size_t n = 0;

	if (proc != x->proc)
		return;
	if (!x->peak_done && p->live_bytes == x->peak)
		peak = x->peak_done = 1;
	if (ts >= x->next) {
		regular = 1;
		while (x->next <= ts)
			x->next += x->step;
	}
	if (!peak && !regular)
		return;
	int detailed = peak || x->nsnaps % EXPORT_MASSIF_DETAIL == EXPORT_MASSIF_DETAIL - 1;
	if (detailed && !(v = sites_live_by_stack(p, &n)) && n)
		x->failed = 1;
	export_massif_add(x, ts, p->live_bytes, peak ? "peak" : detailed ? "detailed" : "empty", v, n);
}

int export_massif(FILE *f, const struct load *l, uint32_t pid)
{
	const struct model *m = &l->model;
	struct export_massif x = { 0 };
	struct report_sites rs = { 0 };
	struct sites_watch w = { export_massif_watch, &x };
	const struct model_proc *p = NULL;
	int e = 0;

	for (size_t i = 0; i < m->n; i++) {
		const struct model_proc *q = m->procs[i];
		if (!q->malloc_traced || (pid && q->pid != pid))
			continue;
		if (!p || q->heap.peak_live_bytes > p->heap.peak_live_bytes)
			p = q;
	}
	if (!p)
		return -ESRCH;
	uint64_t end = p->has_end && p->end_ns > p->start_ns ? p->end_ns : m->last_ns;
	x.proc = p->index;
	x.t0 = p->start_ns;
	x.peak = p->heap.peak_live_bytes;
	x.step = end > p->start_ns ? (end - p->start_ns) / EXPORT_MASSIF_SNAPS : 0;
	if (!x.step)
		x.step = 1;
	x.next = p->start_ns + x.step;
	x.rs = &rs;
	x.out = f;
	export_massif_add(&x, p->start_ns, 0, "empty", NULL, 0);
	if (sites_build(&rs.sites, l, &w) < 0 || x.failed ||
	    symbols_init(&rs.sym, &rs.sites.st) < 0) {
		e = -ENOMEM;
		sites_free(&rs.sites);
		goto out;
	}
	rs.ok = 1;
	/* the end: what was live when the process ended (or at the trace's end) */
	const struct sites_proc *sp = &rs.sites.p[p->index];
	uint64_t left = 0;
	for (size_t k = 0; k < sp->nleaks; k++)
		left += sp->leaks[k].bytes;
	struct sites_leak *v = sp->nleaks ? malloc(sp->nleaks * sizeof(*v)) : NULL;
	if (v)
		memcpy(v, sp->leaks, sp->nleaks * sizeof(*v));
	export_massif_add(&x, end, left, v || !sp->nleaks ? "detailed" : "empty", v, v ? sp->nleaks : 0);
	if (x.failed) {
		e = -ENOMEM;
		goto out;
	}
	fputs("desc: forkscope export --format massif (live heap of one process)\ncmd:", f);
	const struct model_image *im = model_image_last(p);
	for (size_t i = 0; im->argv && im->argv[i]; i++) {
		putc(' ', f);
		for (const char *s = im->argv[i]; *s; s++)
			putc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
	}
	fputs("\ntime_unit: ms\n", f);
	for (size_t i = 0; i < x.nsnaps; i++)
		export_massif_snap(&x, (unsigned)i, &x.snaps[i]);
out:
	for (size_t i = 0; i < x.nsnaps; i++)
		free(x.snaps[i].v);
	free(x.snaps);
	report_sites_free(&rs);
	return e;
}
