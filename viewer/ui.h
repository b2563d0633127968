/*
 * ui: the ncurses viewer of `forkscope live` and `forkscope view`, shared
 * between ui.c (terminal, layout, main loop, global keys) and one file per
 * pane, each with a *_draw() and a *_key(). Only ui*.c include curses.
 *
 * The panes draw the model at the timeline's cursor (timeline.h) and never
 * decode records: event lines come from describe.h.
 */
#ifndef FORKSCOPE_UI_H
#define FORKSCOPE_UI_H

#include <curses.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "timeline.h"

enum ui_pane { UI_TREE, UI_SPACE, UI_EVENTS, UI_OUTPUT, UI_NPANES };

/* Colour roles; ui_attr() gives the attribute, monochrome included. */
enum ui_role {
	UI_TITLE = 1, UI_TITLE_FOCUS, UI_SEL, UI_RUNNING, UI_ZOMBIE, UI_DEAD,
	UI_DIM, UI_SHARED, UI_UNSHARED, UI_RESIDENT, UI_CURSOR, UI_MARK,
	UI_NROLES
};

struct ui_rect {
	int y, x, h, w;
};

struct ui {
	struct timeline tl;
	const char *dir;
	const char *mode;       /* "live" or "view" */
	int finished;           /* the trace will not grow */
	int live;               /* CMD runs under us */
	volatile int cmd_done;  /* set by the reaper thread */
	int cmd_status;         /* exit status of `live` once cmd_done */
	const char *output;     /* file that holds CMD's output, or NULL */
	int quit_armed;         /* q pressed once while CMD still runs */
	int bottom_output;      /* start with the output pane below */

	/* time */
	int follow;             /* the cursor follows the end of a growing trace */
	int playing;
	unsigned speed;         /* 1, 10, 100 */
	uint64_t play_ns;       /* trace time the playback is at */
	uint64_t play_wall;     /* wall clock of the last playback tick */
	uint64_t rate_wall, rate_events;
	double rate;            /* events/s arriving (live) */

	/* selection and panes */
	size_t sel;             /* index in model.procs of the selected process */
	unsigned char *collapsed; /* by process index */
	size_t collapsed_cap;
	int tree_top, space_top, space_row, space_detail, detail_top, events_top, output_top;
	unsigned ev_filter;     /* DESCRIBE_* bits */
	int ev_mine;            /* only the selected process's events */
	char search[96];
	int searching;          /* a search goes on in steps: its direction */
	size_t search_at;       /* ... and where it is */
	int bottom;             /* UI_EVENTS or UI_OUTPUT in the bottom slot */
	enum ui_pane focus;
	int zoom, help, help_top;
	struct ui_rect r[UI_NPANES], time_r, status_r;

	int color, utf8;
	char msg[200];          /* one-time message for the status line */
	uint64_t redraw_at;     /* wall clock (ui_wall) of a redraw a pane asked for, 0 = none */
};

/* Runs the viewer on u (dir, mode, live, output set) until the user quits.
 * Returns 0, or 2 when the terminal or the trace cannot be used. */
int ui_run(struct ui *u);

/* live: CMD gets SIGTERM if the viewer is killed. */
void ui_kill_on_exit(pid_t pid);

/* ui.c: drawing helpers for the panes. */
int ui_attr(const struct ui *u, enum ui_role role);
/* Writes s (UTF-8 from anywhere: controls and invalid bytes become '?') at
 * y, x in at most w columns; returns the columns used. */
int ui_put(int y, int x, int w, const char *s);
/* ui_put, then blanks to w columns. */
void ui_putpad(int y, int x, int w, const char *s);
/* The title line of a pane. */
void ui_title(const struct ui *u, const struct ui_rect *r, enum ui_pane p, const char *s);
/* a UTF-8 glyph when the terminal has them, else the ASCII one */
const char *ui_glyph(const struct ui *u, const char *utf8, const char *ascii);
int ui_seek(struct ui *u, size_t pos);
/* CLOCK_MONOTONIC in ns. */
uint64_t ui_wall(void);
/* A pane wants to be drawn again at wall clock `at` (an animation ends). */
void ui_redraw_at(struct ui *u, uint64_t at);
void ui_message(struct ui *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The selected process at the cursor, or NULL. */
const struct model_proc *ui_selected(const struct ui *u);
/* Trace time as "+12.345 ms" from the start. */
void ui_time(const struct ui *u, uint64_t ns, char *buf, size_t n);

/* Panes: *_draw() draws inside r; *_key() returns 1 if it used the key. */
void ui_tree_draw(struct ui *u, const struct ui_rect *r);
int ui_tree_key(struct ui *u, int key);
int ui_tree_click(struct ui *u, int row);
void ui_space_draw(struct ui *u, const struct ui_rect *r);
int ui_space_key(struct ui *u, int key);
/* Before a seek that also selects p: its bands now are what the next draw
 * compares with, so what the seek changed flashes. */
void ui_space_remember(struct ui *u, const struct model_proc *p);
/* ui_region.c: the details of regions cur.v[first .. first+n) of p. */
void ui_region_draw(struct ui *u, const struct ui_rect *r, const struct model_proc *p,
		    size_t first, size_t n);
void ui_region_free(void);
/* Takes the trace's build-ids for the ELF sections now (a pass over the
 * events), not at the first Enter on a band; again after the trace grew. */
void ui_region_warm(struct ui *u);
void ui_events_draw(struct ui *u, const struct ui_rect *r);
int ui_events_key(struct ui *u, int key);
/* c, p, /, n, N: the event filters and search, from any pane */
int ui_events_global_key(struct ui *u, int key);
/* The next step of a search under way (u->searching). */
void ui_events_search_step(struct ui *u);
void ui_output_draw(struct ui *u, const struct ui_rect *r);
int ui_output_key(struct ui *u, int key);
void ui_timeline_draw(struct ui *u, const struct ui_rect *r);
int ui_timeline_key(struct ui *u, int key);
int ui_timeline_click(struct ui *u, int col);
void ui_status_draw(struct ui *u, const struct ui_rect *r);
void ui_help_draw(struct ui *u);
int ui_help_key(struct ui *u, int key);

#endif /* FORKSCOPE_UI_H */
