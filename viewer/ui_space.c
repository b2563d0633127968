/*
 * ui_space: the address space of the selected process at the cursor, from
 * the latest address-space scan the model holds: a ruler from low to high
 * addresses, one band per run of regions of the same kind and file, gaps
 * compressed into one line, and per band a bar of its pages: COW-broken
 * (unshared since the fork), still shared with a relative, other resident,
 * not resident. Bands whose counts changed when the cursor last moved
 * flash for UI_SPACE_FLASH_MS (highlighted, marked '!'); bands that changed
 * since the previous scan are marked '*'. Enter shows the band's details
 * (ui_region.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "ui.h"
#include "vec.h"

struct ui_space_band {
	uint64_t start, end;
	uint16_t kind, perms;
	const char *path;
	size_t first, n;        /* regions cur.v[first .. first+n) */
	uint64_t resident, shared, unshared, first_touch;
	int changed, flash;
};

struct ui_space_prev {
	uint64_t start, resident, unshared;
};

static struct ui_space_band *ui_space_bands;
static size_t ui_space_n, ui_space_cap;
/* the bands of the last two scans seen, to mark what changed */
static struct ui_space_prev *ui_space_old, *ui_space_new;
static size_t ui_space_nold, ui_space_nnew, ui_space_capold, ui_space_capnew;
static uint32_t ui_space_pid, ui_space_scan;
static uint64_t ui_space_scan_ts;

#define UI_SPACE_FLASH_MS 2000

/* The bands of the selected process at the cursor drawn last, and the
 * bands that flash because they differed from it when the cursor moved. */
struct ui_space_seen {
	uint64_t start, resident, shared, unshared;
};
struct ui_space_flash {
	uint64_t start, until;
};
static struct ui_space_seen *ui_space_seen;
static size_t ui_space_nseen, ui_space_capseen, ui_space_seen_proc = MODEL_NONE, ui_space_seen_pos;
static struct ui_space_flash *ui_space_fl;
static size_t ui_space_nfl, ui_space_capfl;

static const char *ui_space_trigger(unsigned t)
{
	static const char *const n[] = {
		"?", "start", "fork, parent", "fork, child", "exec", "exit", "wait",
		"mmap", "brk", "timer",
	};
	return t < sizeof(n) / sizeof(n[0]) ? n[t] : "?";
}

static void ui_space_build(const struct model_proc *p)
{
	const struct model_scan *s = &p->cur;

	ui_space_n = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct model_region *r = &s->v[i];
		struct ui_space_band *b = ui_space_n ? &ui_space_bands[ui_space_n - 1] : NULL;
		int same = b && b->kind == r->r.kind && b->end == r->r.start &&
			   ((!b->path && !r->path) || (b->path && r->path && !strcmp(b->path, r->path)));

		if (!same) {
			if (vec_reserve(&ui_space_bands, &ui_space_cap, ui_space_n + 1, sizeof(*b)) < 0)
				return;
			b = &ui_space_bands[ui_space_n++];
			memset(b, 0, sizeof(*b));
			b->start = r->r.start;
			b->kind = r->r.kind;
			b->perms = r->r.perms;
			b->path = r->path;
			b->first = i;
		}
		b->end = r->r.end;
		b->n++;
		b->resident += r->r.resident;
		b->shared += r->r.shared;
		b->unshared += r->r.unshared;
		b->first_touch += r->r.first_touch;
	}
}

/* Remembers this scan's bands; marks those that differ from the previous
 * scan of the same process. */
