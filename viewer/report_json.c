/*
 * report_json: the JSON document of `forkscope report --json`. The key
 * names are a contract other tools read (forkscope(1)); add keys, never
 * rename or drop one.
 */
#include <inttypes.h>
#include <string.h>

#include "escape.h"
#include "regions_diff.h"
#include "report.h"
#include "report_layout.h"
#include "report_sites.h"

static void report_json_strv(FILE *f, char *const *v)
{
	putc('[', f);
	for (size_t i = 0; v && v[i]; i++) {
		if (i)
			fputs(", ", f);
		escape_json(f, v[i]);
	}
	putc(']', f);
}

static void report_json_opt(FILE *f, int has, uint64_t v)
{
	if (has)
		fprintf(f, "%" PRIu64, v);
	else
		fputs("null", f);
}

static void report_json_image(FILE *f, const struct model_image *im)
{
	fputs("{\"exe\": ", f);
	escape_json(f, im->exe);
	fputs(", \"argv\": ", f);
	report_json_strv(f, im->argv);
	fprintf(f, ", \"t_ns\": %" PRIu64 ", \"seq\": %" PRIu32 ", \"traced\": %s"
		", \"stream_state\": \"%s\"", im->t_ns, im->seq,
		im->stream ? "true" : "false", model_stream_state_name(im->state));
	if (im->stream) {
		fputs(", \"stream\": ", f);
		escape_json(f, im->stream->name);
		fprintf(f, ", \"records\": %" PRIu64, im->nrecs);
	}
	if (im->untraced_reason) {
		fputs(", \"untraced_reason\": ", f);
		escape_json(f, im->untraced_reason);
	}
	putc('}', f);
}

static void report_json_perms(FILE *f, unsigned perms)
{
	fprintf(f, "\"%c%c%c%c\"", perms & FSK_P_READ ? 'r' : '-', perms & FSK_P_WRITE ? 'w' : '-',
		perms & FSK_P_EXEC ? 'x' : '-', perms & FSK_P_SHARED ? 's' : 'p');
}

/* "subkind" and "sections" of region k: what its ELF object puts there. */
static void report_json_sections(FILE *f, struct report_layout *rl, const struct model_scan *s,
				 size_t k)
{
	struct elfsect_hit h[128];
	const char *sub, *why;
	long n = report_layout_region(rl, s, k, h, 128, &sub, &why);

	fputs(", \"subkind\": ", f);
	escape_json(f, sub);
	fputs(", \"sections\": [", f);
	for (long i = 0; i < n && i < 128; i++) {
		fprintf(f, "%s{\"name\": ", i ? ", " : "");
		escape_json(f, h[i].name);
		fprintf(f, ", \"start\": \"0x%" PRIx64 "\", \"end\": \"0x%" PRIx64 "\"}",
			h[i].start, h[i].end);
	}
	putc(']', f);
	if (why) {
		fputs(", \"sections_unknown\": ", f);
		escape_json(f, why);
	}
}

static void report_json_region(FILE *f, struct report_layout *rl, const struct model_scan *s,
			       size_t k)
{
	const struct model_region *r = &s->v[k];
	const struct fsk_region *g = &r->r;

	fprintf(f, "{\"start\": \"0x%" PRIx64 "\", \"end\": \"0x%" PRIx64 "\", \"kind\": \"%s\""
		", \"perms\": ", g->start, g->end, model_region_kind_name(g->kind));
	report_json_perms(f, g->perms);
	fputs(", \"path\": ", f);
	escape_json(f, r->path);
	fprintf(f, ", \"resident_pages\": %" PRIu32 ", \"shared_pages\": %" PRIu32
		", \"unshared_pages\": %" PRIu32 ", \"cow_faults\": %" PRIu32
		", \"first_touch_pages\": %" PRIu32 ", \"swapped_pages\": %" PRIu32
		", \"shared_at_fork_pages\": %" PRIu32 ", \"offset\": %" PRIu64,
		g->resident, g->shared, g->unshared, g->cow_faults, g->first_touch,
		g->swapped, g->shared_at_fork, g->offset);
	report_json_sections(f, rl, s, k);
	putc('}', f);
}

