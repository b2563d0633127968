/*
 * ui_timeline: the time bar at the bottom and the keys that move the
 * cursor: play/pause at 1x/10x/100x, step event by event, jump to the
 * next fork, exit or COW burst (timeline_burst()), scrub with the arrows,
 * click to seek.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "describe.h"
#include "ui.h"

/* What happened in each column of the bar: cached until the number of
 * events or the width changes. */
#define UI_TL_FORK 1
#define UI_TL_EXIT 2
#define UI_TL_ANY 4
#define UI_TL_BURST 8

static unsigned char *ui_tl_marks;
static int ui_tl_w;
static size_t ui_tl_nev;
static uint64_t ui_tl_wall;

/* A growing trace redraws the marks at most once a second when they
 * take a pass over this many events or more. */
#define UI_TL_BIG 200000

static int ui_timeline_col(const struct ui *u, uint64_t ns, int w)
{
	uint64_t t0 = timeline_start_ns(&u->tl), t1 = timeline_end_ns(&u->tl);

	if (t1 <= t0 || ns <= t0)
		return 0;
	if (ns >= t1)
		return w - 1;
	return (int)((double)(ns - t0) / (double)(t1 - t0) * (w - 1));
}

static int ui_timeline_is_fork(const struct model_event *ev, void *arg)
{
	(void)arg;
	return describe_is_fork(ev);
}

static int ui_timeline_is_exit(const struct model_event *ev, void *arg)
{
	(void)arg;
	return describe_is_exit(ev);
}

static void ui_timeline_marks(struct ui *u, int w)
{
	size_t n = timeline_len(&u->tl);
	unsigned char *m;

	if (ui_tl_marks && ui_tl_w == w && (ui_tl_nev == n ||
	    (n >= UI_TL_BIG && ui_wall() - ui_tl_wall < 1000000000ull)))
		return;
	ui_tl_wall = ui_wall();
	m = realloc(ui_tl_marks, (size_t)w);
	if (!m)
		return;
	ui_tl_marks = m;
	ui_tl_w = w;
	ui_tl_nev = n;
	memset(m, 0, (size_t)w);
	for (size_t i = 0; i < n; i++) {
		const struct model_event *ev = timeline_event(&u->tl, i);
		int c = ui_timeline_col(u, ev->key_ns, w);
		m[c] |= UI_TL_ANY;
		if (describe_is_fork(ev))
			m[c] |= UI_TL_FORK;
		else if (describe_is_exit(ev))
			m[c] |= UI_TL_EXIT;
	}
	timeline_burst(&u->tl, 0, 1); /* finds them */
	for (size_t i = 0; i < u->tl.nbursts; i++) {
		size_t p = u->tl.bursts[i];
		m[ui_timeline_col(u, timeline_event(&u->tl, p - 1)->key_ns, w)] |= UI_TL_BURST;
	}
}

void ui_timeline_draw(struct ui *u, const struct ui_rect *r)
{
	int w = r->w - 2, cur;
	uint64_t now = timeline_now_ns(&u->tl);
	char a[48], b[48], line[256];

	if (w < 4)
		return;
	ui_timeline_marks(u, w);
	cur = ui_timeline_col(u, now, w);
	ui_put(r->y, r->x, 1, "[");
	for (int c = 0; c < w && ui_tl_marks; c++) {
		unsigned char k = ui_tl_marks[c];
		const char *g = k & UI_TL_FORK && k & UI_TL_EXIT ? "*" : k & UI_TL_FORK ? "+"
			: k & UI_TL_EXIT ? "x" : k & UI_TL_BURST ? "c"
			: k ? ui_glyph(u, "\xc2\xb7", ".") : " ";
		int at = c == cur ? ui_attr(u, UI_CURSOR)
			: (k & (UI_TL_FORK | UI_TL_EXIT | UI_TL_BURST)) ? ui_attr(u, UI_MARK)
			: c > cur ? ui_attr(u, UI_DIM) : 0;
		attron(at);
		ui_put(r->y, r->x + 1 + c, 1, c == cur && !(k & (UI_TL_FORK | UI_TL_EXIT | UI_TL_BURST))
		       ? "|" : g);
		attroff(at);
	}
	ui_put(r->y, r->x + r->w - 1, 1, "]");
	ui_time(u, now, a, sizeof(a));
	ui_time(u, timeline_end_ns(&u->tl), b, sizeof(b));
	snprintf(line, sizeof(line), " %s %s of %s  event %zu/%zu  %s%s  (+ fork x exit c COW)",
		 u->playing ? ui_glyph(u, "\xe2\x96\xb6", ">") : u->follow ? "LIVE" : "||",
		 a, b, u->tl.pos, timeline_len(&u->tl),
		 u->playing ? (u->speed == 1 ? "1x" : u->speed == 10 ? "10x" : "100x") : "paused",
		 u->follow ? ", following" : "");
	ui_putpad(r->y + 1, r->x, r->w, line);
}

