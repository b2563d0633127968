/*
 * ui_tree: the process-tree pane. pstree-like rows (pid, state, exit,
 * lifetime, command of the latest image) of the model at the cursor; the
 * selected process drives the address-space and events panes. Subtrees
 * collapse and expand.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "describe.h"
#include "report.h"
#include "ui.h"
#include "vec.h"

#define UI_TREE_DEPTH 24        /* deeper levels are drawn at this indent */

struct ui_tree_row {
	size_t proc;
	unsigned depth;
	char prefix[UI_TREE_DEPTH * 3 + 8];
};

static struct ui_tree_row *ui_tree_rows;
static size_t ui_tree_n, ui_tree_cap;

static int ui_tree_is_collapsed(const struct ui *u, size_t i)
{
	return i < u->collapsed_cap && u->collapsed[i];
}

static void ui_tree_set_collapsed(struct ui *u, size_t i, int v)
{
	if (i >= u->collapsed_cap) {
		size_t old = u->collapsed_cap;
		if (vec_reserve(&u->collapsed, &u->collapsed_cap, i + 1, 1) < 0)
			return;
		memset(u->collapsed + old, 0, u->collapsed_cap - old);
	}
	u->collapsed[i] = (unsigned char)v;
}

/* The visible rows, depth first, without recursion (deep fork chains). */
static void ui_tree_flatten(const struct ui *u)
{
	const struct model *m = timeline_model(&u->tl);
	struct model_walk w;
	size_t i, d;

	ui_tree_n = 0;
	if (model_walk_begin(&w, m) < 0)
		return;
	while ((i = model_walk_next(&w, &d)) != MODEL_NONE) {
		struct ui_tree_row *r;
		size_t len = 0;

		if (vec_reserve(&ui_tree_rows, &ui_tree_cap, ui_tree_n + 1, sizeof(*r)) < 0)
			break;
		r = &ui_tree_rows[ui_tree_n++];
		r->proc = i;
		r->depth = (unsigned)d;
		r->prefix[0] = 0;
		for (size_t k = 1; k < d && k < UI_TREE_DEPTH; k++)
			len += (size_t)snprintf(r->prefix + len, sizeof(r->prefix) - len, "%s",
						w.last[k] ? "   " : ui_glyph(u, "\xe2\x94\x82  ", "|  "));
		if (d)
			snprintf(r->prefix + len, sizeof(r->prefix) - len, "%s",
				 d > UI_TREE_DEPTH ? "..."
				 : w.last[d] ? ui_glyph(u, "\xe2\x94\x94\xe2\x94\x80 ", "`- ")
					     : ui_glyph(u, "\xe2\x94\x9c\xe2\x94\x80 ", "|- "));
		if (ui_tree_is_collapsed(u, i))
			model_walk_skip(&w);
	}
	model_walk_end(&w);
}

static size_t ui_tree_selrow(const struct ui *u)
{
	for (size_t i = 0; i < ui_tree_n; i++)
		if (ui_tree_rows[i].proc == u->sel)
			return i;
	return 0;
}

/* "exit 3", "SIGKILL", "SIGSEGV core", "" */
static void ui_tree_exit(const struct model_proc *p, char *buf, size_t n)
{
	const char *a;

	buf[0] = 0;
	if (p->exit_kind == MODEL_EXIT_EXITED) {
		snprintf(buf, n, "exit %d", p->exit_value);
	} else if (p->exit_kind == MODEL_EXIT_SIGNALED) {
		a = p->exit_value > 0 && p->exit_value < 65 ? sigabbrev_np(p->exit_value) : NULL;
		if (a)
			snprintf(buf, n, "SIG%s%s", a, p->exit_core ? " core" : "");
		else
			snprintf(buf, n, "signal %d%s", p->exit_value, p->exit_core ? " core" : "");
	}
}

static void ui_tree_cmd(const struct model_proc *p, char *buf, size_t n)
{
	const struct model_image *im = model_image_last(p);
	size_t len = 0;

	buf[0] = 0;
	if (!im->argv || !im->argv[0]) {
		snprintf(buf, n, "%s", im->exe[0] ? im->exe : "?");
		return;
	}
	/* argv[0]'s last part: pstree's names, the full path is in the events */
	for (size_t i = 0; im->argv[i] && len + 1 < n; i++) {
		const char *a = im->argv[i], *sl = i ? NULL : strrchr(a, '/');
		len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? " " : "",
					sl && sl[1] ? sl + 1 : a);
	}
}

static enum ui_role ui_tree_role(const struct model_proc *p, const char *state)
{
	if (p->exit_kind == MODEL_EXIT_SIGNALED || (p->exit_kind == MODEL_EXIT_EXITED && p->exit_value))
		return UI_DEAD;
	if (!strcmp(state, "zombie"))
		return UI_ZOMBIE;
	if (!strcmp(state, "running"))
		return UI_RUNNING;
	return 0;
}

