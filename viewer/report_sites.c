/* report_sites: see report_sites.h. */
#include "report_sites.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"

#define REPORT_SITES_JSON_MAX 50        /* top sites by bytes, and by calls */
#define REPORT_SITES_LEAKS_MAX 200
#define REPORT_SITES_TEXT_MAX 5
#define REPORT_SITES_TEXT_FRAMES 4

void report_sites_init(struct report_sites *rs, const struct load *l)
{
	memset(rs, 0, sizeof(*rs));
	if (sites_build(&rs->sites, l, NULL) < 0 || symbols_init(&rs->sym, &rs->sites.st) < 0) {
		sites_free(&rs->sites);
		return;
	}
	rs->ok = 1;
}

void report_sites_free(struct report_sites *rs)
{
	if (rs->ok) {
		symbols_free(&rs->sym);
		sites_free(&rs->sites);
	}
	memset(rs, 0, sizeof(*rs));
}

static const char *report_sites_base(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;

	return s ? s + 1 : path;
}

void report_sites_frame_str(struct report_sites *rs, size_t stack, uint32_t k, char *buf, size_t n)
{
	struct symbols_frame fr;

	symbols_frames(&rs->sym, stack, k, &fr, 1);
	if (fr.function && fr.file)
		snprintf(buf, n, "%s (%s:%d)", fr.function, report_sites_base(fr.file), fr.line);
	else if (fr.function)
		snprintf(buf, n, "%s (%s)", fr.function, report_sites_base(fr.module));
	else if (fr.module)
		snprintf(buf, n, "%s+0x%" PRIx64, report_sites_base(fr.module), fr.offset);
	else
		snprintf(buf, n, "0x%" PRIx64, fr.address);
}

void report_sites_json_frames(FILE *f, struct report_sites *rs, size_t stack)
{
	struct symbols_frame fr[SYMBOLS_INLINE_MAX];
	int first = 1;

	putc('[', f);
	if (rs->ok && stack != STACKS_NONE) {
		for (uint32_t k = 0; k < rs->sites.st.v[stack].depth; k++) {
			size_t n = symbols_frames(&rs->sym, stack, k, fr, SYMBOLS_INLINE_MAX);
			for (size_t i = 0; i < n; i++) {
				fprintf(f, "%s{\"address\": \"0x%" PRIx64 "\", \"module\": ",
					first ? "" : ", ", fr[i].address);
				escape_json(f, fr[i].module ? fr[i].module : "?");
				fprintf(f, ", \"offset\": \"0x%" PRIx64 "\", \"function\": ", fr[i].offset);
				escape_json(f, fr[i].function);
				fputs(", \"file\": ", f);
				escape_json(f, fr[i].file);
				if (fr[i].line)
					fprintf(f, ", \"line\": %d}", fr[i].line);
				else
					fputs(", \"line\": null}", f);
				first = 0;
			}
		}
	}
	putc(']', f);
}

static void report_sites_json_cow(FILE *f, struct report_sites *rs, const struct sites_cow *v, size_t n)
{
	putc('[', f);
	for (size_t i = 0; i < n && i < REPORT_SITES_JSON_MAX; i++) {
		fprintf(f, "%s\n     {\"pages\": %" PRIu64 ", \"kind\": \"%s\", \"frames\": ",
			i ? "," : "", v[i].pages, model_region_kind_name(v[i].kind));
		report_sites_json_frames(f, rs, v[i].stack);
		putc('}', f);
	}
	putc(']', f);
}

