/*
 * ui_events: the event log around the cursor. Events up to the cursor in
 * full, the next ones dimmed; the last applied one highlighted. The region
 * changes a scan found follow its SCAN_END line. Filters by class
 * (lifecycle, malloc, mmap/brk, scans, region changes, COW) and by the
 * selected process; / searches the lines, n and N repeat. Moving in this pane moves
 * the cursor: the other panes follow.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "describe.h"
#include "ui.h"

#define UI_EVENTS_SCAN 400000   /* events looked at to fill the pane */
#define UI_EVENTS_REVS 64       /* a filter class of our own: region changes */

static const struct {
	unsigned bits;
	const char *name;
} ui_events_classes[] = {
	{ DESCRIBE_ALL, "all" },
	{ DESCRIBE_LIFECYCLE, "lifecycle" },
	{ DESCRIBE_MALLOC, "malloc" },
	{ DESCRIBE_MAP, "mmap/brk" },
	{ DESCRIBE_REGION, "scans" },
	{ UI_EVENTS_REVS, "regions" },
	{ DESCRIBE_COW, "COW faults" },
};
#define UI_EVENTS_NCLASSES (sizeof(ui_events_classes) / sizeof(ui_events_classes[0]))

static const char *ui_events_class_name(unsigned bits)
{
	for (size_t i = 0; i < UI_EVENTS_NCLASSES; i++)
		if (ui_events_classes[i].bits == bits)
			return ui_events_classes[i].name;
	return "?";
}

/* The event line of ev passes the filters. */
static int ui_events_match_line(const struct ui *u, const struct model_event *ev)
{
	const struct model_proc *p;

	if (!(describe_class(ev->kind) & u->ev_filter))
		return 0;
	if (!u->ev_mine)
		return 1;
	p = ui_selected(u);
	return p && !describe_is_runner(ev) && describe_pid(ev) == p->pid;
}

/* The region changes shown after event i: their number, from *first. */
static size_t ui_events_revs(const struct ui *u, size_t i, const struct timeline_rev **first)
{
	const struct model_proc *p;
	size_t n;

	if (u->ev_filter != DESCRIBE_ALL && u->ev_filter != UI_EVENTS_REVS)
		return 0;
	n = timeline_revs_at(&u->tl, i + 1, first);
	if (!n || !u->ev_mine)
		return n;
	p = ui_selected(u);
	return p && (*first)->pid == p->pid ? n : 0;
}

/* Event i shows a line: its own or a region change's. */
static int ui_events_match(const struct model_event *ev, void *arg)
{
	const struct ui *u = arg;
	const struct timeline_rev *r;

	return ui_events_match_line(u, ev) ||
	       ui_events_revs(u, (size_t)(ev - timeline_event(&u->tl, 0)), &r);
}

static void ui_events_text(const struct ui *u, const struct model_event *ev, char *buf, size_t n)
{
	char t[48], d[400], pid[16];

	ui_time(u, ev->key_ns, t, sizeof(t));
	describe_event(ev, d, sizeof(d));
	if (describe_is_runner(ev))
		snprintf(pid, sizeof(pid), "run");
	else
		snprintf(pid, sizeof(pid), "%" PRIu32, describe_pid(ev));
	snprintf(buf, n, "%12s %7s  %s", t, pid, d);
}

/* A region change, under the SCAN_END (ev) of the scan that found it. */
static void ui_events_rev_text(const struct ui *u, const struct model_event *ev,
			       const struct timeline_rev *r, char *buf, size_t n)
{
	char t[48], d[400];

	ui_time(u, ev->key_ns, t, sizeof(t));
	describe_rev(&r->r, d, sizeof(d));
	snprintf(buf, n, "%12s %7" PRIu32 "    %s%s%s", t, r->pid, d, r->r.path ? " " : "",
		 r->r.path ? r->r.path : "");
}

