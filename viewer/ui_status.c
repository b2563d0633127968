/*
 * ui_status: the status line (mode, trace, totals, where CMD's output
 * goes, the last message) and the help window that lists every key.
 */
#include <stdio.h>
#include <string.h>

#include "describe.h"
#include "report.h"
#include "ui.h"

void ui_status_draw(struct ui *u, const struct ui_rect *r)
{
	const struct model *m = timeline_model(&u->tl);
	char line[1024], rate[48] = "";
	int a = ui_attr(u, UI_TITLE);

	if (!u->finished && u->rate > 0)
		snprintf(rate, sizeof(rate), ", %.0f ev/s", u->rate);
	if (u->msg[0])
		snprintf(line, sizeof(line), " %s", u->msg);
	else if (u->live && u->cmd_done)
		snprintf(line, sizeof(line), " live %s: CMD ended with status %d, %zu processes"
			 " | CMD output: %s | ? help", u->dir, u->cmd_status, m->n,
			 u->output ? u->output : "this terminal");
	else if (u->live)
		snprintf(line, sizeof(line), " live %s: CMD running, %zu processes%s"
			 " | CMD output: %s | ? help", u->dir, m->n, rate,
			 u->output ? u->output : "this terminal");
	else
		snprintf(line, sizeof(line), " view %s: %s, %zu processes, %zu events%s | ? help",
			 u->dir, u->finished ? "complete" : "still being written", m->n,
			 timeline_len(&u->tl), rate);
	attron(a);
	ui_putpad(r->y, r->x, r->w, line);
	attroff(a);
	u->msg[0] = 0;
}

static const char *const ui_help_text[] = {
	"forkscope viewer keys",
	"",
	"Time (the panes show the state at the cursor)",
	"  space        play / pause          1 2 3   play at 1x 10x 100x",
	"  . ,          step one event forward / back",
	"  Right Left   scrub 1% (l h)        S-Right S-Left  10% (L H)",
	"  f F          next / previous fork  x X     next / previous exit",
	"  b B          next / previous COW burst (selects its process)",
	"  Home End     start / end (0 $)     click on the bar: seek",
	"",
	"Panes",
	"  Tab S-Tab    next / previous pane  z       zoom the pane",
	"  Up Down      move (k j), PgUp PgDn, g G first / last",
	"  o            events <-> CMD output",
	"  tree:   Enter collapse/expand, - +, P parent",
	"  memory: Enter region details: pages, top COW sites, ELF sections",
	"          ! flashes bands the last cursor move changed,",
	"          * marks bands changed since the previous scan",
	"  events: c class filter, p selected process only,",
	"          / search, n N next / previous match",
	"",
	"  ?            this help (Up Down PgUp PgDn scroll)   q  quit",
	"",
	"States: running, zombie (ended, not yet reaped), reaped, orphaned",
	"(its parent ended first), untraced, cut (stream stopped early).",
};

#define UI_HELP_N ((int)(sizeof(ui_help_text) / sizeof(ui_help_text[0])))

/* The help box: centred, 70 columns, as tall as the text or the screen;
 * a short screen scrolls it (help_top). */
static int ui_help_rows(void)
{
	int h = UI_HELP_N + 2;

	return (h > LINES - 1 ? LINES - 1 : h) - 2;
}

void ui_help_draw(struct ui *u)
{
	int rows = ui_help_rows(), w = 70, h = rows + 2;
	int y = (LINES - h) / 2, x = (COLS - w) / 2;
	char foot[96];

	if (w > COLS)
		w = COLS, x = 0;
	if (y < 0)
		y = 0;
	if (u->help_top > UI_HELP_N - rows)
		u->help_top = UI_HELP_N - rows;
	if (u->help_top < 0)
		u->help_top = 0;
	for (int i = 0; i < h; i++)
		mvhline(y + i, x, ' ', w);
	for (int i = 0; i + u->help_top < UI_HELP_N && i < rows; i++) {
		int bold = u->help_top + i == 0;
		if (bold)
			attron(A_BOLD);
		ui_put(y + 1 + i, x + 2, w - 4, ui_help_text[u->help_top + i]);
		if (bold)
			attroff(A_BOLD);
	}
	if (rows < UI_HELP_N)
		snprintf(foot, sizeof(foot), "  lines %d-%d of %d: Up Down scroll, any other key closes",
			 u->help_top + 1, u->help_top + rows, UI_HELP_N);
	else
		snprintf(foot, sizeof(foot), "  any key closes this help");
	attron(ui_attr(u, UI_TITLE));
	ui_putpad(y + h - 1, x, w, foot);
	attroff(ui_attr(u, UI_TITLE));
}

int ui_help_key(struct ui *u, int key)
{
	int rows = ui_help_rows();

	switch (key) {
	case KEY_DOWN: case 'j': u->help_top++; return 1;
	case KEY_UP: case 'k': u->help_top--; return 1;
	case KEY_NPAGE: case ' ': u->help_top += rows; return 1;
	case KEY_PPAGE: u->help_top -= rows; return 1;
	case KEY_RESIZE: case KEY_MOUSE: return 1;
	}
	u->help = 0;
	u->help_top = 0;
	return 1;
}