void report_sites_json(FILE *f, struct report_sites *rs, size_t proc)
{
	const struct sites_proc *p = rs->ok && proc < rs->sites.n ? &rs->sites.p[proc] : NULL;
	size_t *by_bytes = NULL, *by_calls = NULL, n = 0;
	char *pick = NULL;

	fputs("\"leaks\": [", f);
	for (size_t i = 0; p && i < p->nleaks && i < REPORT_SITES_LEAKS_MAX; i++) {
		fprintf(f, "%s\n     {\"bytes\": %" PRIu64 ", \"blocks\": %" PRIu64 ", \"frames\": ",
			i ? "," : "", p->leaks[i].bytes, p->leaks[i].blocks);
		report_sites_json_frames(f, rs, p->leaks[i].stack);
		putc('}', f);
	}
	fputs("],\n   \"sites\": {\"alloc\": [", f);
	if (p && p->nalloc) {
		/* the top by bytes and the top by calls, in the order by bytes */
		by_bytes = sites_sorted(p, 0);
		by_calls = sites_sorted(p, 1);
		pick = calloc(p->nalloc, 1);
	}
	if (by_bytes && by_calls && pick) {
		for (size_t i = 0; i < p->nalloc && i < REPORT_SITES_JSON_MAX; i++)
			pick[by_bytes[i]] = pick[by_calls[i]] = 1;
		for (size_t i = 0; i < p->nalloc; i++) {
			const struct sites_site *s = &p->alloc[by_bytes[i]];
			if (!pick[by_bytes[i]])
				continue;
			fprintf(f, "%s\n     {\"bytes\": %" PRIu64 ", \"calls\": %" PRIu64 ", \"frames\": ",
				n++ ? "," : "", s->bytes, s->calls);
			report_sites_json_frames(f, rs, s->stack);
			putc('}', f);
		}
	}
	fputs("], \"cow\": ", f);
	report_sites_json_cow(f, rs, p ? p->cow : NULL, p ? p->ncow : 0);
	if (p) {
		size_t nc, kids;
		struct sites_cow *cc = sites_cow_children(&rs->sites, proc, &nc, &kids);
		fprintf(f, ", \"cow_children\": {\"children\": %zu, \"sites\": ", kids);
		report_sites_json_cow(f, rs, cc, nc);
		fprintf(f, ", \"tracer_pages\": %" PRIu64 "}", sites_tracer_cow_children(&rs->sites, proc));
		free(cc);
	}
	putc('}', f);
	free(by_bytes);
	free(by_calls);
	free(pick);
}

static void report_sites_bytes(char *buf, size_t n, uint64_t b)
{
	if (b < 10240)
		snprintf(buf, n, "%" PRIu64 " B", b);
	else if (b < 10ull << 20)
		snprintf(buf, n, "%.1f KiB", (double)b / 1024);
	else
		snprintf(buf, n, "%.1f MiB", (double)b / 1048576);
}

static void report_sites_stack(FILE *f, struct report_sites *rs, size_t stack)
{
	char buf[600];

	if (stack == STACKS_NONE) {
		fputs("(no stack)\n", f);
		return;
	}
	uint32_t d = rs->sites.st.v[stack].depth;
	for (uint32_t k = 0; k < d && k < REPORT_SITES_TEXT_FRAMES; k++) {
		report_sites_frame_str(rs, stack, k, buf, sizeof(buf));
		fprintf(f, "%s", k ? " <- " : "");
		escape_text(f, buf);
	}
	fputs(d > REPORT_SITES_TEXT_FRAMES ? " <- ...\n" : "\n", f);
}

static void report_sites_list(FILE *f, struct report_sites *rs, const struct sites_proc *p, int by_calls)
{
	size_t *v = sites_sorted(p, by_calls);
	char b[32];

	if (!v)
		return;
	fprintf(f, "  top allocation sites by %s:\n", by_calls ? "calls" : "bytes");
	for (size_t i = 0; i < p->nalloc && i < REPORT_SITES_TEXT_MAX; i++) {
		const struct sites_site *s = &p->alloc[v[i]];
		report_sites_bytes(b, sizeof(b), s->bytes);
		fprintf(f, "    %s in %" PRIu64 " call%s: ", b, s->calls, s->calls == 1 ? "" : "s");
		report_sites_stack(f, rs, s->stack);
	}
	free(v);
}