static int ui_events_search_match(const struct model_event *ev, void *arg)
{
	const struct ui *u = arg;
	const struct timeline_rev *r;
	char line[512];
	size_t nr = ui_events_revs(u, (size_t)(ev - timeline_event(&u->tl, 0)), &r);

	if (ui_events_match_line(u, ev)) {
		ui_events_text(u, ev, line, sizeof(line));
		if (strcasestr(line, u->search))
			return 1;
	}
	for (size_t k = 0; k < nr; k++) {
		ui_events_rev_text(u, ev, &r[k], line, sizeof(line));
		if (strcasestr(line, u->search))
			return 1;
	}
	return 0;
}

/* A line of the pane: event i's own (k < 0) or its k-th region change. */
struct ui_events_row {
	size_t i;
	long k;
};

/* Adds event i's lines to rows[n..max), last line first when backward;
 * returns the new n. */
static size_t ui_events_rows(const struct ui *u, size_t i, struct ui_events_row *rows, size_t n,
			     size_t max, int backward)
{
	const struct timeline_rev *r;
	size_t own = (size_t)ui_events_match_line(u, timeline_event(&u->tl, i));
	size_t total = own + ui_events_revs(u, i, &r);

	for (size_t j = 0; j < total && n < max; j++, n++) {
		size_t x = backward ? total - 1 - j : j;
		rows[n].i = i;
		rows[n].k = (long)x - (long)own;
	}
	return n;
}

void ui_events_draw(struct ui *u, const struct ui_rect *r)
{
	struct ui_events_row row[256];
	size_t nb = 0, na = 0, pos = u->tl.pos, n = timeline_len(&u->tl), looked = 0, rows;
	char t[256], line[512];

	snprintf(t, sizeof(t), " Events: %s%s%s%s", ui_events_class_name(u->ev_filter),
		 u->ev_mine ? ", selected process only" : "", u->search[0] ? ", search: " : "",
		 u->search);
	ui_title(u, r, UI_EVENTS, t);
	if (r->h < 2)
		return;
	rows = r->h - 1 > 256 ? 256 : (size_t)r->h - 1;
	/* a third of the pane for what comes next, the rest for the past */
	for (size_t i = pos; i < n && na < rows / 3 && looked < UI_EVENTS_SCAN; i++, looked++)
		na = ui_events_rows(u, i, row, na, rows / 3, 0);
	looked = 0;
	/* lines before the cursor, newest first */
	for (size_t i = pos; i-- > 0 && nb < rows - na && looked < UI_EVENTS_SCAN; looked++)
		nb = ui_events_rows(u, i, row, nb, rows - na, 1);
	for (size_t a = 0, b = nb ? nb - 1 : 0; nb && a < b; a++, b--) {
		struct ui_events_row x = row[a];
		row[a] = row[b];
		row[b] = x;
	}
	na = 0;
	for (size_t i = pos; i < n && nb + na < rows && looked < UI_EVENTS_SCAN; i++, looked++)
		na = ui_events_rows(u, i, row + nb, na, rows - nb, 0);
	if (!nb && !na) {
		ui_put(r->y + 1, r->x + 2, r->w - 2, n ? "no event matches the filter" : "no events yet");
		return;
	}
	for (size_t k = 0; k < nb + na; k++) {
		const struct model_event *ev = timeline_event(&u->tl, row[k].i);
		const struct timeline_rev *rv;
		int y = r->y + 1 + (int)k, a;
		if (row[k].k < 0) {
			ui_events_text(u, ev, line, sizeof(line));
		} else {
			timeline_revs_at(&u->tl, row[k].i + 1, &rv);
			ui_events_rev_text(u, ev, &rv[row[k].k], line, sizeof(line));
		}
		a = k + 1 == nb ? ui_attr(u, UI_CURSOR) : k >= nb ? ui_attr(u, UI_DIM) : 0;
		attron(a);
		ui_putpad(y, r->x, r->w, line);
		attroff(a);
	}
}

