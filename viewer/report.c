/* report: `forkscope report DIR [--json]` and the text renderer. */
#include "report.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "regions_diff.h"
#include "report_layout.h"
#include "report_sites.h"
#include "report_tree.h"

#define REPORT_CMD_MAX 72       /* columns of a command line in the tree */
#define REPORT_REVS_MAX 40      /* region changes listed per process */
#define REPORT_REVS_PROCS 8     /* processes whose region changes are listed */

void report_usage(FILE *f)
{
	fputs("usage: forkscope report [--json] DIR\n"
	      "Analyse a finished trace directory written by `forkscope run`.\n"
	      "  --json      print the machine-readable report (see forkscope(1))\n"
	      "  -h, --help  show this help\n", f);
}

void report_dur(char *buf, size_t n, uint64_t ns)
{
	if (ns < 1000)
		snprintf(buf, n, "%" PRIu64 " ns", ns);
	else if (ns < 1000000)
		snprintf(buf, n, "%.1f us", (double)ns / 1e3);
	else if (ns < 1000000000ull)
		snprintf(buf, n, "%.1f ms", (double)ns / 1e6);
	else
		snprintf(buf, n, "%.2f s", (double)ns / 1e9);
}

void report_bytes(char *buf, size_t n, uint64_t b)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	unsigned i = 0;

	while (v >= 1024 && i < 4)
		v /= 1024, i++;
	if (i == 0)
		snprintf(buf, n, "%" PRIu64 " B", b);
	else
		snprintf(buf, n, "%.1f %s", v, u[i]);
}

void report_exit_str(const struct model_proc *p, char *buf, size_t n)
{
	const char *abbr;

	switch (p->exit_kind) {
	case MODEL_EXIT_EXITED:
		snprintf(buf, n, "exited %d", p->exit_value);
		break;
	case MODEL_EXIT_SIGNALED:
		abbr = p->exit_value > 0 && p->exit_value < 65 ? sigabbrev_np(p->exit_value) : NULL;
		if (abbr)
			snprintf(buf, n, "killed by SIG%s%s", abbr, p->exit_core ? " (core dumped)" : "");
		else
			snprintf(buf, n, "killed by signal %d%s", p->exit_value,
				 p->exit_core ? " (core dumped)" : "");
		break;
	default:
		snprintf(buf, n, "%s", p->has_end || p->reaped || p->traced == 0 ||
			 model_image_last(p)->state != MODEL_SS_RUNNING
			 ? "exit unknown" : "running");
		break;
	}
}

/* The command of a process: its argv (or exe), escaped, cut to a width. */
static void report_cmd(FILE *f, const struct model_proc *p)
{
	const struct model_image *im = model_image_last(p);
	char *buf = NULL;
	size_t len = 0, cut;
	FILE *m = open_memstream(&buf, &len);

	if (!m)
		return;
	if (im->argv && im->argv[0]) {
		for (size_t i = 0; im->argv[i]; i++) {
			if (i)
				putc(' ', m);
			escape_text(m, im->argv[i]);
		}
	} else {
		escape_text(m, im->exe[0] ? im->exe : "?");
	}
	fclose(m);
	cut = len;
	if (len > REPORT_CMD_MAX) {
		cut = REPORT_CMD_MAX;
		while (cut && ((unsigned char)buf[cut] & 0xc0) == 0x80)
			cut--; /* never split a UTF-8 sequence */
	}
	fwrite(buf, 1, cut, f);
	if (cut < len)
		fputs("...", f);
	free(buf);
}