int ui_timeline_click(struct ui *u, int col)
{
	uint64_t t0 = timeline_start_ns(&u->tl), t1 = timeline_end_ns(&u->tl);
	int w = u->time_r.w - 2;

	if (w < 2 || col < 1 || col > w)
		return 0;
	u->playing = 0;
	ui_seek(u, timeline_pos_at(&u->tl, t0 + (uint64_t)((double)(t1 - t0) * (col - 1) / (w - 1))));
	return 1;
}

static void ui_timeline_scrub(struct ui *u, int dir, unsigned div)
{
	uint64_t t0 = timeline_start_ns(&u->tl), t1 = timeline_end_ns(&u->tl);
	uint64_t step = (t1 - t0) / div, now = timeline_now_ns(&u->tl), t;
	size_t pos;

	if (!step)
		step = 1;
	t = dir > 0 ? now + step : now > t0 + step ? now - step : t0;
	pos = timeline_pos_at(&u->tl, t);
	if (dir < 0 && now <= t0)
		pos = 0;
	if (pos == u->tl.pos && dir > 0 && pos < timeline_len(&u->tl))
		pos++;
	ui_seek(u, pos);
}

static void ui_timeline_step(struct ui *u, int dir)
{
	size_t pos = u->tl.pos;

	if (dir > 0 && pos < timeline_len(&u->tl))
		pos++;
	else if (dir < 0 && pos > 0)
		pos--;
	ui_seek(u, pos);
}

static void ui_timeline_play(struct ui *u, unsigned speed)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (u->playing && (!speed || speed == u->speed)) {
		u->playing = 0;
		return;
	}
	if (speed)
		u->speed = speed;
	if (u->tl.pos >= timeline_len(&u->tl) && u->finished)
		ui_seek(u, 0);
	u->playing = 1;
	u->play_ns = timeline_now_ns(&u->tl);
	u->play_wall = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Jumps to the next or previous COW burst and selects its process. */
static void ui_timeline_burst(struct ui *u, int dir)
{
	size_t p = timeline_burst(&u->tl, u->tl.pos, dir);
	const struct model_proc *proc;

	if (p == u->tl.pos) {
		ui_message(u, "no %s COW burst", dir > 0 ? "later" : "earlier");
		return;
	}
	ui_space_remember(u, model_find(timeline_model(&u->tl),
					describe_pid(timeline_event(&u->tl, p - 1))));
	if (ui_seek(u, p) < 0)
		return;
	proc = model_find(timeline_model(&u->tl), describe_pid(timeline_event(&u->tl, p - 1)));
	if (proc && proc->index != u->sel) {
		u->sel = proc->index;
		u->space_top = u->space_row = 0;
		u->space_detail = 0;
	}
}

int ui_timeline_key(struct ui *u, int key)
{
	size_t p;

	if (key != ' ' && key != '1' && key != '2' && key != '3')
		u->playing = 0;
	switch (key) {
	case ' ': ui_timeline_play(u, 0); return 1;
	case '1': ui_timeline_play(u, 1); return 1;
	case '2': ui_timeline_play(u, 10); return 1;
	case '3': ui_timeline_play(u, 100); return 1;
	case '.': ui_timeline_step(u, 1); return 1;
	case ',': ui_timeline_step(u, -1); return 1;
	case KEY_RIGHT: case 'l': ui_timeline_scrub(u, 1, 100); return 1;
	case KEY_LEFT: case 'h': ui_timeline_scrub(u, -1, 100); return 1;
	case KEY_SRIGHT: case 'L': ui_timeline_scrub(u, 1, 10); return 1;
	case KEY_SLEFT: case 'H': ui_timeline_scrub(u, -1, 10); return 1;
	case KEY_HOME: case '0': ui_seek(u, 0); return 1;
	case KEY_END: case '$': ui_seek(u, timeline_len(&u->tl)); return 1;
	case 'f': case 'F':
		p = timeline_find(&u->tl, u->tl.pos, key == 'f' ? 1 : -1, ui_timeline_is_fork, NULL);
		if (p == u->tl.pos)
			ui_message(u, "no %s fork", key == 'f' ? "later" : "earlier");
		ui_seek(u, p);
		return 1;
	case 'b': case 'B':
		ui_timeline_burst(u, key == 'b' ? 1 : -1);
		return 1;
	case 'x': case 'X':
		p = timeline_find(&u->tl, u->tl.pos, key == 'x' ? 1 : -1, ui_timeline_is_exit, NULL);
		if (p == u->tl.pos)
			ui_message(u, "no %s exit", key == 'x' ? "later" : "earlier");
		ui_seek(u, p);
		return 1;
	}
	return 0;
}