static void ui_space_mark(const struct model_proc *p)
{
	if (p->pid != ui_space_pid || p->cur.id != ui_space_scan || p->cur.ts_ns != ui_space_scan_ts) {
		struct ui_space_prev *t = ui_space_old;
		size_t c = ui_space_capold;
		if (p->pid == ui_space_pid) {
			ui_space_old = ui_space_new, ui_space_capold = ui_space_capnew;
			ui_space_nold = ui_space_nnew;
			ui_space_new = t, ui_space_capnew = c;
		} else {
			ui_space_nold = 0;
		}
		ui_space_nnew = 0;
		for (size_t i = 0; i < ui_space_n; i++) {
			if (vec_reserve(&ui_space_new, &ui_space_capnew, ui_space_nnew + 1,
					sizeof(*ui_space_new)) < 0)
				break;
			ui_space_new[ui_space_nnew++] = (struct ui_space_prev){
				ui_space_bands[i].start, ui_space_bands[i].resident,
				ui_space_bands[i].unshared };
		}
		ui_space_pid = p->pid;
		ui_space_scan = p->cur.id;
		ui_space_scan_ts = p->cur.ts_ns;
	}
	for (size_t i = 0; i < ui_space_n && ui_space_nold; i++) {
		struct ui_space_band *b = &ui_space_bands[i];
		b->changed = 1;
		for (size_t k = 0; k < ui_space_nold; k++)
			if (ui_space_old[k].start == b->start)
				b->changed = ui_space_old[k].resident != b->resident ||
					     ui_space_old[k].unshared != b->unshared;
	}
}

static void ui_space_flash_set(uint64_t start, uint64_t until)
{
	for (size_t k = 0; k < ui_space_nfl; k++)
		if (ui_space_fl[k].start == start) {
			ui_space_fl[k].until = until;
			return;
		}
	if (vec_reserve(&ui_space_fl, &ui_space_capfl, ui_space_nfl + 1, sizeof(*ui_space_fl)) == 0)
		ui_space_fl[ui_space_nfl++] = (struct ui_space_flash){ start, until };
}

static void ui_space_build(const struct model_proc *p);

/* Remembers the bands of p at the cursor as the ones seen last. */
static void ui_space_seen_set(const struct ui *u, const struct model_proc *p)
{
	ui_space_seen_proc = p->index;
	ui_space_seen_pos = u->tl.pos;
	ui_space_nseen = 0;
	if (vec_reserve(&ui_space_seen, &ui_space_capseen, ui_space_n + 1, sizeof(*ui_space_seen)) < 0)
		return;
	for (size_t i = 0; i < ui_space_n; i++, ui_space_nseen++)
		ui_space_seen[i] = (struct ui_space_seen){
			ui_space_bands[i].start, ui_space_bands[i].resident,
			ui_space_bands[i].shared, ui_space_bands[i].unshared };
}

void ui_space_remember(struct ui *u, const struct model_proc *p)
{
	if (!p || (p->index == ui_space_seen_proc && u->tl.pos == ui_space_seen_pos))
		return;
	ui_space_build(p);
	ui_space_seen_set(u, p);
	ui_space_nfl = 0;
}

/* Compares the bands with those seen at the previous cursor position of
 * the same process; sets b->flash and asks for the redraw that ends it. */
static void ui_space_flash(struct ui *u, const struct model_proc *p)
{
	uint64_t now = ui_wall(), until = now + UI_SPACE_FLASH_MS * 1000000ull;

	if (p->index != ui_space_seen_proc)
		ui_space_nfl = 0;
	else if (u->tl.pos != ui_space_seen_pos && ui_space_nseen) /* not on a first scan */
		for (size_t i = 0; i < ui_space_n; i++) {
			const struct ui_space_band *b = &ui_space_bands[i];
			int same = 0;
			for (size_t k = 0; k < ui_space_nseen && !same; k++)
				same = ui_space_seen[k].start == b->start &&
				       ui_space_seen[k].resident == b->resident &&
				       ui_space_seen[k].shared == b->shared &&
				       ui_space_seen[k].unshared == b->unshared;
			if (!same)
				ui_space_flash_set(b->start, until);
		}
	if (p->index != ui_space_seen_proc || u->tl.pos != ui_space_seen_pos)
		ui_space_seen_set(u, p);
	for (size_t i = 0; i < ui_space_n; i++)
		for (size_t k = 0; k < ui_space_nfl; k++)
			if (ui_space_fl[k].start == ui_space_bands[i].start && ui_space_fl[k].until > now) {
				ui_space_bands[i].flash = 1;
				ui_redraw_at(u, ui_space_fl[k].until);
			}
}

