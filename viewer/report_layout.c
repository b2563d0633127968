/*
 * report_layout: the address space of a process the way textbooks draw it
 * (text, rodata, data, bss, heap, mmap, libs, stack), from its last scan,
 * with the ELF sections each mapping holds (elfsect.h). Libraries are split
 * into lib text / rodata / data / bss by their sections, since the preload
 * only knows "lib".
 */
#include "report_layout.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "report.h"

#define LAYOUT_PROCS 4          /* processes whose layout the text shows */
#define LAYOUT_SECS 8           /* section names per line */

void report_layout_init(struct report_layout *rl, const struct load *l)
{
	elfsect_init(&rl->es);
	for (size_t i = 0; i < l->nev; i++) {
		const struct model_event *ev = &l->ev[i];
		struct fsk_module mod;
		uint32_t pos = sizeof(mod);
		char *path = NULL;
		if (ev->kind != FSK_REC_MODULE || !ev->payload || ev->len < sizeof(mod))
			continue;
		memcpy(&mod, ev->payload, sizeof(mod));
		if (reader_str(ev->payload, ev->len, &pos, &path) == 0 && path[0])
			elfsect_expect(&rl->es, path, mod.build_id, mod.build_id_len);
		free(path);
	}
}

void report_layout_free(struct report_layout *rl)
{
	elfsect_free(&rl->es);
}

long report_layout_region(struct report_layout *rl, const struct model_scan *s, size_t k,
			  struct elfsect_hit *out, size_t max, const char **subkind,
			  const char **why)
{
	const struct model_region *r = &s->v[k];
	const struct model_region *obj = r;
	struct elfsect_map m;
	uint64_t bias;
	long n;

	*subkind = NULL;
	*why = NULL;
	if (r->r.kind == FSK_RK_FORKSCOPE || r->r.kind == FSK_RK_SHM)
		return 0;
	/* The anonymous tail right after an object's last file mapping is
	 * that object's .bss. */
	if (!r->path && (r->r.kind == FSK_RK_BSS || r->r.kind == FSK_RK_LIB) && k &&
	    s->v[k - 1].r.end == r->r.start && s->v[k - 1].path)
		obj = &s->v[k - 1];
	if (!obj->path || obj->path[0] != '/')
		return 0;
	/* The bias from the object's lowest mapping (see elfsect_bias). */
	const struct model_region *low = obj;
	for (size_t j = (size_t)(obj - s->v); j > 0; j--) {
		const struct model_region *q = &s->v[j - 1];
		if (!q->path || strcmp(q->path, obj->path) || q->r.inode != obj->r.inode)
			break;
		low = q;
	}
	m = (struct elfsect_map){ obj->path, low->r.start, low->r.end, low->r.offset, obj->r.inode };
	if (elfsect_bias(&rl->es, &m, &bias, why) < 0) {
		/* a data file mapped by the program is not an error */
		if (r->r.kind != FSK_RK_LIB && r->r.kind > FSK_RK_BSS)
			*why = NULL;
		return 0;
	}
	n = elfsect_in(&rl->es, &m, bias, r->r.start, r->r.end, out, max, why);
	if (n > 0)
		*subkind = elfsect_subkind(out, (size_t)n < max ? (size_t)n : max, r->r.perms);
	return n < 0 ? 0 : n;
}

/* "lib text", "text", "heap", ... for the layout's kind column. */
static void layout_kind(char *buf, size_t n, unsigned kind, const char *sub)
{
	if (kind == FSK_RK_LIB && sub)
		snprintf(buf, n, "lib %s", sub);
	else
		snprintf(buf, n, "%s", model_region_kind_name(kind));
}

static void layout_proc(FILE *f, struct report_layout *rl, const struct model_proc *p)
{
	struct elfsect_hit h[64];

	fprintf(f, "%" PRIu32 " ", p->pid);
	escape_text(f, model_image_last(p)->exe);
	fputs("\n", f);
	for (size_t k = 0; k < p->cur.n; k++) {
		const struct model_region *r = &p->cur.v[k];
		const char *sub, *why;
		char sz[32], kb[32];
		if (r->r.kind == FSK_RK_FORKSCOPE)
			continue;
		long n = report_layout_region(rl, &p->cur, k, h, 64, &sub, &why);
		report_bytes(sz, sizeof(sz), r->r.end - r->r.start);
		layout_kind(kb, sizeof(kb), r->r.kind, sub);
		fprintf(f, "  0x%012" PRIx64 "-0x%012" PRIx64 " %10s %c%c%c%c %-12s", r->r.start,
			r->r.end, sz, r->r.perms & FSK_P_READ ? 'r' : '-',
			r->r.perms & FSK_P_WRITE ? 'w' : '-', r->r.perms & FSK_P_EXEC ? 'x' : '-',
			r->r.perms & FSK_P_SHARED ? 's' : 'p', kb);
		if (r->path) {
			const char *base = strrchr(r->path, '/');
			putc(' ', f);
			escape_text(f, base && r->path[0] == '/' ? base + 1 : r->path);
		}
		for (long i = 0; i < n && i < LAYOUT_SECS && i < 64; i++) {
			report_bytes(sz, sizeof(sz), h[i].end - h[i].start);
			fprintf(f, "%s%s %s", i ? ", " : "  ", h[i].name, sz);
		}
		if (n > LAYOUT_SECS)
			fprintf(f, ", +%ld more", n - LAYOUT_SECS);
		if (why) {
			fputs("  (sections unknown: ", f);
			escape_text(f, why);
			putc(')', f);
		}
		fputs("\n", f);
	}
}

void report_layout_text(FILE *f, struct report_layout *rl, const struct model *m)
{
	size_t shown = 0, more = 0;

	for (size_t i = 0; i < m->n; i++) {
		const struct model_proc *p = m->procs[m->order[i]];
		if (!p->cur.n)
			continue;
		if (shown == LAYOUT_PROCS) {
			more++;
			continue;
		}
		if (!shown)
			fputs("\naddress-space layout at each process's last scan, low to high, with the\n"
			      "ELF sections of each mapping (libraries split by their sections)\n", f);
		layout_proc(f, rl, p);
		shown++;
	}
	if (more)
		fprintf(f, "(%zu more process%s: forkscope report --json has \"sections\" per region)\n",
			more, more == 1 ? "" : "es");
}
