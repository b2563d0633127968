/*
 * model_derive: the values of the model that depend on the whole picture
 * so far (ends, exit statuses, zombies, orphans, the tree, untraced
 * images). Recomputed from the applied state on every model_finish().
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "vec.h"

const char *model_stream_state_name(enum model_stream_state s)
{
	static const char *const n[] = {
		[MODEL_SS_RUNNING] = "running", [MODEL_SS_CLEAN] = "clean",
		[MODEL_SS_EXEC] = "exec", [MODEL_SS_CUT] = "cut",
		[MODEL_SS_CORRUPT] = "corrupt", [MODEL_SS_UNTRACED] = "untraced",
		[MODEL_SS_STOPPED] = "stopped",
	};
	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "unknown";
}

const char *model_exit_how_name(unsigned how)
{
	static const char *const n[] = {
		[FSK_EXIT_MAIN] = "main", [FSK_EXIT_EXIT] = "exit",
		[FSK_EXIT__EXIT] = "_exit", [FSK_EXIT__EXIT2] = "_Exit",
		[FSK_EXIT_ABORT] = "abort", [FSK_EXIT_SIGNAL] = "signal",
		[FSK_EXIT_LAST_THREAD] = "last_thread",
	};
	return how < sizeof(n) / sizeof(n[0]) && n[how] ? n[how] : "unknown";
}

const char *model_region_kind_name(unsigned kind)
{
	static const char *const n[] = {
		[FSK_RK_TEXT] = "text", [FSK_RK_RODATA] = "rodata",
		[FSK_RK_DATA] = "data", [FSK_RK_BSS] = "bss",
		[FSK_RK_HEAP] = "heap", [FSK_RK_STACK] = "stack",
		[FSK_RK_THREAD_STACK] = "thread_stack", [FSK_RK_ANON] = "anon",
		[FSK_RK_FILE] = "file", [FSK_RK_LIB] = "lib", [FSK_RK_SHM] = "shm",
		[FSK_RK_VDSO] = "vdso", [FSK_RK_VVAR] = "vvar",
		[FSK_RK_FORKSCOPE] = "forkscope",
	};
	return kind < sizeof(n) / sizeof(n[0]) && n[kind] ? n[kind] : "unknown";
}

static enum model_stream_state model_derive_state(const struct model *m,
						   const struct model_image *im, int last)
{
	if (!im->stream)
		return MODEL_SS_UNTRACED;
	if (im->stream->state == READER_CORRUPT)
		return MODEL_SS_CORRUPT;
	if (im->exec_pending || (im->end_seen && im->end_reason == FSK_END_EXEC))
		return MODEL_SS_EXEC;
	if (im->end_seen)
		return im->end_reason == FSK_END_STOPPED ? MODEL_SS_STOPPED : MODEL_SS_CLEAN;
	if (!last)
		return MODEL_SS_EXEC; /* replaced by a later image of the pid */
	if (m->finished || (!m->partial && (im->stream->state == READER_CUT ||
					    im->stream->state == READER_EOF)))
		return MODEL_SS_CUT;
	return MODEL_SS_RUNNING;
}

/* A finished trace whose last image exec'd and no next stream came: the
 * new image ran untraced. Adds it once as an untraced image. */
static int model_derive_untraced_exec(struct model_proc *p)
{
	struct model_image *last = &p->images[p->nimages - 1], *im;
	const char *why;
	char *exe;
	char **argv;

	if (!last->stream || last->state != MODEL_SS_EXEC || !last->exec_path)
		return 0;
	why = last->exec_flags & FSK_EF_UNTRACEABLE
		? "exec'd image cannot be traced (setuid/setgid or static)"
		: "exec'd image wrote no stream (static or setuid binary, or the "
		  "preload was dropped from its environment)";
	if (vec_reserve(&p->images, &p->cap, p->nimages + 1, sizeof(*p->images)) < 0)
		return -ENOMEM;
	last = &p->images[p->nimages - 1];
	exe = strdup(last->exec_path);
	argv = reader_strv_dup(last->exec_argv);
	if (!exe || !argv) {
		free(exe);
		reader_strv_free(argv);
		return -ENOMEM;
	}
	im = &p->images[p->nimages++];
	memset(im, 0, sizeof(*im));
	im->exe = exe;
	im->argv = argv;
	im->t_ns = im->last_ns = last->exec_ts;
	im->seq = last->seq + 1;
	im->state = MODEL_SS_UNTRACED;
	im->untraced_reason = why;
	return 0;
}