/* The bar: unshared, shared, other resident, absent pages in proportion. */
static void ui_space_bar(struct ui *u, int y, int x, int w, const struct ui_space_band *b,
			 uint32_t page)
{
	uint64_t pages = (b->end - b->start) / (page ? page : 4096);
	uint64_t parts[4] = { b->unshared, b->shared, 0, 0 };
	static const enum ui_role roles[4] = { UI_UNSHARED, UI_SHARED, UI_RESIDENT, UI_DIM };
	const char *g[4] = {
		ui_glyph(u, "\xe2\x96\x88", "#"), ui_glyph(u, "\xe2\x96\x92", "="),
		ui_glyph(u, "\xe2\x96\x91", "+"), ui_glyph(u, "\xc2\xb7", "."),
	};
	int c = 0;

	if (!pages)
		pages = 1;
	parts[2] = b->resident > b->unshared + b->shared ? b->resident - b->unshared - b->shared : 0;
	for (int k = 0; k < 3; k++)
		if (parts[k] > pages)
			parts[k] = pages;
	for (int k = 0; k < 4 && c < w; k++) {
		int cells = k == 3 ? w - c : (int)((parts[k] * (uint64_t)w + pages - 1) / pages);
		if (c + cells > w)
			cells = w - c;
		attron(ui_attr(u, roles[k]));
		for (int i = 0; i < cells; i++)
			ui_put(y, x + c + i, 1, g[k]);
		attroff(ui_attr(u, roles[k]));
		c += cells;
	}
}

static int ui_space_barw(const struct ui_rect *r)
{
	return r->w >= 96 ? 24 : r->w >= 72 ? 14 : 8;
}

/* Narrow panes leave out the resident and shared counts (the bar shows
 * them; Enter gives the numbers). */
static int ui_space_wide(const struct ui_rect *r)
{
	return r->w >= 96;
}

static void ui_space_line(struct ui *u, const struct ui_rect *r, int y, size_t bi, int sel,
			  uint32_t page)
{
	const struct ui_space_band *b = &ui_space_bands[bi];
	int bw = ui_space_barw(r), x = r->x;
	char sz[32], line[256];
	const char *path = b->path ? strrchr(b->path, '/') : NULL;

	path = path ? path + 1 : b->path ? b->path : "";
	report_bytes(sz, sizeof(sz), b->end - b->start);
	if (sel)
		attron(ui_attr(u, UI_SEL));
	mvhline(y, r->x, ' ', r->w);
	if (b->flash && !sel)
		attron(ui_attr(u, UI_CURSOR));
	snprintf(line, sizeof(line), "%12" PRIx64 " %c%-10s%9s ", b->start,
		 b->flash ? '!' : b->changed ? '*' : ' ', model_region_kind_name(b->kind), sz);
	x += ui_put(y, x, r->w, line);
	if (b->flash && !sel)
		attroff(ui_attr(u, UI_CURSOR));
	if (sel)
		attroff(ui_attr(u, UI_SEL));
	if (x + bw < r->x + r->w)
		ui_space_bar(u, y, x, bw, b, page);
	x += bw;
	if (sel)
		attron(ui_attr(u, UI_SEL));
	if (ui_space_wide(r))
		snprintf(line, sizeof(line), " %6" PRIu64 " %6" PRIu64 " %5" PRIu64 " %s",
			 b->resident, b->shared, b->unshared, path);
	else
		snprintf(line, sizeof(line), " %5" PRIu64 " %s", b->unshared, path);
	if (x < r->x + r->w)
		ui_put(y, x, r->x + r->w - x, line);
	if (sel)
		attroff(ui_attr(u, UI_SEL));
}

