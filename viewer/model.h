/*
 * model: what the trace says happened, built only from events.
 *
 * Events are stream openings (a header: an image starts) and records. They
 * are applied in one global time order (model_event_cmp) with
 * model_apply(); model_finish() then derives the values that depend on the
 * whole picture so far (ends, exit statuses, zombie time, orphans, tree,
 * untraced images). It may be called again after more events: the live
 * viewer applies, finishes and draws in a loop; a replay rebuilds a fresh
 * model up to the chosen event. The report, the TUI and the exporters read
 * the model only.
 */
#ifndef FORKSCOPE_MODEL_H
#define FORKSCOPE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "heap.h"
#include "reader.h"
#include "table.h"

#define MODEL_EV_OPEN 0x10000u  /* event kind: the stream's header */
#define MODEL_NONE ((size_t)-1)
#define MODEL_REVS_MAX 100000u  /* region changes kept per process */

struct model_event {
	uint64_t key_ns;        /* sort key: ts_ns, or the fork time for a
	                           fork child's OPEN so its heap copy is exact */
	uint64_t order;         /* tie-break: stream order, then file order */
	uint64_t ts_ns;
	struct reader_stream *stream;
	uint32_t kind;          /* FSK_REC_* or MODEL_EV_OPEN */
	uint32_t tid;
	uint64_t off;           /* file offset, for messages */
	const unsigned char *payload; /* owned by whoever built the event */
	uint32_t len;
};

int model_event_cmp(const void *a, const void *b);

enum model_stream_state {
	MODEL_SS_RUNNING,       /* no end yet and the trace is still growing */
	MODEL_SS_CLEAN,         /* END record */
	MODEL_SS_EXEC,          /* last record EXEC: replaced by the next image */
	MODEL_SS_CUT,           /* ended without END (killed, crashed) */
	MODEL_SS_CORRUPT,       /* the reader stopped at damage */
	MODEL_SS_UNTRACED,      /* no stream at all */
	MODEL_SS_STOPPED,       /* tracing stopped, the process went on
	                           (END FSK_END_STOPPED: a seccomp filter) */
};

const char *model_stream_state_name(enum model_stream_state s);

struct model_image {
	const struct reader_stream *stream; /* NULL: an image we only heard of */
	uint32_t seq;
	uint32_t flags;         /* header FSK_HF_* */
	char *exe;
	char **argv;            /* NULL-terminated */
	uint64_t t_ns;          /* start: header start_ns, or the fork/exec time */
	uint64_t last_ns;       /* newest record */
	uint64_t nrecs;
	int end_seen;
	uint32_t end_reason;    /* enum fsk_end_reason */
	uint64_t dropped;       /* DROPPED records */
	uint64_t end_dropped;   /* END.dropped */
	int exec_pending;       /* EXEC with no EXEC_FAIL after it */
	uint16_t exec_flags;    /* FSK_EF_* of that EXEC */
	char *exec_path;        /* ... and what it tried to run */
	char **exec_argv;
	uint64_t exec_ts;
	enum model_stream_state state;  /* derived */
	const char *untraced_reason;
};

struct model_region {
	struct fsk_region r;
	char *path;             /* NULL for anonymous */
};

struct model_scan {
	uint32_t id;
	uint16_t trigger;
	uint64_t ts_ns;
	struct model_region *v;
	size_t n, cap;
};

/*
 * A region change between two consecutive scans of a process, derived by
 * regions_diff.c when a scan ends, with the cause the hooks recorded in
 * between (MAP, BRK, malloc's own mmaps). Removed: start/end is what went;
 * grown/shrunk: the region now and old_* before; moved (mremap): the new
 * place and old_* the old one; prot: the pages whose permissions changed.
 */
enum model_rev_what {
	MODEL_REV_ADDED = 1, MODEL_REV_REMOVED, MODEL_REV_GROWN, MODEL_REV_SHRUNK,
	MODEL_REV_PROT, MODEL_REV_MOVED,
};

enum model_rev_cause {
	MODEL_RC_UNKNOWN = 0, MODEL_RC_MMAP, MODEL_RC_MUNMAP, MODEL_RC_MREMAP,
	MODEL_RC_MPROTECT, MODEL_RC_MALLOC, MODEL_RC_BRK, MODEL_RC_SBRK,
	MODEL_RC_STACK, MODEL_RC_THREAD,
};

struct model_rev {
	uint64_t t_ns;          /* the causing call's time, else the scan's */
	uint64_t scan_ns;       /* the scan that saw the change */
	uint64_t start, end;
	uint64_t old_start, old_end;    /* 0, 0 when there is no before */
	uint32_t stack;         /* the causing call's stack id, 0 = none */
	uint16_t what;          /* enum model_rev_what */
	uint16_t cause;         /* enum model_rev_cause */
	uint16_t kind;          /* FSK_RK_* */
	uint16_t perms, old_perms;      /* FSK_P_*; old_perms only for prot */
	char *path;             /* NULL for anonymous */
};

/* What a hook said about the address space since the last scan. */
struct model_hint {
	uint64_t ts;
	uint64_t lo, hi;        /* pages the call added, removed or changed */
	uint64_t lo2, hi2;      /* mremap: the new place; else 0 */
	uint32_t stack;
	uint16_t op;            /* regions_diff.c's hint ops */
	uint16_t cause;         /* enum model_rev_cause */
	int32_t prot;           /* mprotect: the new PROT_* */
	int used;
};

