/*
 * ui_region: the details of one band of the address-space pane (Enter):
 * each region's range, permissions, offset and page counts, the code that
 * broke COW there (sampled COW faults of the process's current image in
 * the band up to the cursor, grouped by faulting instruction, symbolized)
 * and the ELF sections of each region (elfsect.h through report_layout).
 * The lines scroll with the pane's keys.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "report_layout.h"
#include "report_sites.h"
#include "ui.h"
#include "vec.h"

#define UI_REGION_SITES 5       /* top COW sites shown */

struct ui_region_site {
	uint64_t ip, faults;
	uint32_t stack;         /* an interned stack id seen with it, 0 = none */
};

/* Sites of the last band asked for, up to cursor ui_region_pos: kept while
 * the cursor moves forward over the same band, so playing or stepping
 * with the details open only looks at the new events. */
static struct ui_region_site *ui_region_sites;
static size_t ui_region_nsites, ui_region_cap, ui_region_pos = (size_t)-1, ui_region_proc;
static size_t ui_region_nev;
static uint64_t ui_region_start, ui_region_end, ui_region_total;
static struct table ui_region_idx;      /* ip + 1 -> site index + 1 */
/* stacks and symbols for the site names: built on first use, again after
 * the trace grew */
static struct report_sites ui_region_sym;
static size_t ui_region_sym_nev;
/* ELF sections as the report finds them; nev + 1 once built */
static struct report_layout ui_region_layout;
static size_t ui_region_layout_nev;

static int ui_region_site_cmp(const void *a, const void *b)
{
	const struct ui_region_site *x = a, *y = b;

	if (x->faults != y->faults)
		return x->faults > y->faults ? -1 : 1;
	return x->ip < y->ip ? -1 : x->ip > y->ip;
}

/* Sampled COW faults of p's current image in [start, end) up to the
 * cursor: one pass over the events before it when the details open,
 * then only over the events the cursor moves past. */
static void ui_region_collect(struct ui *u, const struct model_proc *p, uint64_t start, uint64_t end)
{
	const struct reader_stream *s = model_image_last(p)->stream;
	size_t from = ui_region_pos;

	if (ui_region_proc != p->index || ui_region_start != start || ui_region_end != end ||
	    ui_region_pos > u->tl.pos ||
	    ui_region_nev != timeline_len(&u->tl)) {
		from = 0;
		ui_region_nsites = 0;
		ui_region_total = 0;
		table_free(&ui_region_idx);
	}
	ui_region_pos = u->tl.pos;
	ui_region_proc = p->index;
	ui_region_start = start;
	ui_region_end = end;
	ui_region_nev = timeline_len(&u->tl);
	for (size_t i = from; s && i < u->tl.pos; i++) {
		const struct model_event *e = timeline_event(&u->tl, i);
		struct fsk_fault f;
		uint64_t k;
		if (e->kind != FSK_REC_FAULT || e->stream != s || e->len < sizeof(f))
			continue;
		memcpy(&f, e->payload, sizeof(f));
		if (f.cls != FSK_FAULT_COW || f.addr < start || f.addr >= end)
			continue;
		ui_region_total++;
		if (!table_get(&ui_region_idx, f.ip + 1, &k)) {
			if (vec_reserve(&ui_region_sites, &ui_region_cap, ui_region_nsites + 1,
					sizeof(*ui_region_sites)) < 0 ||
			    table_put(&ui_region_idx, f.ip + 1, ui_region_nsites + 1, NULL) < 0)
				break;
			ui_region_sites[ui_region_nsites] = (struct ui_region_site){ f.ip, 0, f.stack };
			k = ++ui_region_nsites;
		}
		ui_region_sites[k - 1].faults++;
		if (!ui_region_sites[k - 1].stack)
			ui_region_sites[k - 1].stack = f.stack;
	}
}

/* "func (file:line)" from the fault's stack, else "module+0xoff" from the
 * modules the stream recorded, else the address. */
