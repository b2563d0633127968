/* export: the command and the Chrome trace-event exporter, see export.h. */
#include "export.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "report.h"

void export_usage(FILE *f)
{
	fputs("usage: forkscope export DIR --format chrome|collapsed|massif [options]\n"
	      "Write a trace directory in another tool's format on stdout.\n"
	      "  -f, --format chrome     Chrome trace-event JSON (Perfetto, chrome://tracing):\n"
	      "                          processes as tracks, lifetimes as slices, fork/exec/\n"
	      "                          exit/wait as instants, fork flows parent->child,\n"
	      "                          counters of live heap, resident and unshared pages\n"
	      "  -f, --format collapsed  folded stacks \"frame;frame N\" (flamegraph.pl,\n"
	      "                          speedscope, inferno) of allocated bytes\n"
	      "      --what alloc|cow    collapsed: bytes allocated (default) or COW-faulted pages\n"
	      "  -f, --format massif     valgrind massif out-file of one process's heap\n"
	      "                          (ms_print, massif-visualizer)\n"
	      "  -p, --pid PID           massif: the process (default: the largest peak heap)\n"
	      "  -h, --help              show this help\n", f);
}

/* Microseconds since t0, as the trace-event format wants them. */
static void export_ts(FILE *f, uint64_t ns, uint64_t t0)
{
	uint64_t d = ns > t0 ? ns - t0 : 0;

	fprintf(f, "%" PRIu64 ".%03" PRIu64, d / 1000, d % 1000);
}

struct export_chrome {
	FILE *f;
	uint64_t t0;
	int first;
	uint64_t flow;
};

/* Starts one event object: its ph, name, pid = tid and ts. */
static void export_ev(struct export_chrome *c, const char *ph, const char *name, uint32_t pid,
		      uint64_t ts)
{
	fputs(c->first ? "\n" : ",\n", c->f);
	c->first = 0;
	fprintf(c->f, "{\"ph\": \"%s\", \"name\": ", ph);
	escape_json(c->f, name);
	fprintf(c->f, ", \"pid\": %" PRIu32 ", \"tid\": %" PRIu32 ", \"ts\": ", pid, pid);
	export_ts(c->f, ts, c->t0);
}

static const char *export_base(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;

	return s ? s + 1 : path ? path : "?";
}

static const char *export_cmd(const struct model_image *im)
{
	if (im->argv && im->argv[0])
		return export_base(im->argv[0]);
	return export_base(im->exe[0] ? im->exe : NULL);
}

static uint64_t export_end(const struct model *m, const struct model_proc *p)
{
	return p->has_end && p->end_ns >= p->start_ns ? p->end_ns : m->last_ns;
}

/* The process's track: names, its lifetime and images as slices, zombie
 * time, and instants for exec and exit. */