static void report_sites_cow_text(FILE *f, struct report_sites *rs, const char *what,
				  const struct sites_cow *v, size_t n, uint64_t tracer)
{
	if (n || tracer)
		fprintf(f, "  COW faults by site%s:\n", what);
	for (size_t k = 0; k < n && k < REPORT_SITES_TEXT_MAX; k++) {
		fprintf(f, "    %" PRIu64 " page%s of %s: ", v[k].pages, v[k].pages == 1 ? "" : "s",
			model_region_kind_name(v[k].kind));
		report_sites_stack(f, rs, v[k].stack);
	}
	if (n > REPORT_SITES_TEXT_MAX)
		fprintf(f, "    ... and %zu more (--json lists them)\n", n - REPORT_SITES_TEXT_MAX);
	if (tracer)
		fprintf(f, "    (%" PRIu64 " page%s copied by forkscope's own code, not the program's)\n",
			tracer, tracer == 1 ? "" : "s");
}

void report_sites_text(FILE *f, struct report_sites *rs, const struct model *m)
{
	char b[32];

	if (!rs->ok || !rs->sites.st.n) {
		fputs("call stacks: none recorded (record with forkscope run --stack-depth N)\n", f);
		return;
	}
	for (size_t oi = 0; oi < m->n; oi++) {
		size_t i = m->order[oi];
		const struct sites_proc *p = &rs->sites.p[i];
		size_t nc, kids;
		struct sites_cow *cc = sites_cow_children(&rs->sites, i, &nc, &kids);
		uint64_t tp = m->procs[i]->cow_fault_samples_tracer;
		uint64_t tk = sites_tracer_cow_children(&rs->sites, i);
		if (!p->nalloc && !p->nleaks && !p->nmmap && !p->ncow && !nc && !tp && !tk) {
			free(cc);
			continue;
		}
		fprintf(f, "process %" PRIu32 ":\n", m->procs[i]->pid);
		report_sites_cow_text(f, rs, "", p->cow, p->ncow, tp);
		if (kids > 1) {
			char what[64];
			snprintf(what, sizeof(what), ", summed over %zu children", kids);
			report_sites_cow_text(f, rs, what, cc, nc, tk);
		}
		free(cc);
		report_sites_bytes(b, sizeof(b), p->peak_bytes);
		fprintf(f, "  peak live heap %s, reached by: ", b);
		report_sites_stack(f, rs, p->peak_stack);
		report_sites_list(f, rs, p, 0);
		report_sites_list(f, rs, p, 1);
		if (p->nleaks)
			fputs("  leaks at exit (largest first):\n", f);
		for (size_t k = 0; k < p->nleaks && k < REPORT_SITES_TEXT_MAX; k++) {
			report_sites_bytes(b, sizeof(b), p->leaks[k].bytes);
			fprintf(f, "    %s in %" PRIu64 " block%s: ", b, p->leaks[k].blocks,
				p->leaks[k].blocks == 1 ? "" : "s");
			report_sites_stack(f, rs, p->leaks[k].stack);
		}
		if (p->nleaks > REPORT_SITES_TEXT_MAX)
			fprintf(f, "    ... and %zu more (--json lists them)\n",
				p->nleaks - REPORT_SITES_TEXT_MAX);
		if (p->nmmap)
			fputs("  mmap calls by site:\n", f);
		for (size_t k = 0; k < p->nmmap && k < REPORT_SITES_TEXT_MAX; k++) {
			report_sites_bytes(b, sizeof(b), p->mmap[k].bytes);
			fprintf(f, "    %" PRIu64 " call%s, %s: ", p->mmap[k].calls,
				p->mmap[k].calls == 1 ? "" : "s", b);
			report_sites_stack(f, rs, p->mmap[k].stack);
		}
	}
	for (size_t i = 0; i < rs->sym.nnotes; i++) {
		fputs("note: ", f);
		escape_text(f, rs->sym.notes[i]);
		putc('\n', f);
	}
}