static void model_derive_exit(struct model_proc *p)
{
	p->exit_kind = MODEL_EXIT_UNKNOWN;
	p->exit_value = 0;
	p->exit_core = 0;
	p->exit_source = NULL;
	if (p->reaped && p->reap.state == FSK_WS_EXITED) {
		p->exit_kind = MODEL_EXIT_EXITED;
		p->exit_value = p->reap.value;
		p->exit_source = "wait";
	} else if (p->reaped && p->reap.state == FSK_WS_SIGNALED) {
		p->exit_kind = MODEL_EXIT_SIGNALED;
		p->exit_value = p->reap.value;
		p->exit_core = p->reap.core != 0;
		p->exit_source = "wait";
	} else if (p->exit_rec) {
		p->exit_source = "exit_record";
		if (p->exit_how == FSK_EXIT_SIGNAL || p->exit_how == FSK_EXIT_ABORT) {
			p->exit_kind = MODEL_EXIT_SIGNALED;
			p->exit_value = p->exit_how == FSK_EXIT_ABORT ? SIGABRT : p->exit_code;
		} else {
			p->exit_kind = MODEL_EXIT_EXITED;
			p->exit_value = p->exit_code;
		}
	}
}

static void model_derive_end(struct model_proc *p)
{
	const struct model_image *im = model_image_last(p);

	p->has_end = 0;
	if (p->exit_rec) {
		p->has_end = 1;
		p->end_ns = p->exit_ts;
	} else if (im->stream && im->state == MODEL_SS_CLEAN) {
		/* END without EXIT: e.g. a fatal signal the preload caught. A cut
		 * stream's last record only bounds the end from below. */
		p->has_end = 1;
		p->end_ns = im->last_ns;
	}
	/* A process is a zombie from its death, not from its EXIT record:
	 * after that come atexit handlers, the exit scan and the last flush
	 * of its stream (a fork child's ~0.2 ms were counted as zombie time).
	 * A stream that ended cleanly ends at the death; a cut one tells
	 * nothing later than its last record. */
	p->dead_ns = p->end_ns;
	if (p->exit_rec && im->stream && im->state == MODEL_SS_CLEAN && im->last_ns > p->dead_ns)
		p->dead_ns = im->last_ns;
	/* after exit() (or main's return) our exit scan ran first, then the
	 * program's atexit handlers, destructors and stdio */
	p->handlers_ns = 0;
	if (p->exit_rec && (p->exit_how == FSK_EXIT_EXIT || p->exit_how == FSK_EXIT_MAIN)) {
		uint64_t from = p->exit_scan_end_ns > p->end_ns ? p->exit_scan_end_ns : p->end_ns;
		p->handlers_ns = p->dead_ns > from ? p->dead_ns - from : 0;
	}
	p->has_zombie = p->reaped && p->has_end;
	p->zombie_ns = p->has_zombie && p->reap_ts > p->dead_ns ? p->reap_ts - p->dead_ns : 0;
}

/* Parent links must point to an earlier process so that hostile ppids
 * cannot make a cycle. */
static int model_derive_before(const struct model_proc *a, const struct model_proc *b)
{
	if (a->start_ns != b->start_ns)
		return a->start_ns < b->start_ns;
	return a->index < b->index;
}