static void export_chrome_proc(struct export_chrome *c, const struct model *m,
			       const struct model_proc *p, size_t order)
{
	const struct model_image *last = model_image_last(p);
	uint64_t end = export_end(m, p);
	char ex[96], name[128];

	snprintf(name, sizeof(name), "%s", export_cmd(last));
	export_ev(c, "M", "process_name", p->pid, p->start_ns);
	fputs(", \"args\": {\"name\": ", c->f);
	escape_json(c->f, name);
	fputs("}}", c->f);
	export_ev(c, "M", "process_sort_index", p->pid, p->start_ns);
	fprintf(c->f, ", \"args\": {\"sort_index\": %zu}}", order);
	export_ev(c, "M", "thread_name", p->pid, p->start_ns);
	fputs(", \"args\": {\"name\": \"lifetime\"}}", c->f);

	report_exit_str(p, ex, sizeof(ex));
	export_ev(c, "X", name, p->pid, p->start_ns);
	fputs(", \"cat\": \"process\", \"dur\": ", c->f);
	export_ts(c->f, end, p->start_ns);
	fprintf(c->f, ", \"args\": {\"pid\": %" PRIu32 ", \"ppid\": %" PRIu32 ", \"exit\": ",
		p->pid, p->ppid);
	escape_json(c->f, ex);
	fprintf(c->f, ", \"traced\": %s", p->traced ? "true" : "false");
	if (p->untraced_reason) {
		fputs(", \"untraced\": ", c->f);
		escape_json(c->f, p->untraced_reason);
	}
	fputs("}}", c->f);
	/* each image nested in the lifetime; the first starts with it */
	for (size_t k = 1; k < p->nimages; k++) {
		const struct model_image *im = &p->images[k];
		uint64_t t = im->t_ns < p->start_ns ? p->start_ns : im->t_ns > end ? end : im->t_ns;
		uint64_t e = k + 1 < p->nimages && p->images[k + 1].t_ns < end ? p->images[k + 1].t_ns : end;
		export_ev(c, "X", export_cmd(im), p->pid, t);
		fputs(", \"cat\": \"image\", \"dur\": ", c->f);
		export_ts(c->f, e > t ? e : t, t);
		fputs(", \"args\": {\"exe\": ", c->f);
		escape_json(c->f, im->exe);
		fputs("}}", c->f);
		export_ev(c, "i", "exec", p->pid, t);
		fputs(", \"s\": \"t\", \"cat\": \"lifecycle\", \"args\": {\"exe\": ", c->f);
		escape_json(c->f, im->exe);
		fputs("}}", c->f);
	}
	if (p->has_end) {
		export_ev(c, "i", "exit", p->pid, end);
		fputs(", \"s\": \"t\", \"cat\": \"lifecycle\", \"args\": {\"exit\": ", c->f);
		escape_json(c->f, ex);
		fputs("}}", c->f);
	}
	if (p->has_zombie && p->zombie_ns) {
		uint64_t dead = p->dead_ns > end ? p->dead_ns : end;
		export_ev(c, "X", "zombie", p->pid, dead);
		fputs(", \"cat\": \"zombie\", \"dur\": ", c->f);
		export_ts(c->f, dead + p->zombie_ns, dead);
		fputs("}", c->f);
	}
}

/* fork instants in the parent with a flow to the child's lifetime, and the
 * wait that reaped the child on the reaper's track. */
static void export_chrome_links(struct export_chrome *c, const struct model *m,
				const struct model_proc *p)
{
	if (p->parent != MODEL_NONE) {
		const struct model_proc *par = m->procs[p->parent];
		uint64_t id = ++c->flow;
		export_ev(c, "i", "fork", par->pid, p->start_ns);
		fprintf(c->f, ", \"s\": \"t\", \"cat\": \"lifecycle\", \"args\": {\"child\": %" PRIu32
			"}}", p->pid);
		export_ev(c, "s", "fork", par->pid, p->start_ns);
		fprintf(c->f, ", \"cat\": \"fork\", \"id\": %" PRIu64 "}", id);
		export_ev(c, "f", "fork", p->pid, p->start_ns);
		fprintf(c->f, ", \"cat\": \"fork\", \"id\": %" PRIu64 ", \"bp\": \"e\"}", id);
	}
	if (p->reaped) {
		char ex[96];
		report_exit_str(p, ex, sizeof(ex));
		export_ev(c, "i", "wait", p->reaped_by, p->reap_ts);
		fprintf(c->f, ", \"s\": \"t\", \"cat\": \"lifecycle\", \"args\": {\"child\": %" PRIu32
			", \"status\": ", p->pid);
		escape_json(c->f, ex);
		fputs("}}", c->f);
	}
}

/*
 * Counters over time, read from a second model stepped event by event:
 * the live heap of the process an event belongs to (at most the maximum
 * and the last value of each window of the trace's length / 4000, so a
 * counter track stays small and keeps its peak), and resident and
 * unshared pages after each address-space scan.
 */
struct export_counter {
	uint64_t win, max, max_ts, last, last_ts, shown;
	int pending, any;
	uint64_t scan_ts;
	uint32_t scan_id;
};

