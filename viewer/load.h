/*
 * load: reads a trace directory into one time-ordered event list and builds
 * the model from it. load_poll() reads what the streams hold now and can be
 * called again while the trace grows; load_build() (re)builds the model
 * from all events so far. Problems found on the way are kept as
 * "what: file: offset N" lines for the front end to print.
 */
#ifndef FORKSCOPE_LOAD_H
#define FORKSCOPE_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "merge.h"
#include "model.h"
#include "reader.h"

struct load_chunk;

struct load_msg {
	char *text;             /* without the "forkscope: " prefix */
	int fatal;              /* corrupt, truncated header, no trace */
	const struct reader_stream *cut; /* a stream cut inside a record */
};

struct load {
	struct reader_dir dir;
	struct model_event *ev; /* in stream then file order until sorted;
	                           streamed: only STACK and MODULE events */
	size_t nev, cap;
	uint64_t order;         /* next event's tie-break number */
	struct load_chunk *chunks;  /* payload copies */
	struct load_msg *msgs;
	size_t nmsgs, msgs_cap;
	int fatal;              /* a fatal message was added */
	int streamed;           /* load_dir: events are replayed from the files */
	struct merge merge;     /* streamed: the runs to replay */
	struct model model;
	/* load_dir's progress line on a terminal (load.c) */
	uint64_t progress_t0, progress_next, progress_bytes;
	int progress_shown;
};

/* 0, or -errno when the directory cannot be read (a message is added). */
int load_init(struct load *l, const char *dir);

/* Reads the records complete now; finished = the trace will not grow, so
 * partial data is a cut stream. 0 or -errno. */
int load_poll(struct load *l, int finished);

/* A fresh model from every event read so far. 0, -ENOMEM, or -EIO when
 * a streamed file changed since it was read (the model then holds the
 * events before that). */
int load_build(struct load *l, int finished);

/* load_init + load_poll + load_build of a finished trace. Returns 0 when
 * everything read cleanly, 1 when there were fatal problems (the model
 * holds what was readable), -errno when the directory cannot be read.
 * The events are not kept but replayed from the files by load_replay()
 * (memory grows with live state, not with events), unless the
 * environment sets FORKSCOPE_LOAD_ALL (the viewer's in-memory path; tests
 * compare the two). */
int load_dir(struct load *l, const char *dir);

/* Calls fn with every event in model_event_cmp order (a payload is valid
 * during the call only); stops at fn's first negative result and returns
 * it. 0, -EIO when a file changed since it was read, or -ENOMEM. */
int load_replay(const struct load *l, int (*fn)(void *ctx, const struct model_event *ev),
		void *ctx);

/* Whether message i is for the front end to print: not a stream cut
 * inside a record that the model explains, the last image of a process
 * a signal killed (the kernel ends a write at a page boundary when a
 * fatal signal is pending: a killed process's last write can stop inside
 * a record). Such a stream is "cut" in the model, which says so. */
int load_msg_shown(const struct load *l, size_t i);

/* The first event's sort key, 0 without events. */
uint64_t load_first_ns(const struct load *l);

void load_free(struct load *l);

#endif /* FORKSCOPE_LOAD_H */
