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
	"  Home End     start / end (0 $)     click on the bar: seek",
	"",
	"Panes",
	"  Tab S-Tab    next / previous pane  z       zoom the pane",
	"  Up Down      move (k j), PgUp PgDn, g G first / last",
	"  o            events <-> CMD output",
	"  tree:   Enter collapse/expand, - +, P parent",
	"  space:  Enter region details",
	"  events: c class filter, p selected process only,",
	"          / search, n N next / previous match",
	"",
	"  ?            this help             q       quit",
	"",
	"States: running, zombie (ended, not yet reaped), reaped, orphaned",
	"(its parent ended first), untraced, cut (stream stopped early).",
};

void ui_help_draw(struct ui *u)
{
	int n = (int)(sizeof(ui_help_text) / sizeof(ui_help_text[0])), w = 70, h = n + 2;
	int y = (LINES - h) / 2, x = (COLS - w) / 2, top = 0;

	if (w > COLS)
		w = COLS, x = 0;
	if (h > LINES - 1) {
		h = LINES - 1;
		y = 0;
	}
	if (y < 0)
		y = 0;
	for (int i = 0; i < h; i++)
		mvhline(y + i, x, ' ', w);
	attron(A_BOLD);
	for (int i = 0; i + top < n && i < h - 2; i++) {
		if (i == 1)
			attroff(A_BOLD);
		ui_put(y + 1 + i, x + 2, w - 4, ui_help_text[top + i]);
	}
	attron(ui_attr(u, UI_TITLE));
	ui_putpad(y + h - 1, x, w, "  any key closes this help");
	attroff(ui_attr(u, UI_TITLE));
	(void)u;
}

int ui_help_key(struct ui *u, int key)
{
	(void)key;
	u->help = 0;
	return 1;
}