static void report_json_rev(FILE *f, const struct model_rev *e)
{
	fprintf(f, "{\"t_ns\": %" PRIu64 ", \"scan_ns\": %" PRIu64 ", \"what\": \"%s\""
		", \"kind\": \"%s\", \"start\": \"0x%" PRIx64 "\", \"end\": \"0x%" PRIx64 "\"",
		e->t_ns, e->scan_ns, regions_diff_what_name(e->what), model_region_kind_name(e->kind),
		e->start, e->end);
	if (e->old_start || e->old_end)
		fprintf(f, ", \"old_start\": \"0x%" PRIx64 "\", \"old_end\": \"0x%" PRIx64 "\"",
			e->old_start, e->old_end);
	else
		fputs(", \"old_start\": null, \"old_end\": null", f);
	fputs(", \"perms\": ", f);
	report_json_perms(f, e->perms);
	fputs(", \"old_perms\": ", f);
	if (e->what == MODEL_REV_PROT)
		report_json_perms(f, e->old_perms);
	else
		fputs("null", f);
	fprintf(f, ", \"cause\": \"%s\", \"stack\": %" PRIu32 ", \"path\": ",
		regions_diff_cause_name(e->cause), e->stack);
	escape_json(f, e->path);
	putc('}', f);
}

static void report_json_exit(FILE *f, const struct model_proc *p)
{
	switch (p->exit_kind) {
	case MODEL_EXIT_EXITED:
		fprintf(f, "{\"kind\": \"exited\", \"code\": %d}", p->exit_value);
		break;
	case MODEL_EXIT_SIGNALED:
		fprintf(f, "{\"kind\": \"signaled\", \"signal\": %d, \"core\": %s}",
			p->exit_value, p->exit_core ? "true" : "false");
		break;
	default:
		fputs("{\"kind\": \"unknown\"}", f);
	}
	fputs(", \"exit_source\": ", f);
	escape_json(f, p->exit_source);
	fputs(", \"exit_how\": ", f);
	if (p->exit_rec)
		fprintf(f, "\"%s\", \"exit_record_code\": %" PRId32,
			model_exit_how_name(p->exit_how), p->exit_code);
	else
		fputs("null", f);
}

static void report_json_malloc(FILE *f, const struct model_proc *p)
{
	const struct heap *h = &p->heap;

	fprintf(f, "{\"calls\": %" PRIu64 ", \"frees\": %" PRIu64 ", \"bytes\": %" PRIu64
		", \"peak_live_bytes\": %" PRIu64 ", \"live_at_exit_bytes\": %" PRIu64
		", \"live_at_exit_blocks\": %" PRIu64 ", \"traced\": %s"
		", \"reallocs\": %" PRIu64 ", \"failed\": %" PRIu64
		", \"mmap_served\": %" PRIu64 ", \"brk_served\": %" PRIu64 ", \"other_served\": %" PRIu64
		", \"unknown_frees\": %" PRIu64 ", \"inherited_blocks\": %" PRIu64
		", \"inherited_bytes\": %" PRIu64 ", \"sample_bytes\": %" PRIu64
		", \"estimated\": %s}",
		h->calls, h->frees, h->bytes, h->peak_live_bytes,
		h->ended ? h->exit_bytes : h->live_bytes,
		h->ended ? h->exit_blocks : (uint64_t)h->live.n,
		p->malloc_traced ? "true" : "false", h->reallocs, h->failed,
		h->mmap_served, h->brk_served, h->other_served, h->unknown_frees,
		h->inherited_blocks, h->inherited_bytes, h->sample_bytes,
		h->sample_bytes ? "true" : "false");
}

static void report_json_proc(FILE *f, const struct model *m, const struct model_proc *p,
			     struct report_sites *rs, struct report_layout *rl)
{
	const struct model_image *last = model_image_last(p);