static void export_heap_point(struct export_chrome *c, uint32_t pid, uint64_t ts, uint64_t v)
{
	export_ev(c, "C", "heap", pid, ts);
	fprintf(c->f, ", \"cat\": \"memory\", \"args\": {\"live bytes\": %" PRIu64 "}}", v);
}

static void export_heap_flush(struct export_chrome *c, uint32_t pid, struct export_counter *k)
{
	if (!k->pending)
		return;
	if (k->max != k->shown || !k->any)
		export_heap_point(c, pid, k->max_ts, k->max);
	if (k->last_ts > k->max_ts && k->last != k->max)
		export_heap_point(c, pid, k->last_ts, k->last);
	k->shown = k->last_ts > k->max_ts ? k->last : k->max;
	k->any = 1;
	k->pending = 0;
}

static void export_scan_point(struct export_chrome *c, const struct model_proc *p)
{
	uint64_t res = 0, uns = 0;

	for (size_t k = 0; k < p->cur.n; k++) {
		const struct fsk_region *r = &p->cur.v[k].r;
		if (r->kind == FSK_RK_FORKSCOPE)
			continue; /* the tracer's own memory */
		res += r->resident;
		uns += r->unshared;
	}
	export_ev(c, "C", "pages", p->pid, p->cur.ts_ns);
	fprintf(c->f, ", \"cat\": \"memory\", \"args\": {\"resident\": %" PRIu64
		", \"unshared\": %" PRIu64 "}}", res, uns);
}

struct export_counters {
	struct export_chrome *c;
	const struct load *l;
	struct export_counter *k;
	struct model step;
	uint64_t w;
};

static int export_chrome_step(void *ctx, const struct model_event *ev)
{
	struct export_counters *x0 = ctx;
	struct export_chrome *c = x0->c;
	const struct load *l = x0->l;
	uint64_t v, w = x0->w;
	int e;

	if ((e = model_apply(&x0->step, ev)) < 0)
		return e;
	if (!table_get(&x0->step.streams, (uintptr_t)ev->stream, &v) || v == 0 ||
	    v > l->model.n)
		return 0;
	const struct model_proc *p = x0->step.procs[v - 1];
	struct export_counter *x = &x0->k[v - 1];
	if (p->cur.n && (p->cur.ts_ns != x->scan_ts || p->cur.id != x->scan_id)) {
		x->scan_ts = p->cur.ts_ns;
		x->scan_id = p->cur.id;
		export_scan_point(c, p);
	}
	if (!p->malloc_traced)
		return 0;
	uint64_t live = p->heap.ended ? 0 : p->heap.live_bytes;
	if (x->pending && ev->ts_ns >= x->win + w)
		export_heap_flush(c, p->pid, x);
	if (!x->pending) {
		if (x->any && live == x->shown)
			return 0;
		x->pending = 1;
		x->win = ev->ts_ns;
		x->max = live;
		x->max_ts = ev->ts_ns;
	} else if (live > x->max) {
		x->max = live;
		x->max_ts = ev->ts_ns;
	}
	x->last = live;
	x->last_ts = ev->ts_ns;
	return 0;
}

static int export_chrome_counters(struct export_chrome *c, const struct load *l)
{
	struct export_counters x = { .c = c, .l = l };
	uint64_t span = l->model.last_ns > c->t0 ? l->model.last_ns - c->t0 : 0;
	int e;

	x.k = calloc(l->model.n + 1, sizeof(*x.k));
	if (!x.k)
		return -ENOMEM;
	x.w = span / 4000 ? span / 4000 : 1;
	model_init(&x.step);
	e = load_replay(l, export_chrome_step, &x);
	for (size_t i = 0; i < x.step.n && i < l->model.n; i++)
		export_heap_flush(c, x.step.procs[i]->pid, &x.k[i]);
	model_free(&x.step);
	free(x.k);
	return e;
}

