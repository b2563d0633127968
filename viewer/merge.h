/*
 * merge: the events of a finished trace in model_event_cmp order without
 * keeping them.
 *
 * While load.c reads each stream once, merge_add() cuts the stream's
 * events into runs: pieces in file order whose sort keys never go down
 * and that hold no CTX record in between (a run is read again from a
 * reader_mark, which cannot look up another thread's time base). A
 * thread's records are in time order, so a run is about one flushed block
 * and the index is a few entries per block. merge_next() then reads all
 * runs again side by side and returns the smallest event by (key, order),
 * the order the in-memory sort gives: each run is sorted by that pair
 * already, so a heap of runs gives exactly the sorted sequence for any
 * input, whatever the writer did. Memory: the index plus a small window
 * per run that is being read.
 */
#ifndef FORKSCOPE_MERGE_H
#define FORKSCOPE_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "reader.h"

struct merge_run {
	uint64_t key, order;    /* of its first event */
	uint64_t n;             /* events */
	struct reader_stream *s;
	struct reader_mark mark;/* its first record (after OPEN when open) */
	uint64_t end;           /* just past its last record */
	int open;               /* the first event is the stream's OPEN */
};

struct merge {
	struct merge_run *runs;
	size_t n, cap;
	uint64_t last_key, last_nctx;   /* of the newest event added */
};

/* The events load.c and the merge make of a stream's header and of a
 * record (order left 0): one place, so both paths build the same. */
void merge_ev_open(struct model_event *e, struct reader_stream *s);
void merge_ev_rec(struct model_event *e, struct reader_stream *s, const struct reader_rec *r);

/* Adds the next event of stream s (s is just past ev's record, ev->order
 * one more than the last one added). An OPEN must be the stream's first
 * event. 0 or -ENOMEM. */
int merge_add(struct merge *m, struct reader_stream *s, const struct model_event *ev);
void merge_free(struct merge *m);

struct merge_slot;

struct merge_iter {
	struct merge_slot *heap;        /* one per run not finished */
	size_t nheap;
	int advance;                    /* the top returned the last event */
};

int merge_begin(struct merge_iter *it, const struct merge *m);

/* 1 with the next event in *ev (its payload valid until the next call),
 * 0 at the end, -errno when a stream no longer reads as it did
 * (-EIO) or on ENOMEM. */
int merge_next(struct merge_iter *it, struct model_event *ev);
void merge_end(struct merge_iter *it);

#endif /* FORKSCOPE_MERGE_H */