static void report_line(FILE *f, const struct model *m, const struct model_proc *p)
{
	char b[96];

	fprintf(f, "%" PRIu32 " ", p->pid);
	report_cmd(f, p);
	report_exit_str(p, b, sizeof(b));
	fprintf(f, "  [%s", b);
	if (p->exit_source && !strcmp(p->exit_source, "exit_record"))
		fprintf(f, " via %s, not reaped by a traced process",
			model_exit_how_name(p->exit_how));
	if (p->has_end && p->end_ns >= p->start_ns) {
		report_dur(b, sizeof(b), p->end_ns - p->start_ns);
		fprintf(f, ", ran %s", b);
		/* exit() went on to atexit handlers, destructors and stdio
		 * for long enough to matter */
		if (p->handlers_ns >= 1000000) {
			report_dur(b, sizeof(b), p->handlers_ns);
			fprintf(f, ", then %s in exit handlers", b);
		}
	}
	if (p->has_zombie) {
		report_dur(b, sizeof(b), p->zombie_ns);
		fprintf(f, ", zombie %s", b);
	}
	if (p->orphaned) {
		fputs(", orphaned", f);
		if (p->reaped)
			fprintf(f, " (reaped by %s%" PRIu32 ")",
				m->has_runner && p->reaped_by == m->runner_pid ? "forkscope " : "",
				p->reaped_by);
	}
	if (!p->traced)
		fprintf(f, ", untraced: %s", p->untraced_reason ? p->untraced_reason : "no stream");
	else if (model_image_last(p)->state == MODEL_SS_UNTRACED)
		fprintf(f, ", untraced: %s", model_image_last(p)->untraced_reason);
	if (p->heap.exit_blocks || (!p->heap.ended && p->heap.live.n)) {
		uint64_t bl = p->heap.ended ? p->heap.exit_blocks : p->heap.live.n;
		uint64_t by = p->heap.ended ? p->heap.exit_bytes : p->heap.live_bytes;
		report_bytes(b, sizeof(b), by);
		fprintf(f, ", %s in %" PRIu64 " malloc blocks live at exit", b, bl);
	}
	fputs("]\n", f);
}

static void report_tree(FILE *f, const struct model *m)
{
	struct model_walk w;
	size_t i, d;

	if (model_walk_begin(&w, m) < 0)
		return;
	while ((i = model_walk_next(&w, &d)) != MODEL_NONE) {
		for (size_t k = 1; k < d; k++)
			fputs(w.last[k] ? "   " : "|  ", f);
		if (d)
			fputs(w.last[d] ? "`- " : "|- ", f);
		report_line(f, m, m->procs[i]);
	}
	model_walk_end(&w);
}

static void report_malloc(FILE *f, const struct model *m)
{
	uint64_t calls = 0, frees = 0, bytes = 0, leak = 0, blocks = 0, mm = 0, failed = 0;
	uint64_t sampled = 0, other = 0;
	char b1[32], b2[32], b3[80] = "";
	int any = 0;

	for (size_t i = 0; i < m->n; i++) {
		const struct heap *h = &m->procs[i]->heap;
		any |= m->procs[i]->malloc_traced;
		calls += h->calls, frees += h->frees, bytes += h->bytes;
		mm += h->mmap_served, failed += h->failed, other += h->other_served;
		if (h->sample_bytes > sampled)
			sampled = h->sample_bytes;
		leak += h->ended ? h->exit_bytes : h->live_bytes;
		blocks += h->ended ? h->exit_blocks : h->live.n;
	}
	if (!any) {
		fputs("malloc: not traced\n", f);
		return;
	}
	report_bytes(b1, sizeof(b1), bytes);
	report_bytes(b2, sizeof(b2), leak);
	if (sampled)
		fprintf(f, "malloc: sampled 1/%" PRIu64 " bytes: totals are estimates\n", sampled);
	if (other)
		snprintf(b3, sizeof(b3), ", %" PRIu64 " by a malloc other than glibc's", other);
	fprintf(f, "malloc: %" PRIu64 " calls (%" PRIu64 " served by mmap%s, %" PRIu64
		" failed), %" PRIu64 " frees, %s requested; %s in %" PRIu64
		" blocks live at exit\n", calls, mm, b3, failed, frees, b1, b2, blocks);
}

/* Per process, from its latest scan: region kinds x page counts, so a
 * reader sees which regions a fork shared and where COW broke. */