void export_chrome(FILE *f, const struct load *l)
{
	const struct model *m = &l->model;
	struct export_chrome c = { .f = f, .first = 1 };

	c.t0 = load_first_ns(l);
	for (size_t i = 0; i < m->n; i++)
		if (m->procs[i]->start_ns < c.t0)
			c.t0 = m->procs[i]->start_ns;
	if (m->has_runner && m->runner_start_ns && m->runner_start_ns < c.t0)
		c.t0 = m->runner_start_ns;
	fputs("{\"displayTimeUnit\": \"ms\", \"traceEvents\": [", f);
	if (m->has_runner) {
		uint64_t end = m->runner_end_ns > m->runner_start_ns ? m->runner_end_ns : m->last_ns;
		export_ev(&c, "M", "process_name", m->runner_pid, m->runner_start_ns);
		fputs(", \"args\": {\"name\": \"forkscope run\"}}", f);
		export_ev(&c, "X", "forkscope run", m->runner_pid, m->runner_start_ns);
		fputs(", \"cat\": \"process\", \"dur\": ", f);
		export_ts(f, end, m->runner_start_ns);
		fputs("}", f);
	}
	for (size_t oi = 0; oi < m->n; oi++)
		export_chrome_proc(&c, m, m->procs[m->order[oi]], oi + 1);
	for (size_t oi = 0; oi < m->n; oi++)
		export_chrome_links(&c, m, m->procs[m->order[oi]]);
	export_chrome_counters(&c, l);
	fputs("\n],\n\"otherData\": {\"tool\": \"forkscope\"}}\n", f);
}

int export_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "what", required_argument, NULL, 'w' },
		{ "pid", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *format = NULL, *what = "alloc", *dir = NULL;
	char *name = argv[0], *end;
	unsigned long pid = 0;
	struct load l;
	int c, e, r = 0;

	optind = 1;
	argv[0] = "forkscope export";
	while ((c = getopt_long(argc, argv, "f:p:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			format = optarg;
			break;
		case 'w':
			what = optarg;
			break;
		case 'p':
			errno = 0;
			pid = strtoul(optarg, &end, 10);
			if (errno || *end || !pid || pid > UINT32_MAX) {
				fprintf(stderr, "forkscope export: bad pid: %s\n", optarg);
				return 2;
			}
			break;
		case 'h':
			export_usage(stdout);
			return 0;
		default:
			export_usage(stderr);
			return 2;
		}
	}
	argv[0] = name;
	if (optind + 1 != argc) {
		fputs(optind >= argc ? "forkscope export: missing DIR\n"
				     : "forkscope export: too many arguments\n", stderr);
		export_usage(stderr);
		return 2;
	}
	dir = argv[optind];
	if (!format || (strcmp(format, "chrome") && strcmp(format, "collapsed") &&
			strcmp(format, "massif"))) {
		fprintf(stderr, "forkscope export: %s --format (chrome, collapsed or massif)\n",
			format ? "unknown" : "missing");
		return 2;
	}
	if (strcmp(what, "alloc") && strcmp(what, "cow")) {
		fprintf(stderr, "forkscope export: unknown --what %s (alloc or cow)\n", what);
		return 2;
	}
	e = load_dir(&l, dir);
	if (e >= 0) {
		if (!strcmp(format, "chrome"))
			export_chrome(stdout, &l);
		else if (!strcmp(format, "collapsed"))
			r = export_collapsed(stdout, &l, !strcmp(what, "cow"));
		else
			r = export_massif(stdout, &l, (uint32_t)pid);
	}
	fflush(stdout);
	report_messages(stderr, &l);
	if (r == -ESRCH)
		fprintf(stderr, "forkscope export: no process %lu with a traced heap in %s\n", pid, dir);
	else if (r < 0)
		fprintf(stderr, "forkscope export: %s\n", strerror(-r));
	load_free(&l);
	return e == 0 && r == 0 ? 0 : 2;
}