/* A line of input on the status line; Esc cancels (returns 0). */
static int ui_events_prompt(struct ui *u, const char *prompt, char *buf, size_t n)
{
	size_t len = strlen(buf);
	int key;

	timeout(-1);
	for (;;) {
		char line[256];
		snprintf(line, sizeof(line), "%s%s", prompt, buf);
		attron(ui_attr(u, UI_TITLE_FOCUS));
		ui_putpad(LINES - 1, 0, COLS, line);
		attroff(ui_attr(u, UI_TITLE_FOCUS));
		refresh();
		key = getch();
		if (key == '\n' || key == KEY_ENTER)
			return 1;
		if (key == 27 || key == 3 || key == 7)
			return 0;
		if ((key == KEY_BACKSPACE || key == 127 || key == 8) && len)
			buf[--len] = 0;
		else if (key >= 32 && key < 127 && len + 1 < n) {
			buf[len++] = (char)key;
			buf[len] = 0;
		}
	}
}

/* Events a search looks at between two looks at the keyboard: formatting
 * a line costs about a microsecond, a 10-million-event trace seconds. */
#define UI_EVENTS_SEARCH_STEP 50000

static void ui_events_find(struct ui *u, int dir)
{
	if (!u->search[0])
		return;
	u->searching = dir;
	u->search_at = u->tl.pos;
	ui_events_search_step(u);
}

void ui_events_search_step(struct ui *u)
{
	int dir = u->searching;
	size_t stop = u->search_at, n = timeline_len(&u->tl);
	size_t p = timeline_find_max(&u->tl, u->search_at, dir, ui_events_search_match, u,
				     UI_EVENTS_SEARCH_STEP, &stop);

	if (p != u->search_at) {
		u->searching = 0;
		ui_seek(u, p);
	} else if (dir > 0 ? stop >= n : stop <= 1) {
		u->searching = 0;
		ui_message(u, "\"%s\": no %s match", u->search, dir > 0 ? "later" : "earlier");
	} else {
		u->search_at = stop;
		ui_message(u, "searching \"%s\": event %zu of %zu, any key stops", u->search, stop, n);
	}
}

int ui_events_key(struct ui *u, int key)
{
	int page = u->r[UI_EVENTS].h > 2 ? u->r[UI_EVENTS].h - 2 : 1;
	size_t p = u->tl.pos;

	switch (key) {
	case KEY_UP: case 'k':
		/* from the highlighted event, which may be before the cursor */
		if (p && !ui_events_match(timeline_event(&u->tl, p - 1), u))
			p = timeline_find(&u->tl, p, -1, ui_events_match, u);
		ui_seek(u, timeline_find(&u->tl, p, -1, ui_events_match, u));
		return 1;
	case KEY_DOWN: case 'j':
		ui_seek(u, timeline_find(&u->tl, p, 1, ui_events_match, u));
		return 1;
	case KEY_PPAGE:
		for (int i = 0; i < page; i++)
			p = timeline_find(&u->tl, p, -1, ui_events_match, u);
		ui_seek(u, p);
		return 1;
	case KEY_NPAGE:
		for (int i = 0; i < page; i++)
			p = timeline_find(&u->tl, p, 1, ui_events_match, u);
		ui_seek(u, p);
		return 1;
	case 'g':
		ui_seek(u, timeline_find(&u->tl, 0, 1, ui_events_match, u));
		return 1;
	case 'G':
		ui_seek(u, timeline_find(&u->tl, timeline_len(&u->tl) + 1, -1, ui_events_match, u));
		return 1;
	}
	return 0;
}

/* Keys of the events pane that work from every pane: filters and search. */
int ui_events_global_key(struct ui *u, int key)
{
	char buf[sizeof(u->search)];

	switch (key) {
	case 'c':
		for (size_t i = 0; i < UI_EVENTS_NCLASSES; i++)
			if (ui_events_classes[i].bits == u->ev_filter) {
				u->ev_filter = ui_events_classes[(i + 1) % UI_EVENTS_NCLASSES].bits;
				break;
			}
		return 1;
	case 'p':
		u->ev_mine = !u->ev_mine;
		return 1;
	case '/':
		snprintf(buf, sizeof(buf), "%s", u->search);
		if (ui_events_prompt(u, "search events: ", buf, sizeof(buf))) {
			snprintf(u->search, sizeof(u->search), "%s", buf);
			ui_events_find(u, 1);
		}
		return 1;
	case 'n':
		ui_events_find(u, 1);
		return 1;
	case 'N':
		ui_events_find(u, -1);
		return 1;
	}
	return 0;
}