static void report_cow(FILE *f, const struct model *m)
{
	struct row {
		uint64_t virt, resident, shared, unshared, faults, first;
	};
	int header = 0;

	for (size_t i = 0; i < m->n; i++) {
		const struct model_proc *p = m->procs[i];
		struct row rows[FSK_RK_COUNT] = { { 0 } }, tot = { 0 };
		if (!p->cur.n)
			continue;
		for (size_t k = 0; k < p->cur.n; k++) {
			const struct fsk_region *r = &p->cur.v[k].r;
			struct row *w = &rows[r->kind < FSK_RK_COUNT ? r->kind : 0];
			if (r->kind == FSK_RK_FORKSCOPE)
				continue;
			w->virt += r->end - r->start;
			w->resident += r->resident, w->shared += r->shared;
			w->unshared += r->unshared, w->faults += r->cow_faults;
			w->first += r->first_touch;
		}
		if (!header) {
			fputs("\nmemory at each process's last scan, in pages: shared = still shared with a\n"
			      "relative; unshared = shared at the fork, exclusive now (a COW break here or\n"
			      "in the relative, or the relative ended); cow-fault = COW breaks this process\n"
			      "took itself (sampled page faults); 1st-touch = made resident since the fork\n", f);
			header = 1;
		}
		fprintf(f, "%" PRIu32 " ", p->pid);
		report_cmd(f, p);
		fprintf(f, "\n  %-12s %10s %9s %9s %9s %9s %9s\n", "region", "virtual", "resident",
			"shared", "unshared", "cow-fault", "1st-touch");
		for (unsigned k = 1; k < FSK_RK_COUNT; k++) {
			const struct row *w = &rows[k];
			char vb[32];
			if (!w->resident && !w->unshared && !w->faults)
				continue;
			report_bytes(vb, sizeof(vb), w->virt);
			fprintf(f, "  %-12s %10s %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64
				" %9" PRIu64 "\n", model_region_kind_name(k), vb, w->resident, w->shared,
				w->unshared, w->faults, w->first);
			tot.virt += w->virt, tot.resident += w->resident, tot.shared += w->shared;
			tot.unshared += w->unshared, tot.faults += w->faults, tot.first += w->first;
		}
		char vb[32];
		report_bytes(vb, sizeof(vb), tot.virt);
		fprintf(f, "  %-12s %10s %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64
			"\n", "total", vb, tot.resident, tot.shared, tot.unshared, tot.faults, tot.first);
	}
}

static void report_perms(char *b, unsigned perms)
{
	b[0] = perms & FSK_P_READ ? 'r' : '-';
	b[1] = perms & FSK_P_WRITE ? 'w' : '-';
	b[2] = perms & FSK_P_EXEC ? 'x' : '-';
	b[3] = perms & FSK_P_SHARED ? 's' : 'p';
	b[4] = 0;
}

/* Per process, its region changes in time order (the first
 * REPORT_REVS_MAX of the first REPORT_REVS_PROCS processes that have
 * some; --json has all), each with its cause. */
static void report_revs(FILE *f, const struct model *m)
{
	size_t listed = 0, more = 0;

	for (size_t i = 0; i < m->n; i++) {
		const struct model_proc *p = m->procs[m->order[i]];
		size_t shown = p->nrevs < REPORT_REVS_MAX ? p->nrevs : REPORT_REVS_MAX;
		if (!p->nrevs)
			continue;
		if (listed == REPORT_REVS_PROCS) {
			more++;
			continue;
		}
		if (!listed++)
			fputs("\nregion changes between consecutive scans, with the call that made them\n", f);
		fprintf(f, "%" PRIu32 " ", p->pid);
		report_cmd(f, p);
		fputs("\n", f);
		for (size_t k = 0; k < shown; k++) {
			const struct model_rev *e = &p->revs[k];
			char t[32], sz[32], pb[8], ob[8];
			report_dur(t, sizeof(t), e->t_ns > p->start_ns ? e->t_ns - p->start_ns : 0);
			report_bytes(sz, sizeof(sz), e->end - e->start);
			report_perms(pb, e->perms);
			fprintf(f, "  +%-9s %-7s %-12s 0x%" PRIx64 "-0x%" PRIx64 " %10s %s", t,
				regions_diff_what_name(e->what), model_region_kind_name(e->kind),
				e->start, e->end, sz, pb);
			if (e->what == MODEL_REV_PROT) {
				report_perms(ob, e->old_perms);
				fprintf(f, " (was %s)", ob);
			} else if (e->old_start || e->old_end) {
				fprintf(f, " %s 0x%" PRIx64 "-0x%" PRIx64,
					e->what == MODEL_REV_MOVED ? "from" : "was", e->old_start, e->old_end);
			}
			fprintf(f, "  %s", regions_diff_cause_name(e->cause));
			if (e->path) {
				fputs("  ", f);
				escape_text(f, e->path);
			}
			fputs("\n", f);
		}
		if (p->nrevs > shown || p->revs_dropped)
			fprintf(f, "  ... and %" PRIu64 " more (forkscope report --json)\n",
				(uint64_t)(p->nrevs - shown) + p->revs_dropped);
	}
	if (more)
		fprintf(f, "(region changes of %zu more process%s: forkscope report --json)\n", more,
			more == 1 ? "" : "es");
}