static void ui_region_site_name(struct ui *u, const struct model_proc *p,
				const struct ui_region_site *site, char *buf, size_t n)
{
	const struct reader_stream *s = model_image_last(p)->stream;
	const struct stacks *st = &ui_region_sym.sites.st;
	uint64_t si;
	size_t stack, mod;

	snprintf(buf, n, "0x%" PRIx64, site->ip);
	if (!s)
		return;
	if (ui_region_sym.ok && ui_region_sym_nev != timeline_len(&u->tl))
		report_sites_free(&ui_region_sym);
	if (!ui_region_sym.ok) {
		if (stacks_build(&ui_region_sym.sites.st, &u->tl.load) < 0)
			return;
		if (symbols_init(&ui_region_sym.sym, &ui_region_sym.sites.st) < 0) {
			stacks_free(&ui_region_sym.sites.st);
			return;
		}
		ui_region_sym.ok = 1;
		ui_region_sym_nev = timeline_len(&u->tl);
	}
	stack = site->stack ? stacks_get(st, s, site->stack) : STACKS_NONE;
	if (stack != STACKS_NONE) {
		report_sites_frame_str(&ui_region_sym, stack, 0, buf, n);
		return;
	}
	if (!table_get(&st->by_stream, (uintptr_t)s, &si) ||
	    (mod = stacks_module_of(st, si - 1, site->ip)) == STACKS_NONE)
		return;
	const char *base = strrchr(st->mods[mod].path, '/');
	snprintf(buf, n, "%s+0x%" PRIx64, base ? base + 1 : st->mods[mod].path,
		 site->ip - st->mods[mod].bias);
}

struct ui_region_lines {
	char **v;
	size_t n, cap;
};

static void ui_region_add(struct ui_region_lines *l, const char *line)
{
	char *d = strdup(line);

	if (!d || vec_reserve(&l->v, &l->cap, l->n + 1, sizeof(*l->v)) < 0) {
		free(d);
		return;
	}
	l->v[l->n++] = d;
}