void ui_space_draw(struct ui *u, const struct ui_rect *r)
{
	const struct model_proc *p = ui_selected(u);
	const struct model_image *im;
	int rows = r->h - 2, y, nrows = 0, selrow = 0;
	uint32_t page = 4096;
	char t[256], ts[48];

	if (!p) {
		ui_title(u, r, UI_SPACE, " Memory");
		return;
	}
	im = model_image_last(p);
	if (im->stream && im->stream->state != READER_HEADER)
		page = im->stream->hdr.page_size;
	ui_space_build(p);
	if (!ui_space_n) {
		snprintf(t, sizeof(t), " Memory of %" PRIu32, p->pid);
		ui_title(u, r, UI_SPACE, t);
		ui_put(r->y + 2, r->x + 2, r->w - 2, "no address-space scan recorded");
		ui_put(r->y + 3, r->x + 2, r->w - 2, "for this process up to the cursor time");
		return;
	}
	ui_space_mark(p);
	ui_space_flash(u, p);
	ui_time(u, p->cur.ts_ns, ts, sizeof(ts));
	snprintf(t, sizeof(t), " Memory of %" PRIu32 ": %" PRIu64 " pages COW-broken; scan %s (%s)",
		 p->pid, p->unshared_pages, ts, ui_space_trigger(p->cur.trigger));
	ui_title(u, r, UI_SPACE, t);
	if (u->space_row >= (int)ui_space_n)
		u->space_row = (int)ui_space_n - 1;
	if (u->space_detail) {
		const struct ui_space_band *b = &ui_space_bands[u->space_row];
		ui_region_draw(u, r, p, b->first, b->n);
		return;
	}
	if (ui_space_wide(r))
		snprintf(t, sizeof(t), "%12s  %-10s%9s %-*s %6s %6s %5s %s", "ADDRESS", "KIND",
			 "SIZE", ui_space_barw(r), "COW/shared/res", "RES", "SHARED", "COW", "FILE");
	else
		snprintf(t, sizeof(t), "%12s  %-10s%9s %-*s %5s %s", "ADDRESS", "KIND", "SIZE",
			 ui_space_barw(r), "pages", "COW", "FILE");
	attron(A_BOLD);
	ui_putpad(r->y + 1, r->x, r->w, t);
	attroff(A_BOLD);
	/* Rows: bands and, before a band that does not touch the previous
	 * one, a gap line. */
	for (size_t i = 0; i < ui_space_n; i++) {
		nrows += i && ui_space_bands[i].start > ui_space_bands[i - 1].end;
		if ((int)i == u->space_row)
			selrow = nrows;
		nrows++;
	}
	if (rows < 1)
		return;
	if (selrow < u->space_top)
		u->space_top = selrow;
	if (selrow >= u->space_top + rows)
		u->space_top = selrow - rows + 1;
	y = r->y + 2 - u->space_top;
	for (size_t i = 0; i < ui_space_n && y < r->y + r->h; i++) {
		if (i && ui_space_bands[i].start > ui_space_bands[i - 1].end) {
			if (y >= r->y + 2) {
				char sz[32], line[96];
				report_bytes(sz, sizeof(sz), ui_space_bands[i].start - ui_space_bands[i - 1].end);
				snprintf(line, sizeof(line), "%12s  %s gap of %s", "",
					 ui_glyph(u, "\xe2\x8b\xae", ":"), sz);
				attron(ui_attr(u, UI_DIM));
				ui_putpad(y, r->x, r->w, line);
				attroff(ui_attr(u, UI_DIM));
			}
			y++;
		}
		if (y >= r->y + 2 && y < r->y + r->h)
			ui_space_line(u, r, y, i, (int)i == u->space_row && u->focus == UI_SPACE, page);
		y++;
	}
}

int ui_space_key(struct ui *u, int key)
{
	int page = u->r[UI_SPACE].h > 3 ? u->r[UI_SPACE].h - 3 : 1;

	if (u->space_detail) {
		switch (key) {
		case '\n': case KEY_ENTER: case 27: case KEY_BACKSPACE:
			u->space_detail = 0;
			return 1;
		case KEY_UP: case 'k': u->detail_top--; return 1;
		case KEY_DOWN: case 'j': u->detail_top++; return 1;
		case KEY_PPAGE: u->detail_top -= page; return 1;
		case KEY_NPAGE: u->detail_top += page; return 1;
		}
	}
	switch (key) {
	case KEY_UP: case 'k': u->space_row--; break;
	case KEY_DOWN: case 'j': u->space_row++; break;
	case KEY_PPAGE: u->space_row -= page; break;
	case KEY_NPAGE: u->space_row += page; break;
	case 'g': u->space_row = 0; break;
	case 'G': u->space_row = 1 << 30; break;
	case '\n': case KEY_ENTER:
		u->space_detail = ui_space_n > 0;
		u->detail_top = 0;
		return 1;
	default:
		return 0;
	}
	if (u->space_row < 0)
		u->space_row = 0;
	if (ui_space_n && u->space_row >= (int)ui_space_n)
		u->space_row = (int)ui_space_n - 1;
	return 1;
}