void report_text(FILE *f, const struct load *l, const char *dir)
{
	const struct model *m = &l->model;
	uint64_t dropped = 0;
	size_t cut = 0, untraced = 0;

	fputs("trace ", f);
	escape_text(f, dir);
	fprintf(f, ": %zu process%s", m->n, m->n == 1 ? "" : "es");
	if (m->has_runner)
		fprintf(f, ", forkscope runner %" PRIu32, m->runner_pid);
	fputs("\n", f);
	report_tree(f, m);
	report_malloc(f, m);
	report_cow(f, m);
	for (size_t i = 0; i < m->n; i++) {
		const struct model_proc *p = m->procs[i];
		dropped += p->dropped;
		untraced += !p->traced || model_image_last(p)->state == MODEL_SS_UNTRACED;
		for (size_t k = 0; k < p->nimages; k++)
			cut += p->images[k].state == MODEL_SS_CUT;
	}
	if (dropped)
		fprintf(f, "warning: %" PRIu64 " records were dropped by the tracer: "
			"numbers are lower bounds\n", dropped);
	if (cut)
		fprintf(f, "warning: %zu stream%s ended without an END record "
			"(killed or crashed): their last events may be missing\n",
			cut, cut == 1 ? "" : "s");
	if (m->has_runner && !m->runner_end_ns)
		fprintf(f, "warning: the runner's stream ended without an END record (forkscope run "
			"was killed): exits it would have reaped after that are missing\n");
	if (untraced)
		fprintf(f, "note: %zu process%s or image%s could not be traced\n",
			untraced, untraced == 1 ? "" : "es", untraced == 1 ? "" : "s");
}

void report_space(FILE *f, const struct load *l)
{
	struct report_layout rl;

	report_layout_init(&rl, l);
	report_layout_text(f, &rl, &l->model);
	report_layout_free(&rl);
	report_revs(f, &l->model);
}

void report_messages(FILE *f, const struct load *l)
{
	for (size_t i = 0; i < l->nmsgs; i++) {
		if (!load_msg_shown(l, i))
			continue;
		fputs("forkscope: ", f);
		escape_text(f, l->msgs[i].text);
		fputs("\n", f);
	}
}

int report_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct load l;
	int json = 0, c, e;

	char *name = argv[0];

	optind = 1;
	argv[0] = "forkscope report"; /* for getopt's messages */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'j') {
			json = 1;
		} else if (c == 'h') {
			report_usage(stdout);
			return 0;
		} else {
			report_usage(stderr);
			return 2;
		}
	}
	argv[0] = name;
	/* Options may also follow DIR: `forkscope report DIR --json`. */
	if (optind + 2 == argc && !strcmp(argv[optind + 1], "--json"))
		json = 1, argc--;
	if (optind + 1 != argc) {
		fputs(optind >= argc ? "forkscope report: missing DIR\n"
				     : "forkscope report: too many arguments\n", stderr);
		report_usage(stderr);
		return 2;
	}
	e = load_dir(&l, argv[optind]);
	if (e >= 0) {
		if (json)
			report_json(stdout, &l, argv[optind]);
		else {
			struct report_sites rs;
			report_text(stdout, &l, argv[optind]);
			report_space(stdout, &l);
			report_tree_text(stdout, &l.model);
			report_sites_init(&rs, &l);
			report_sites_text(stdout, &rs, &l.model);
			report_sites_free(&rs);
		}
	}
	fflush(stdout);
	report_messages(stderr, &l);
	load_free(&l);
	return e == 0 ? 0 : 2;
}