static void ui_tree_line(struct ui *u, const struct ui_rect *r, int y, const struct ui_tree_row *row)
{
	const struct model *m = timeline_model(&u->tl);
	const struct model_proc *p = m->procs[row->proc];
	const char *state = describe_state(m, p);
	uint64_t now = timeline_now_ns(&u->tl);
	char ex[32], life[32], cmd[512], line[700];
	int sel = row->proc == u->sel, x = r->x;
	enum ui_role role;

	if (!strcmp(state, "running") && p->orphaned)
		state = "orphaned";
	role = ui_tree_role(p, state);
	ui_tree_exit(p, ex, sizeof(ex));
	report_dur(life, sizeof(life), p->has_end && p->end_ns >= p->start_ns ? p->end_ns - p->start_ns
		   : now > p->start_ns ? now - p->start_ns : 0);
	if (!p->has_end && strcmp(state, "running") && strcmp(state, "orphaned")) {
		/* its stream stopped or was cut: it died by the time it was reaped */
		char d[24];
		if (p->reaped && p->reap_ts >= p->start_ns) {
			report_dur(d, sizeof(d), p->reap_ts - p->start_ns);
			snprintf(life, sizeof(life), "<=%s", d);
		} else {
			snprintf(life, sizeof(life), "?");
		}
	}
	if (sel)
		attron(ui_attr(u, UI_SEL));
	mvhline(y, r->x, ' ', r->w);
	snprintf(line, sizeof(line), "%7" PRIu32 " ", p->pid);
	x += ui_put(y, x, r->w, line);
	if (!sel && role)
		attron(ui_attr(u, role));
	snprintf(line, sizeof(line), "%-8s %-12s", state, ex);
	x += ui_put(y, x, r->x + r->w - x, line);
	if (!sel && role)
		attroff(ui_attr(u, role));
	snprintf(line, sizeof(line), " %9s ", life);
	x += ui_put(y, x, r->x + r->w - x, line);
	ui_tree_cmd(p, cmd, sizeof(cmd));
	snprintf(line, sizeof(line), "%s%s%s", row->prefix,
		 ui_tree_is_collapsed(u, row->proc) && p->nchildren ? "[+] " : "", cmd);
	ui_put(y, x, r->x + r->w - x, line);
	if (sel)
		attroff(ui_attr(u, UI_SEL));
}

void ui_tree_draw(struct ui *u, const struct ui_rect *r)
{
	const struct model *m = timeline_model(&u->tl);
	int rows = r->h - 2;
	size_t sr, running = 0, zombies = 0;
	char t[160];

	ui_tree_flatten(u);
	for (size_t i = 0; i < m->n; i++) {
		const char *s = describe_state(m, m->procs[i]);
		running += !strcmp(s, "running");
		zombies += !strcmp(s, "zombie");
	}
	snprintf(t, sizeof(t), " Processes: %zu, %zu running, %zu zombie", m->n, running, zombies);
	ui_title(u, r, UI_TREE, t);
	attron(A_BOLD);
	ui_putpad(r->y + 1, r->x, r->w, "    PID STATE    EXIT          LIFETIME COMMAND");
	attroff(A_BOLD);
	if (!ui_tree_n) {
		ui_put(r->y + 2, r->x + 1, r->w - 1, m->n ? "" : "no process has started at this time");
		return;
	}
	sr = ui_tree_selrow(u);
	u->sel = ui_tree_rows[sr].proc;
	if (rows < 1)
		return;
	if ((int)sr < u->tree_top)
		u->tree_top = (int)sr;
	if ((int)sr >= u->tree_top + rows)
		u->tree_top = (int)sr - rows + 1;
	if (u->tree_top > (int)ui_tree_n - rows)
		u->tree_top = (int)ui_tree_n - rows > 0 ? (int)ui_tree_n - rows : 0;
	for (int i = 0; i < rows && u->tree_top + i < (int)ui_tree_n; i++)
		ui_tree_line(u, r, r->y + 2 + i, &ui_tree_rows[u->tree_top + i]);
}

static void ui_tree_move(struct ui *u, long d)
{
	long sr = (long)ui_tree_selrow(u) + d;

	if (!ui_tree_n)
		return;
	if (sr < 0)
		sr = 0;
	if (sr >= (long)ui_tree_n)
		sr = (long)ui_tree_n - 1;
	u->sel = ui_tree_rows[sr].proc;
	u->space_top = u->space_row = 0;
}

int ui_tree_click(struct ui *u, int row)
{
	long i = (long)u->tree_top + row - 2;

	if (row < 2 || i >= (long)ui_tree_n)
		return 0;
	u->sel = ui_tree_rows[i].proc;
	u->space_top = u->space_row = 0;
	return 1;
}

int ui_tree_key(struct ui *u, int key)
{
	const struct model_proc *p = ui_selected(u);
	int page = u->r[UI_TREE].h > 3 ? u->r[UI_TREE].h - 3 : 1;

	switch (key) {
	case KEY_UP: case 'k': ui_tree_move(u, -1); return 1;
	case KEY_DOWN: case 'j': ui_tree_move(u, 1); return 1;
	case KEY_PPAGE: ui_tree_move(u, -page); return 1;
	case KEY_NPAGE: ui_tree_move(u, page); return 1;
	case 'g': ui_tree_move(u, -(long)ui_tree_n); return 1;
	case 'G': ui_tree_move(u, (long)ui_tree_n); return 1;
	case '\n': case KEY_ENTER:
		if (p)
			ui_tree_set_collapsed(u, u->sel, !ui_tree_is_collapsed(u, u->sel));
		return 1;
	case '-':
		if (p)
			ui_tree_set_collapsed(u, u->sel, 1);
		return 1;
	case '+':
		if (p)
			ui_tree_set_collapsed(u, u->sel, 0);
		return 1;
	case 'P':
		if (p && p->parent != MODEL_NONE)
			u->sel = p->parent;
		return 1;
	}
	return 0;
}
