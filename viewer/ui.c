/*
 * ui: the terminal, the layout, the main loop and the keys that are the
 * same in every pane (see ui.h). Loop: read new events -> move the cursor
 * (follow, playback) -> bring the model to it -> draw -> wait for a key.
 */
#include "ui.h"

#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wctype.h>

#include "describe.h"
#include "escape.h"
#include "report.h"

#define UI_POLL_MS 200          /* how often a growing trace is read */
#define UI_PLAY_MS 40           /* playback tick */

static volatile sig_atomic_t ui_active;
static volatile pid_t ui_kill_pid;  /* live: CMD, told when we die */

static void ui_restore(void)
{
	if (ui_active) {
		ui_active = 0;
		endwin();
	}
}

/* A crash or kill of the viewer must not leave the terminal raw. */
static void ui_fatal(int sig)
{
	ui_restore();
	if (ui_kill_pid > 0 && sig != SIGSEGV && sig != SIGABRT && sig != SIGBUS)
		kill(ui_kill_pid, SIGTERM);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void ui_signals(void)
{
	static const int sigs[] = { SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGTERM, SIGINT,
				    SIGHUP, SIGQUIT };
	struct sigaction sa = { .sa_handler = ui_fatal };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

uint64_t ui_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ui_redraw_at(struct ui *u, uint64_t at)
{
	if (!u->redraw_at || at < u->redraw_at)
		u->redraw_at = at;
}

int ui_attr(const struct ui *u, enum ui_role role)
{
	static const int mono[UI_NROLES] = {
		[UI_TITLE] = A_REVERSE, [UI_TITLE_FOCUS] = A_REVERSE | A_BOLD,
		[UI_SEL] = A_REVERSE, [UI_RUNNING] = A_BOLD, [UI_ZOMBIE] = A_BOLD | A_UNDERLINE,
		[UI_DEAD] = A_BOLD, [UI_DIM] = A_DIM, [UI_SHARED] = 0, [UI_UNSHARED] = A_BOLD,
		[UI_RESIDENT] = 0, [UI_CURSOR] = A_REVERSE | A_BOLD, [UI_MARK] = A_BOLD,
	};
	static const int bold[UI_NROLES] = { [UI_TITLE_FOCUS] = A_BOLD, [UI_SEL] = A_BOLD,
					     [UI_CURSOR] = A_BOLD, [UI_ZOMBIE] = A_BOLD };

	if ((unsigned)role >= UI_NROLES)
		return 0;
	if (!u->color)
		return mono[role];
	return COLOR_PAIR(role) | bold[role];
}

static void ui_colors(struct ui *u)
{
	const char *nc = getenv("NO_COLOR");

	u->color = has_colors() && !(nc && *nc);
	if (!u->color)
		return;
	start_color();
	use_default_colors();
	init_pair(UI_TITLE, COLOR_BLACK, COLOR_CYAN);
	init_pair(UI_TITLE_FOCUS, COLOR_BLACK, COLOR_YELLOW);
	init_pair(UI_SEL, COLOR_BLACK, COLOR_WHITE);
	init_pair(UI_RUNNING, COLOR_GREEN, -1);
	init_pair(UI_ZOMBIE, COLOR_MAGENTA, -1);
	init_pair(UI_DEAD, COLOR_RED, -1);
	init_pair(UI_DIM, COLOR_BLUE, -1);
	init_pair(UI_SHARED, COLOR_CYAN, -1);
	init_pair(UI_UNSHARED, COLOR_RED, -1);
	init_pair(UI_RESIDENT, COLOR_GREEN, -1);
	init_pair(UI_CURSOR, COLOR_BLACK, COLOR_YELLOW);
	init_pair(UI_MARK, COLOR_YELLOW, -1);
}

const char *ui_glyph(const struct ui *u, const char *utf8, const char *ascii)
{
	return u->utf8 ? utf8 : ascii;
}

/* Code points that must not reach a terminal even if printable: bidi
 * overrides and isolates can reorder what follows on the line. */
static int ui_unsafe(unsigned cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f;
}

int ui_put(int y, int x, int w, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	int col = 0;

	if (w <= 0 || y < 0 || y >= LINES || x >= COLS)
		return 0;
	if (x + w > COLS)
		w = COLS - x;
	move(y, x);
	while (n && col < w) {
		unsigned cp;
		int k = escape_utf8(p, n, &cp), cw;
		wchar_t wc;

		if (k == 0)
			k = 1, cp = '?';
		wc = (wchar_t)cp;
		if (ui_unsafe(cp) || (cp >= 0x80 && (MB_CUR_MAX == 1 || !iswprint(wc))))
			wc = L'?';
		cw = wcwidth(wc);
		if (cw < 0)
			wc = L'?', cw = 1;
		if (col + cw > w)
			break;
		addnwstr(&wc, 1);
		col += cw;
		p += k;
		n -= (size_t)k;
	}
	return col;
}

void ui_putpad(int y, int x, int w, const char *s)
{
	int c = ui_put(y, x, w, s);

	if (c < w && y >= 0 && y < LINES)
		mvhline(y, x + c, ' ', w - c);
}

void ui_title(const struct ui *u, const struct ui_rect *r, enum ui_pane p, const char *s)
{
	int a = ui_attr(u, u->focus == p ? UI_TITLE_FOCUS : UI_TITLE);

	attron(a);
	ui_putpad(r->y, r->x, r->w, s);
	attroff(a);
}

void ui_message(struct ui *u, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(u->msg, sizeof(u->msg), fmt, ap);
	va_end(ap);
}

void ui_time(const struct ui *u, uint64_t ns, char *buf, size_t n)
{
	uint64_t t0 = timeline_start_ns(&u->tl);
	char d[32];

	report_dur(d, sizeof(d), ns > t0 ? ns - t0 : 0);
	snprintf(buf, n, "+%s", d);
}

const struct model_proc *ui_selected(const struct ui *u)
{
	const struct model *m = timeline_model(&u->tl);

	return u->sel < m->n ? m->procs[u->sel] : NULL;
}

int ui_seek(struct ui *u, size_t pos)
{
	const struct model *m;

	if (timeline_seek(&u->tl, pos) < 0) {
		ui_message(u, "out of memory");
		return -1;
	}
	m = timeline_model(&u->tl);
	if (u->sel >= m->n && m->n)
		u->sel = m->n - 1;
	u->follow = !u->finished && pos >= timeline_len(&u->tl);
	return 0;
}

/* Tree and address space side by side when there is room, else stacked;
 * the events (or output) pane below; timeline and status at the bottom. */
static void ui_layout(struct ui *u)
{
	int h = LINES - 3, w = COLS, top;

	memset(u->r, 0, sizeof(u->r));
	u->time_r = (struct ui_rect){ LINES - 3, 0, 2, w };
	u->status_r = (struct ui_rect){ LINES - 1, 0, 1, w };
	if (h < 3)
		return;
	if (u->zoom) {
		u->r[u->focus] = (struct ui_rect){ 0, 0, h, w };
		return;
	}
	if (w >= 110) {
		top = h * 3 / 5;
		u->r[UI_TREE] = (struct ui_rect){ 0, 0, top, w / 2 };
		u->r[UI_SPACE] = (struct ui_rect){ 0, w / 2 + 1, top, w - w / 2 - 1 };
		u->r[u->bottom] = (struct ui_rect){ top, 0, h - top, w };
	} else {
		/* the tree no taller than its processes: the rest to the memory */
		size_t np = timeline_model(&u->tl)->n + 2;
		int a = h * 2 / 5, b;
		if (np < 4)
			np = 4;
		if ((size_t)a > np)
			a = (int)np;
		b = (h - a) / 2;
		u->r[UI_TREE] = (struct ui_rect){ 0, 0, a, w };
		u->r[UI_SPACE] = (struct ui_rect){ a, 0, b, w };
		u->r[u->bottom] = (struct ui_rect){ a + b, 0, h - a - b, w };
	}
}

static void ui_draw(struct ui *u)
{
	u->redraw_at = 0;
	erase();
	ui_layout(u);
	if (LINES < 8 || COLS < 40) {
		ui_put(0, 0, COLS, "forkscope: the terminal is too small (40x8 at least)");
		refresh();
		return;
	}
	if (u->r[UI_TREE].h)
		ui_tree_draw(u, &u->r[UI_TREE]);
	if (u->r[UI_SPACE].h)
		ui_space_draw(u, &u->r[UI_SPACE]);
	if (u->r[UI_EVENTS].h)
		ui_events_draw(u, &u->r[UI_EVENTS]);
	if (u->r[UI_OUTPUT].h)
		ui_output_draw(u, &u->r[UI_OUTPUT]);
	if (u->r[UI_SPACE].h && u->r[UI_SPACE].x > 0)
		mvvline(u->r[UI_SPACE].y, u->r[UI_SPACE].x - 1, ACS_VLINE, u->r[UI_SPACE].h);
	ui_timeline_draw(u, &u->time_r);
	ui_status_draw(u, &u->status_r);
	if (u->help)
		ui_help_draw(u);
	refresh();
}

/* Reads what a growing trace gained; returns 1 if anything changed. */
static int ui_poll(struct ui *u)
{
	int fin;
	long n;

	if (u->finished)
		return 0;
	fin = u->live ? u->cmd_done : 0;
	n = timeline_poll(&u->tl, fin);
	if (n < 0) {
		ui_message(u, "cannot read %s: %s", u->dir, strerror((int)-n));
		return 0;
	}
	if (!fin && !u->live && u->tl.runner_ended) {
		/* view of a trace whose runner has ended: read the rest as final */
		n += timeline_poll(&u->tl, 1) > 0;
		fin = 1;
	}
	if (n > 0) {
		uint64_t now = ui_wall();
		u->rate_events += (uint64_t)n;
		if (now - u->rate_wall >= 1000000000u) {
			u->rate = (double)u->rate_events * 1e9 / (double)(now - u->rate_wall);
			u->rate_events = 0;
			u->rate_wall = now;
		}
	}
	if (fin) {
		u->finished = 1;
		u->rate = 0;
		if (u->live)
			ui_message(u, "%s ended with status %d: replay it, q quits", "CMD",
				   u->cmd_status);
	}
	return n > 0 || fin;
}

static void ui_play_tick(struct ui *u)
{
	uint64_t now = ui_wall(), end = timeline_end_ns(&u->tl);

	u->play_ns += (now - u->play_wall) * u->speed;
	u->play_wall = now;
	if (u->play_ns >= end) {
		u->play_ns = end;
		if (u->finished)
			u->playing = 0;
	}
	ui_seek(u, timeline_pos_at(&u->tl, u->play_ns));
}

static void ui_focus_next(struct ui *u, int dir)
{
	static const enum ui_pane ring[] = { UI_TREE, UI_SPACE, UI_EVENTS };
	int i = 0;

	for (int k = 0; k < 3; k++)
		if (ring[k] == u->focus || (ring[k] == UI_EVENTS && u->focus == UI_OUTPUT))
			i = k;
	i = (i + (dir > 0 ? 1 : 2)) % 3;
	u->focus = ring[i] == UI_EVENTS ? (enum ui_pane)u->bottom : ring[i];
}

static void ui_mouse(struct ui *u)
{
	MEVENT me;

	if (getmouse(&me) != OK)
		return;
	if (me.y >= u->time_r.y && me.y < u->time_r.y + u->time_r.h) {
		ui_timeline_click(u, me.x);
		return;
	}
	for (int p = 0; p < UI_NPANES; p++) {
		const struct ui_rect *r = &u->r[p];
		if (!r->h || me.y < r->y || me.y >= r->y + r->h || me.x < r->x || me.x >= r->x + r->w)
			continue;
		u->focus = (enum ui_pane)p;
		if (me.bstate & BUTTON4_PRESSED)
			ungetch(KEY_UP);
		else if (me.bstate & BUTTON5_PRESSED)
			ungetch(KEY_DOWN);
		else if (p == UI_TREE)
			ui_tree_click(u, me.y - r->y);
	}
}

/* Returns 0 to go on, 1 to quit. */
static int ui_key(struct ui *u, int key)
{
	int (*const pane_key[UI_NPANES])(struct ui *, int) = {
		ui_tree_key, ui_space_key, ui_events_key, ui_output_key,
	};

	if (key != 'q' && key != 3)
		u->quit_armed = 0;
	if (u->searching && key != KEY_RESIZE) {
		u->searching = 0;
		ui_message(u, "search stopped");
		return 0;
	}
	if (u->help)
		return ui_help_key(u, key), 0;
	switch (key) {
	case 'q': case 3: /* ^C */
		if (u->live && !u->cmd_done && !u->quit_armed) {
			u->quit_armed = 1;
			ui_message(u, "CMD is still running: q again stops it (SIGTERM) and quits");
			return 0;
		}
		return 1;
	case '?':
		u->help = 1;
		return 0;
	case '\t':
		ui_focus_next(u, 1);
		return 0;
	case KEY_BTAB:
		ui_focus_next(u, -1);
		return 0;
	case 'z':
		u->zoom = !u->zoom;
		return 0;
	case 'o':
		u->bottom = u->bottom == UI_EVENTS ? UI_OUTPUT : UI_EVENTS;
		if (u->focus == UI_EVENTS || u->focus == UI_OUTPUT)
			u->focus = (enum ui_pane)u->bottom;
		return 0;
	case KEY_MOUSE:
		ui_mouse(u);
		return 0;
	case KEY_RESIZE:
		return 0;
	}
	if (pane_key[u->focus](u, key) || ui_events_global_key(u, key))
		return 0;
	ui_timeline_key(u, key);
	return 0;
}

static void ui_screen(struct ui *u)
{
	const char *cs;

	setlocale(LC_ALL, "");
	cs = nl_langinfo(CODESET);
	u->utf8 = cs && !strcmp(cs, "UTF-8");
	if (!getenv("ESCDELAY"))
		set_escdelay(25);
	initscr();
	ui_active = 1;
	raw();
	noecho();
	keypad(stdscr, TRUE);
	curs_set(0);
	mousemask(BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON4_PRESSED | BUTTON5_PRESSED, NULL);
	mouseinterval(0);
	ui_colors(u);
}

/* How long getch() waits: a playback tick, a poll of a growing trace, or
 * the redraw a pane asked for, whichever comes first; else forever. */
static int ui_timeout(const struct ui *u)
{
	int ms = u->playing ? UI_PLAY_MS : u->searching ? 0 : u->finished ? -1 : UI_POLL_MS;

	if (u->redraw_at) {
		uint64_t now = ui_wall();
		int w = u->redraw_at > now ? (int)((u->redraw_at - now) / 1000000u) + 1 : 0;
		if (ms < 0 || w < ms)
			ms = w;
	}
	return ms;
}

void ui_kill_on_exit(pid_t pid)
{
	ui_kill_pid = pid;
}

/* FORKSCOPE_UI_KEYLOG=FILE: one line per key with the time its handling
 * and the next redraw took, for measuring responsiveness on big traces. */
static FILE *ui_keylog_open(void)
{
	const char *path = getenv("FORKSCOPE_UI_KEYLOG");
	FILE *f = path && *path ? fopen(path, "a") : NULL;

	if (f)
		setvbuf(f, NULL, _IOLBF, 0);
	return f;
}

static uint64_t ui_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Wall clock from the key to the end of the redraw, and the CPU time the
 * viewer spent in it (what a busy machine does not inflate). */
static void ui_keylog(FILE *f, int key, uint64_t t0, uint64_t t1, uint64_t t2, uint64_t cpu)
{
	const char *name = keyname(key);

	fprintf(f, "key %s handle_us %llu draw_us %llu cpu_us %llu total_us %llu\n",
		name && !strchr(name, ' ') ? name : "space",
		(unsigned long long)(t1 - t0) / 1000, (unsigned long long)(t2 - t1) / 1000,
		(unsigned long long)cpu / 1000, (unsigned long long)(t2 - t0) / 1000);
}

int ui_run(struct ui *u)
{
	uint64_t last_poll = 0, t_key = 0, t_handled = 0, t_open = ui_wall(), cpu_key = 0;
	FILE *keylog = ui_keylog_open();
	int quit = 0, last_key = ERR;

	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "forkscope %s: the viewer needs a terminal\n", u->mode);
		return 2;
	}
	u->speed = 1;
	u->bottom = u->bottom_output ? UI_OUTPUT : UI_EVENTS;
	u->ev_filter = DESCRIBE_ALL;
	u->rate_wall = ui_wall();
	if (timeline_open(&u->tl, u->dir, 0) < 0) {
		report_messages(stderr, &u->tl.load);
		return 2;
	}
	ui_poll(u);
	ui_seek(u, u->finished ? 0 : timeline_len(&u->tl));
	u->follow = !u->finished;
	if (u->finished && !u->live)
		ui_seek(u, timeline_len(&u->tl)); /* a finished trace opens at its end */
	/* One-time passes over the events while the trace opens rather than at
	 * the first b or Enter: the COW bursts and the build-ids. */
	timeline_burst(&u->tl, 0, 1);
	ui_region_warm(u);
	atexit(ui_restore);
	ui_signals();
	ui_screen(u);
	if (keylog)
		fprintf(keylog, "open %zu events, %zu processes: %llu ms\n", timeline_len(&u->tl),
			timeline_model(&u->tl)->n, (unsigned long long)(ui_wall() - t_open) / 1000000);
	while (!quit) {
		uint64_t now = ui_wall();
		int key;

		if (!u->finished && now - last_poll >= UI_POLL_MS * 1000000ull) {
			last_poll = now;
			if (ui_poll(u) && u->follow && !u->playing)
				ui_seek(u, timeline_len(&u->tl));
			else
				ui_seek(u, u->tl.pos); /* events before the cursor may have arrived */
		}
		if (u->playing)
			ui_play_tick(u);
		else if (u->searching)
			ui_events_search_step(u);
		ui_draw(u);
		if (keylog && last_key != ERR)
			ui_keylog(keylog, last_key, t_key, t_handled, ui_wall(), ui_cpu() - cpu_key);
		timeout(ui_timeout(u));
		key = getch();
		last_key = key;
		t_key = ui_wall();
		cpu_key = ui_cpu();
		if (key != ERR)
			quit = ui_key(u, key);
		t_handled = ui_wall();
	}
	if (keylog) {
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		fprintf(keylog, "exit: max RSS %ld MiB, CPU user %ld.%03ld s\n", ru.ru_maxrss / 1024,
			(long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec / 1000);
		fclose(keylog);
	}
	ui_restore();
	ui_region_free();
	timeline_free(&u->tl);
	free(u->collapsed);
	return 0;
}
