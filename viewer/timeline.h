/*
 * timeline: the model at a cursor in the trace, for the viewer.
 *
 * The events of a trace directory (read through load.h) are kept in global
 * time order; the cursor is a number of events: the model holds the state
 * after the first `pos` of them. Periodic snapshots make a seek replay at
 * most one snapshot interval instead of the whole trace; a snapshot shares
 * the copy of every process no event changed since the snapshot before
 * (model_proc.touched), so memory grows with activity, not with
 * processes x snapshots.
 * timeline_poll() takes the events that arrived since the last call (a
 * live trace): snapshots after the first event whose place changed are
 * dropped, so a late flush of another thread can never leave a stale state.
 * Nothing here draws; the TUI reads timeline_model() only.
 */
#ifndef FORKSCOPE_TIMELINE_H
#define FORKSCOPE_TIMELINE_H

#include <stddef.h>
#include <stdint.h>

#include "load.h"
#include "model.h"
#include "table.h"

struct timeline_snap {
	size_t pos;             /* events applied */
	struct model m;
};

/* A region change a scan found, at the cursor that applies its SCAN_END. */
struct timeline_rev {
	size_t pos;
	uint32_t pid;
	struct model_rev r;     /* r.path owned */
};

struct timeline {
	struct load load;       /* load.ev[0..load.nev) sorted by model_event_cmp */
	struct model cur;       /* state after `applied` events */
	size_t applied;
	size_t pos;             /* the cursor */
	int finished;           /* the trace will not grow */
	int runner_ended;       /* the END of `forkscope run`'s stream was read:
	                           the directory is complete */
	int cur_finished;       /* model_finish() flags cur was derived with */
	struct timeline_snap *snaps;
	size_t nsnaps, snaps_cap;
	size_t every;           /* snapshot interval in events */
	struct table refs;      /* process copy -> snapshots that share it */
	struct model near;      /* a private checkpoint for stepping back */
	size_t near_pos;
	int has_near;
	size_t *bursts;         /* COW bursts: cursor positions, ascending */
	size_t nbursts, bursts_cap;
	size_t bursts_nev;      /* 1 + the number of events they were found in */
	struct timeline_rev *revs;      /* by pos: what the model derived, */
	size_t nrevs, revs_cap;         /* taken the first time each event */
	size_t revs_upto;               /* before revs_upto is applied */
};

/* Opens dir and reads what it holds now (finished: it will not grow).
 * 0 or -errno; load messages are in t->load.msgs. */
int timeline_open(struct timeline *t, const char *dir, int finished);

/* Reads new events; finished = nothing more will come. Returns the number
 * of new events, or -errno. The cursor does not move. */
long timeline_poll(struct timeline *t, int finished);

/* Moves the cursor (clamped to the number of events) and brings the model
 * to it, derived values included. 0 or -ENOMEM. */
int timeline_seek(struct timeline *t, size_t pos);

static inline size_t timeline_len(const struct timeline *t)
{
	return t->load.nev;
}

static inline const struct model_event *timeline_event(const struct timeline *t, size_t i)
{
	return &t->load.ev[i];
}

/* The model at the cursor (after timeline_seek). */
static inline const struct model *timeline_model(const struct timeline *t)
{
	return &t->cur;
}

/* First and last event times; 0 for an empty trace. */
uint64_t timeline_start_ns(const struct timeline *t);
uint64_t timeline_end_ns(const struct timeline *t);

/* The time of the cursor: of the last applied event, else the start. */
uint64_t timeline_now_ns(const struct timeline *t);

/* The cursor position that applies every event at or before ns. */
size_t timeline_pos_at(const struct timeline *t, uint64_t ns);

/*
 * The next (dir > 0) or previous (dir < 0) cursor position, from pos,
 * whose last applied event satisfies match; pos itself if none.
 */
size_t timeline_find(const struct timeline *t, size_t pos, int dir,
		     int (*match)(const struct model_event *ev, void *arg), void *arg);

/* timeline_find looking at no more than max positions; when none matched
 * *stop is where a next call goes on from (the end or start: nothing
 * left). */
size_t timeline_find_max(const struct timeline *t, size_t pos, int dir,
			 int (*match)(const struct model_event *ev, void *arg), void *arg,
			 size_t max, size_t *stop);

/*
 * COW bursts: a scan of a process that found more unshared (COW-broken)
 * pages than its previous scan, and the start of a cluster of sampled COW
 * faults (at least TIMELINE_BURST_FAULTS of one stream, each within
 * TIMELINE_BURST_GAP_NS of the one before). The position is the cursor
 * that applies the SCAN_END, or the cluster's first fault. Found in one
 * pass over the events, again only after the trace grew.
 */
#define TIMELINE_BURST_FAULTS 2
#define TIMELINE_BURST_GAP_NS 1000000ull

/* The next (dir > 0) or previous burst position from pos; pos if none. */
size_t timeline_burst(struct timeline *t, size_t pos, int dir);

/* The region changes found at cursor position pos (n of them from
 * *first); only positions the cursor has passed once are known (the
 * viewer opens at the end). */
size_t timeline_revs_at(const struct timeline *t, size_t pos, const struct timeline_rev **first);

void timeline_free(struct timeline *t);

#endif /* FORKSCOPE_TIMELINE_H */