	fprintf(f, "  {\"pid\": %" PRIu32 ", \"ppid\": %" PRIu32 ", \"argv\": ", p->pid, p->ppid);
	report_json_strv(f, last->argv);
	fputs(", \"exe\": ", f);
	escape_json(f, last->exe);
	fputs(",\n   \"images\": [", f);
	for (size_t k = 0; k < p->nimages; k++) {
		fputs(k ? ",\n     " : "", f);
		report_json_image(f, &p->images[k]);
	}
	fprintf(f, "],\n   \"start_ns\": %" PRIu64 ", \"end_ns\": ", p->start_ns);
	report_json_opt(f, p->has_end, p->end_ns);
	fputs(", \"dead_ns\": ", f);
	report_json_opt(f, p->has_end, p->dead_ns);
	fputs(", \"exit_handlers_ns\": ", f);
	report_json_opt(f, p->has_end, p->handlers_ns);
	fprintf(f, ", \"last_seen_ns\": %" PRIu64, last->stream ? last->last_ns : p->start_ns);
	fputs(",\n   \"exit\": ", f);
	report_json_exit(f, p);
	fputs(",\n   \"reaped_by\": ", f);
	report_json_opt(f, p->reaped, p->reaped_by);
	fputs(", \"reaped_ns\": ", f);
	report_json_opt(f, p->reaped, p->reap_ts);
	fputs(", \"zombie_ns\": ", f);
	report_json_opt(f, p->has_zombie, p->zombie_ns);
	fprintf(f, ", \"orphaned\": %s, \"traced\": %s", p->orphaned ? "true" : "false",
		p->traced ? "true" : "false");
	if (p->untraced_reason) {
		fputs(", \"untraced_reason\": ", f);
		escape_json(f, p->untraced_reason);
	}
	fprintf(f, ", \"stream_state\": \"%s\", \"parent_traced\": %s, \"children\": [",
		model_stream_state_name(last->state), p->parent != MODEL_NONE ? "true" : "false");
	for (size_t c = 0; c < p->nchildren; c++)
		fprintf(f, "%s%" PRIu32, c ? ", " : "", m->procs[p->children[c]]->pid);
	fprintf(f, "],\n   \"dropped\": %" PRIu64 ", \"waits\": %" PRIu64 ", \"wait_polls\": %"
		PRIu64 ", \"forks\": %" PRIu64 ", \"spawns\": %" PRIu64 ", \"exec_fails\": %"
		PRIu64 ", \"threads\": %" PRIu64 ", \"stopped\": %" PRIu64
		", \"continued\": %" PRIu64 ", \"brk_moves\": %" PRIu64 ", \"maps\": %" PRIu64
		", \"fault_samples\": %" PRIu64 ",\n   \"malloc\": ",
		p->dropped, p->waits, p->wait_polls, p->forks, p->spawns, p->exec_fails,
		p->threads, p->stopped, p->continued, p->brk_moves, p->maps, p->faults);
	report_json_malloc(f, p);
	fprintf(f, ",\n   \"fork_fails\": %" PRIu64 ", \"fork_errno\": %" PRId32, p->fork_fails,
		p->fork_err);
	fputs(",\n   \"regions\": [", f);
	for (size_t k = 0; k < p->cur.n; k++) {
		fputs(k ? ",\n     " : "", f);
		report_json_region(f, rl, &p->cur, k);
	}
	fputs("],\n   \"region_events\": [", f);
	for (size_t k = 0; k < p->nrevs; k++) {
		fputs(k ? ",\n     " : "", f);
		report_json_rev(f, &p->revs[k]);
	}
	fprintf(f, "], \"region_events_dropped\": %" PRIu64, p->revs_dropped);
	fprintf(f, ",\n   \"cow\": {\"shared_at_fork_pages\": %" PRIu64
		", \"unshared_pages\": %" PRIu64 ", \"cow_faults\": %" PRIu64
		", \"cow_fault_samples\": %" PRIu64 ", \"cow_fault_samples_tracer\": %" PRIu64 "},\n   ",
		p->shared_at_fork_pages, p->unshared_pages, p->cow_faults, p->cow_fault_samples,
		p->cow_fault_samples_tracer);
	report_sites_json(f, rs, p->index);
	putc('}', f);
}

void report_json(FILE *f, const struct load *l, const char *dir)
{
	const struct model *m = &l->model;
	struct report_sites rs;
	struct report_layout rl;

	report_sites_init(&rs, l);
	report_layout_init(&rl, l);
	fputs("{\"forkscope\": 1, \"trace\": ", f);
	escape_json(f, dir);
	fputs(", \"runner\": ", f);
	if (m->has_runner)
		fprintf(f, "{\"pid\": %" PRIu32 ", \"start_ns\": %" PRIu64 ", \"cut\": %s}",
			m->runner_pid, m->runner_start_ns, m->runner_end_ns ? "false" : "true");
	else
		fputs("null", f);
	fputs(", \"problems\": [", f);
	for (size_t i = 0, n = 0; i < l->nmsgs; i++) {
		if (!load_msg_shown(l, i))
			continue;
		fputs(n++ ? ", " : "", f);
		fputs("{\"message\": ", f);
		escape_json(f, l->msgs[i].text);
		fprintf(f, ", \"fatal\": %s}", l->msgs[i].fatal ? "true" : "false");
	}
	fputs("],\n \"processes\": [\n", f);
	for (size_t i = 0; i < m->n; i++) {
		report_json_proc(f, m, m->procs[m->order[i]], &rs, &rl);
		fputs(i + 1 < m->n ? ",\n" : "\n", f);
	}
	fputs(" ]}\n", f);
	report_sites_free(&rs);
	report_layout_free(&rl);
}
