/*
 * describe: one-line words for what the model and its events say, shared
 * by the viewer's panes (which must not decode records themselves) and
 * usable by any text front end. No curses here.
 */
#ifndef FORKSCOPE_DESCRIBE_H
#define FORKSCOPE_DESCRIBE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* Event classes, as the events pane filters them. */
enum describe_class {
	DESCRIBE_LIFECYCLE = 1,  /* open, fork, exec, exit, wait, end, threads */
	DESCRIBE_MALLOC = 2,     /* malloc family */
	DESCRIBE_MAP = 4,        /* mmap family and brk */
	DESCRIBE_REGION = 8,     /* address-space scans */
	DESCRIBE_COW = 16,       /* sampled page faults */
	DESCRIBE_OTHER = 32,     /* notes, stacks, drops, modules */
	DESCRIBE_ALL = 63,
};

unsigned describe_class(uint32_t kind);

/* The pid whose stream holds ev. */
uint32_t describe_pid(const struct model_event *ev);

/* 1 if ev belongs to the runner (`forkscope run` itself). */
int describe_is_runner(const struct model_event *ev);

/* A fork or spawn that made a child (parent side): the timeline's marks. */
int describe_is_fork(const struct model_event *ev);

/* A process's end: its EXIT record, or the wait that saw it killed (a
 * SIGKILLed process writes nothing). */
int describe_is_exit(const struct model_event *ev);

/* "fork -> child 2703", "malloc 4.0 KiB = 0x55...", "exit 3 (exit)", ...
 * without the pid and time. Control characters never reach buf. */
void describe_event(const struct model_event *ev, char *buf, size_t n);

/* A region change of the model (model_proc.revs, regions_diff.c):
 * "region moved anon 0x..-0x.. (192.0 KiB) from 0x..-0x.. by mremap".
 * The events pane can merge p->revs[] by t_ns with the records. */
void describe_rev(const struct model_rev *e, char *buf, size_t n);

/* A process's state in the model: "running", "zombie" (ended, not yet
 * reaped), "reaped", "untraced", "cut" (its stream stopped without an end).
 * At a replay cursor (m->partial) a child whose stream has not opened yet
 * is running, not untraced. */
const char *describe_state(const struct model *m, const struct model_proc *p);

#endif /* FORKSCOPE_DESCRIBE_H */