enum model_exit_kind { MODEL_EXIT_UNKNOWN, MODEL_EXIT_EXITED, MODEL_EXIT_SIGNALED };

struct model_proc {
	size_t index;           /* in model.procs */
	uint64_t touched;       /* model.events when an event last changed it:
	                           the viewer's snapshots share the others */
	uint32_t pid;
	uint32_t ppid;          /* creator from FORK/SPAWN, else header ppid */
	int creator_known;
	int traced;             /* has a stream of its own */
	const char *untraced_reason;
	struct model_image *images;
	size_t nimages, cap;
	uint64_t start_ns;
	/* what the records said */
	int exit_rec;
	int32_t exit_code;
	uint16_t exit_how;      /* enum fsk_exit_how */
	uint64_t exit_ts;
	int reaped;
	uint32_t reaped_by;
	uint64_t reap_ts;
	struct fsk_wait reap;   /* the WAIT that reaped it */
	uint64_t waits, wait_polls, stopped, continued;
	uint64_t exit_scan_end_ns; /* when its exit scan ended, 0 = none */
	uint64_t forks, spawns, threads, exec_fails, faults, cow_fault_samples;
	uint64_t cow_fault_samples_tracer; /* of those, taken by forkscope's own code */
	uint64_t fork_fails; /* FORK records of a failed fork; fork_err the last errno */
	int32_t fork_err;
	uint64_t brk_moves, maps;
	int malloc_traced;
	struct heap heap;
	struct model_scan cur;  /* latest complete scan */
	struct model_scan pending;
	int pending_open;
	struct model_rev *revs; /* region changes in scan order */
	size_t nrevs, revs_cap;
	uint64_t revs_dropped;  /* beyond MODEL_REVS_MAX */
	struct model_hint *hints;       /* since the last scan */
	size_t nhints, hints_cap;
	/* derived by model_finish() */
	int has_end;
	uint64_t end_ns;
	enum model_exit_kind exit_kind;
	int exit_value;         /* code or signal */
	int exit_core;
	const char *exit_source;/* "wait", "exit_record" or NULL */
	int has_zombie;
	uint64_t dead_ns;       /* when it stopped running: zombie from here */
	uint64_t handlers_ns;   /* of the time from exit() to dead_ns, what the
	                           program's exit handlers took (not our exit
	                           scan); 0 after _exit, _Exit, abort, a signal */
	uint64_t zombie_ns;
	int orphaned;
	uint64_t dropped;
	size_t parent;          /* index in model.procs, or MODEL_NONE */
	size_t *children;       /* indexes, by start time */
	size_t nchildren;
	uint64_t shared_at_fork_pages, unshared_pages, cow_faults;
};

struct model {
	struct model_proc **procs;      /* in creation order */
	size_t n, cap;
	struct table pids;              /* pid -> index + 1 of its newest process */
	struct table streams;           /* stream pointer -> process index + 1,
	                                   0 for the runner's stream */
	int has_runner;
	uint32_t runner_pid;
	uint64_t runner_start_ns, runner_end_ns;
	int finished;                   /* no more events will come */
	int partial;                    /* a replay cursor stops the events before
	                                   the streams' ends: nothing is cut yet */
	uint64_t events;                /* applied so far */
	uint64_t last_ns;
	/* derived by model_finish() */
	size_t *order;                  /* processes by start time */
	size_t *roots;                  /* processes without a traced parent */
	size_t nroots;
};

void model_init(struct model *m);
void model_free(struct model *m);

/* A deep copy of src's applied state into dst (overwritten, not freed);
 * derived values come back with the next model_finish(). The timeline
 * keeps such copies as snapshots. 0 or -ENOMEM (dst is then empty). */
int model_copy(struct model *dst, const struct model *src);

/* model_copy without the processes: dst->procs has room for src->n and
 * dst->n is 0. 0 or -ENOMEM (dst is then empty). */
int model_copy_shell(struct model *dst, const struct model *src);

/* A deep copy of one process's applied state, NULL on ENOMEM; and the
 * freeing of such a copy (or of any process of a model). */
struct model_proc *model_proc_dup(const struct model_proc *src);
void model_proc_free(struct model_proc *p);

/* Applies one event; events must come in model_event_cmp order.
 * 0 or -ENOMEM. */
int model_apply(struct model *m, const struct model_event *ev);

/* Derives ends, exits, orphans, the tree; finished = no more events will
 * come (a stream without END is then cut, not running). 0 or -ENOMEM. */
int model_finish(struct model *m, int finished);

/* The newest process with this pid, or NULL. */
struct model_proc *model_find(const struct model *m, uint32_t pid);

/* The process's current image (the last one), never NULL for a process. */
const struct model_image *model_image_last(const struct model_proc *p);

const char *model_exit_how_name(unsigned how);
/* Pre-order walk of the process forest (model_walk.c). last[k] says
 * whether the row's ancestor at depth k (k == depth: the row itself) is
 * its parent's last child: what a tree drawing needs for its prefix. */
struct model_walk {
	const struct model *m;
	size_t *stack, *depth, sp;
	unsigned char *last;
	size_t prev, prev_depth;
	int skip;
};
int model_walk_begin(struct model_walk *w, const struct model *m);
size_t model_walk_next(struct model_walk *w, size_t *depth);
/* Do not descend into the children of the process just returned. */
void model_walk_skip(struct model_walk *w);
void model_walk_end(struct model_walk *w);

const char *model_region_kind_name(unsigned kind);

#endif /* FORKSCOPE_MODEL_H */