static void ui_region_addf(struct ui_region_lines *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void ui_region_addf(struct ui_region_lines *l, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	ui_region_add(l, line);
}

#define UI_REGION_SECS 24       /* section names listed per region */

void ui_region_warm(struct ui *u)
{
	if (ui_region_layout_nev == timeline_len(&u->tl) + 1)
		return;
	if (ui_region_layout_nev)
		report_layout_free(&ui_region_layout);
	report_layout_init(&ui_region_layout, &u->tl.load);
	ui_region_layout_nev = timeline_len(&u->tl) + 1;
}

/* The ELF sections region k of the scan holds (an anonymous tail after an
 * object: that object's .bss), through report_layout as the report names
 * them, or why they are unknown. The layout takes the trace's build-ids
 * once, again after the trace grew. */
static void ui_region_sections(struct ui *u, const struct model_scan *sc, size_t k,
			       struct ui_region_lines *l)
{
	struct elfsect_hit h[UI_REGION_SECS];
	const char *sub, *why;
	char line[1024], sz[32];
	size_t len;
	long n;

	ui_region_warm(u);
	n = report_layout_region(&ui_region_layout, sc, k, h, UI_REGION_SECS, &sub, &why);
	if (why) {
		ui_region_addf(l, "   ELF sections: unknown, %s", why);
		return;
	}
	if (n <= 0)
		return;
	len = (size_t)snprintf(line, sizeof(line), "   ELF sections%s%s%s:", sub ? " (" : "",
			       sub ? sub : "", sub ? ")" : "");
	for (long i = 0; i < n && i < UI_REGION_SECS && len < sizeof(line); i++) {
		report_bytes(sz, sizeof(sz), h[i].end - h[i].start);
		len += (size_t)snprintf(line + len, sizeof(line) - len, "%s %s %s", i ? "," : "",
					h[i].name, sz);
	}
	if (n > UI_REGION_SECS && len < sizeof(line))
		snprintf(line + len, sizeof(line) - len, ", ... (%ld in all)", n);
	ui_region_add(l, line);
}

static void ui_region_lines(struct ui *u, const struct model_proc *p, size_t first, size_t n,
			    struct ui_region_lines *l)
{
	const struct model_scan *sc = &p->cur;
	uint64_t start = sc->v[first].r.start, end = sc->v[first + n - 1].r.end;
	struct ui_region_site *top;
	char name[256];

	for (size_t i = first; i < first + n; i++) {
		const struct fsk_region *g = &sc->v[i].r;
		char sz[32];
		report_bytes(sz, sizeof(sz), g->end - g->start);
		ui_region_addf(l, " %" PRIx64 "-%" PRIx64 " %c%c%c%c %s offset 0x%" PRIx64 "%s%s",
			       g->start, g->end, g->perms & FSK_P_READ ? 'r' : '-',
			       g->perms & FSK_P_WRITE ? 'w' : '-', g->perms & FSK_P_EXEC ? 'x' : '-',
			       g->perms & FSK_P_SHARED ? 's' : 'p', sz, g->offset,
			       sc->v[i].path ? " " : "", sc->v[i].path ? sc->v[i].path : "");
		ui_region_addf(l, "   pages: resident %u, swapped %u, shared %u, unshared (COW broken) %u",
			       g->resident, g->swapped, g->shared, g->unshared);
		ui_region_addf(l, "   first touch %u, shared at fork %u, COW faults %u, copied %u",
			       g->first_touch, g->shared_at_fork, g->cow_faults, g->copied);
		ui_region_sections(u, sc, i, l);
	}
	ui_region_collect(u, p, start, end);
	if (!ui_region_total) {
		ui_region_add(l, " Top COW sites: no sampled COW fault in this band up to the cursor");
		return;
	}
	ui_region_addf(l, " Top COW sites (%" PRIu64 " sampled COW faults up to the cursor):",
		       ui_region_total);
	top = malloc(ui_region_nsites * sizeof(*top));
	if (!top)
		return;
	memcpy(top, ui_region_sites, ui_region_nsites * sizeof(*top));
	qsort(top, ui_region_nsites, sizeof(*top), ui_region_site_cmp);
	for (size_t i = 0; i < ui_region_nsites && i < UI_REGION_SITES; i++) {
		ui_region_site_name(u, p, &top[i], name, sizeof(name));
		ui_region_addf(l, "   %6" PRIu64 "  %s", top[i].faults, name);
	}
	free(top);
}

static void ui_region_wrap(struct ui_region_lines *l, const char *s, int w);

void ui_region_draw(struct ui *u, const struct ui_rect *r, const struct model_proc *p,
		    size_t first, size_t n)
{
	struct ui_region_lines l = { 0 }, raw = { 0 };
	const struct model_region *g = &p->cur.v[first];
	int y = r->y + 1, rows = r->h - 2;
	char line[512];

	snprintf(line, sizeof(line), " %s %s (Enter/Esc: back, Up/Down scroll)",
		 model_region_kind_name(g->r.kind), g->path ? g->path : "(anonymous)");
	attron(A_BOLD);
	ui_putpad(y++, r->x, r->w, line);
	attroff(A_BOLD);
	ui_region_lines(u, p, first, n, &raw);
	for (size_t i = 0; i < raw.n; i++) {
		ui_region_wrap(&l, raw.v[i], r->w - 1);
		free(raw.v[i]);
	}
	free(raw.v);
	if (u->detail_top > (int)l.n - rows)
		u->detail_top = (int)l.n - rows;
	if (u->detail_top < 0)
		u->detail_top = 0;
	for (int i = 0; i < rows && u->detail_top + i < (int)l.n; i++)
		ui_putpad(y + i, r->x, r->w, l.v[u->detail_top + i]);
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i]);
	free(l.v);
}

/* Splits s into rows of at most w bytes at spaces; continuation rows are
 * indented by 5. Rows go to add(). */
static void ui_region_wrap(struct ui_region_lines *l, const char *s, int w)
{
	char row[512];
	int first = 1;

	while (*s) {
		int room = first ? w : w - 5, n = (int)strlen(s), cut = n;
		if (room < 16)
			room = 16;
		if (n > room) {
			cut = room;
			while (cut > room / 2 && s[cut] != ' ')
				cut--;
			if (s[cut] != ' ')
				cut = room;
		}
		snprintf(row, sizeof(row), "%s%.*s", first ? "" : "     ", cut, s);
		ui_region_add(l, row);
		s += cut;
		while (*s == ' ')
			s++;
		first = 0;
	}
}

void ui_region_free(void)
{
	report_sites_free(&ui_region_sym);
	if (ui_region_layout_nev)
		report_layout_free(&ui_region_layout);
	ui_region_layout_nev = 0;
	free(ui_region_sites);
	table_free(&ui_region_idx);
	ui_region_sites = NULL;
	ui_region_nsites = ui_region_cap = 0;
	ui_region_pos = (size_t)-1;
}