static const struct model *model_sort_ctx;

static int model_derive_cmp(const void *a, const void *b)
{
	const struct model_proc *x = model_sort_ctx->procs[*(const size_t *)a];
	const struct model_proc *y = model_sort_ctx->procs[*(const size_t *)b];

	if (x == y)
		return 0;
	if (x->start_ns != y->start_ns)
		return x->start_ns < y->start_ns ? -1 : 1;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return x->index < y->index ? -1 : 1;
}

static void model_derive_orphan(const struct model *m, struct model_proc *p)
{
	const struct model_proc *par = p->parent != MODEL_NONE ? m->procs[p->parent] : NULL;

	/* Reaped by its parent: never an orphan, whatever its end time (a
	 * killed child has none). Otherwise its parent went first. */
	p->orphaned = 0;
	if (p->reaped) {
		p->orphaned = p->reaped_by != p->ppid;
		return;
	}
	if (par && par->has_end && (!p->has_end || par->end_ns < p->end_ns))
		p->orphaned = 1;
}

static int model_derive_tree(struct model *m)
{
	size_t *order = malloc((m->n + 1) * sizeof(*order));
	size_t *roots = malloc((m->n + 1) * sizeof(*roots));

	if (!order || !roots) {
		free(order);
		free(roots);
		return -ENOMEM;
	}
	free(m->order);
	free(m->roots);
	m->order = order;
	m->roots = roots;
	m->nroots = 0;
	for (size_t i = 0; i < m->n; i++)
		order[i] = i;
	model_sort_ctx = m;
	qsort(order, m->n, sizeof(*order), model_derive_cmp);
	for (size_t i = 0; i < m->n; i++) {
		struct model_proc *p = m->procs[i], *par = model_find(m, p->ppid);
		free(p->children);
		p->children = NULL;
		p->nchildren = 0;
		p->parent = par && par != p && model_derive_before(par, p) ? par->index : MODEL_NONE;
	}
	/* Children counted, then filled in start order. */
	for (size_t i = 0; i < m->n; i++)
		if (m->procs[i]->parent != MODEL_NONE)
			m->procs[m->procs[i]->parent]->nchildren++;
	for (size_t i = 0; i < m->n; i++) {
		struct model_proc *p = m->procs[i];
		if (p->nchildren && !(p->children = malloc(p->nchildren * sizeof(size_t))))
			return -ENOMEM;
		p->nchildren = 0;
	}
	for (size_t i = 0; i < m->n; i++) {
		struct model_proc *p = m->procs[order[i]];
		if (p->parent == MODEL_NONE)
			roots[m->nroots++] = order[i];
		else
			m->procs[p->parent]->children[m->procs[p->parent]->nchildren++] = order[i];
	}
	return 0;
}

int model_finish(struct model *m, int finished)
{
	m->finished = finished;
	for (size_t i = 0; i < m->n; i++) {
		struct model_proc *p = m->procs[i];
		p->dropped = 0;
		for (size_t k = 0; k < p->nimages; k++) {
			struct model_image *im = &p->images[k];
			im->state = model_derive_state(m, im, k + 1 == p->nimages);
			p->dropped += im->dropped > im->end_dropped ? im->dropped : im->end_dropped;
		}
		if (finished && model_derive_untraced_exec(p) < 0)
			return -ENOMEM;
		model_derive_exit(p);
		model_derive_end(p);
		p->shared_at_fork_pages = p->unshared_pages = p->cow_faults = 0;
		for (size_t k = 0; k < p->cur.n; k++) {
			p->shared_at_fork_pages += p->cur.v[k].r.shared_at_fork;
			p->unshared_pages += p->cur.v[k].r.unshared;
			p->cow_faults += p->cur.v[k].r.cow_faults;
		}
	}
	if (model_derive_tree(m) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++)
		model_derive_orphan(m, m->procs[i]);
	return 0;
}
