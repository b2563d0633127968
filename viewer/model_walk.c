/*
 * model_walk: the process forest in pre-order, without recursion (a chain
 * of thousands of nested forks must not exhaust the stack). The report's
 * tree and the viewer's tree pane draw from it.
 */
#include <stdlib.h>

#include "model.h"

int model_walk_begin(struct model_walk *w, const struct model *m)
{
	*w = (struct model_walk){ .m = m, .prev = MODEL_NONE };
	w->stack = malloc((m->n + 1) * sizeof(*w->stack));
	w->depth = malloc((m->n + 1) * sizeof(*w->depth));
	w->last = calloc(m->n + 2, 1);
	if (!w->stack || !w->depth || !w->last) {
		model_walk_end(w);
		return -1;
	}
	for (size_t i = m->nroots; i-- > 0;) {
		w->stack[w->sp] = m->roots[i];
		w->depth[w->sp++] = 0;
	}
	return 0;
}

/* The next process index (its depth in *depth), or MODEL_NONE at the end.
 * The children of the one returned before come next unless
 * model_walk_skip() was called for it. */
size_t model_walk_next(struct model_walk *w, size_t *depth)
{
	if (w->prev != MODEL_NONE && !w->skip) {
		const struct model_proc *p = w->m->procs[w->prev];
		for (size_t c = p->nchildren; c-- > 0;) {
			w->stack[w->sp] = p->children[c];
			w->depth[w->sp++] = w->prev_depth + 1;
		}
	}
	w->skip = 0;
	if (!w->sp || !w->stack)
		return w->prev = MODEL_NONE;
	size_t i = w->stack[--w->sp], d = w->depth[w->sp];
	const struct model_proc *p = w->m->procs[i];
	if (d && p->parent != MODEL_NONE) {
		const struct model_proc *par = w->m->procs[p->parent];
		w->last[d] = par->children[par->nchildren - 1] == i;
	}
	w->prev = i;
	w->prev_depth = d;
	*depth = d;
	return i;
}

void model_walk_skip(struct model_walk *w)
{
	w->skip = 1;
}

void model_walk_end(struct model_walk *w)
{
	free(w->stack);
	free(w->depth);
	free(w->last);
	w->stack = w->depth = NULL;
	w->last = NULL;
}
