/*
 * regions_diff: see regions_diff.h.
 *
 * The two scans are swept together from low to high addresses, cut at every
 * region boundary of either: each piece of address space is then in the old
 * scan only (removed), the new one only (added), in both with other
 * permissions (prot) or another backing object (replaced: removed and
 * added), or unchanged. Neighbouring pieces of one region make one change.
 * A piece added at the edge of a region that was there before is growth,
 * a piece removed at the edge of a region that stays is shrinkage, unless
 * the hook says the piece is a mapping of its own (mmap, malloc's chunk
 * mmap: the kernel merged it with a neighbour). The cause is the newest
 * hint whose pages overlap the piece; mremap pairs a removed and an added
 * piece into one move. Our own memory (kind forkscope) is never a change.
 */
#include "regions_diff.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vec.h"

#define HINTS_MAX 65536u        /* hints kept between two scans */
#define MALLOC_CHUNK_HDR 16u    /* glibc's mmapped chunk starts before the block */

enum { H_ADD = 1, H_REMOVE, H_REMAP, H_PROT, H_BRK };
enum { C_SAME, C_ADDED, C_REMOVED, C_PROT, C_IGNORE };

struct seg {
	uint64_t lo, hi;
	const struct model_region *o, *n;
	int cls;
};

struct piece {
	uint64_t lo, hi;
	size_t seg;             /* its first segment */
	const struct model_region *o, *n;
	int cls;
	struct model_hint *h;
	int done;
};

const char *regions_diff_what_name(unsigned what)
{
	static const char *const n[] = {
		[MODEL_REV_ADDED] = "added", [MODEL_REV_REMOVED] = "removed",
		[MODEL_REV_GROWN] = "grown", [MODEL_REV_SHRUNK] = "shrunk",
		[MODEL_REV_PROT] = "prot", [MODEL_REV_MOVED] = "moved",
	};
	return what < sizeof(n) / sizeof(n[0]) && n[what] ? n[what] : "unknown";
}

const char *regions_diff_cause_name(unsigned cause)
{
	static const char *const n[] = {
		[MODEL_RC_UNKNOWN] = "unknown", [MODEL_RC_MMAP] = "mmap",
		[MODEL_RC_MUNMAP] = "munmap", [MODEL_RC_MREMAP] = "mremap",
		[MODEL_RC_MPROTECT] = "mprotect", [MODEL_RC_MALLOC] = "malloc",
		[MODEL_RC_BRK] = "brk", [MODEL_RC_SBRK] = "sbrk",
		[MODEL_RC_STACK] = "stack growth", [MODEL_RC_THREAD] = "thread start",
	};
	return cause < sizeof(n) / sizeof(n[0]) && n[cause] ? n[cause] : "unknown";
}

/* ---- hints ---- */

static uint64_t page_of(const struct model_event *ev)
{
	uint32_t ps = ev->stream ? ev->stream->hdr.page_size : 0;

	return ps && !(ps & (ps - 1)) ? ps : 4096;
}

static uint64_t up(uint64_t v, uint64_t ps)
{
	return v > UINT64_MAX - ps ? UINT64_MAX & ~(ps - 1) : (v + ps - 1) & ~(ps - 1);
}

static uint64_t end_of(uint64_t start, uint64_t len, uint64_t ps)
{
	return len > UINT64_MAX - start ? UINT64_MAX & ~(ps - 1) : up(start + len, ps);
}

/* The pages [*lo, *hi) that len bytes at start touch. */
static void span(uint64_t start, uint64_t len, uint64_t ps, uint64_t *lo, uint64_t *hi)
{
	*lo = start & ~(ps - 1);
	*hi = end_of(start, len, ps);
}

static int hint_push(struct model_proc *p, const struct model_hint *h)
{
	if (h->hi <= h->lo && h->hi2 <= h->lo2)
		return 0;
	if (p->nhints >= HINTS_MAX) {
		/* A program that maps without pause between two scans: the
		 * oldest half can only explain changes long gone. */
		size_t keep = p->nhints / 2;
		memmove(p->hints, p->hints + (p->nhints - keep), keep * sizeof(*p->hints));
		p->nhints = keep;
	}
	if (vec_reserve(&p->hints, &p->hints_cap, p->nhints + 1, sizeof(*p->hints)) < 0)
		return -ENOMEM;
	p->hints[p->nhints++] = *h;
	return 0;
}

static int hint_map(struct model_proc *p, const struct model_event *ev, uint64_t ps)
{
	struct fsk_map m;
	struct model_hint h = { .ts = ev->ts_ns, .cause = MODEL_RC_MMAP };

	memcpy(&m, ev->payload, sizeof(m));
	if (m.err)
		return 0;
	h.stack = m.stack;
	switch (m.op) {
	case FSK_MAP_MMAP:
		h.op = H_ADD;
		span(m.result, m.len, ps, &h.lo, &h.hi);
		break;
	case FSK_MAP_MUNMAP:
		h.op = H_REMOVE;
		h.cause = MODEL_RC_MUNMAP;
		span(m.addr, m.len, ps, &h.lo, &h.hi);
		break;
	case FSK_MAP_MREMAP:
		h.op = H_REMAP;
		h.cause = MODEL_RC_MREMAP;
		span(m.addr, m.len, ps, &h.lo, &h.hi);
		span(m.result, m.arg, ps, &h.lo2, &h.hi2);
		break;
	case FSK_MAP_MPROTECT:
		h.op = H_PROT;
		h.cause = MODEL_RC_MPROTECT;
		h.prot = m.prot;
		span(m.addr, m.len, ps, &h.lo, &h.hi);
		break;
	default:
		return 0;
	}
	return hint_push(p, &h);
}

/* The pages of glibc's mmapped chunk for a block of size bytes at addr. */
static void hint_chunk(struct model_hint *h, uint64_t addr, uint64_t size, uint64_t ps)
{
	uint64_t lo = addr >= MALLOC_CHUNK_HDR ? addr - MALLOC_CHUNK_HDR : 0;

	h->lo = lo & ~(ps - 1);
	h->hi = end_of(addr, size ? size : 1, ps);
}

int regions_diff_hint(struct model_proc *p, const struct model_event *ev)
{
	uint64_t ps = page_of(ev), size = 0;
	struct model_hint h = { .ts = ev->ts_ns, .cause = MODEL_RC_MALLOC };

	switch (ev->kind) {
	case FSK_REC_MAP:
		return hint_map(p, ev, ps);
	case FSK_REC_BRK: {
		struct fsk_brk b;
		memcpy(&b, ev->payload, sizeof(b));
		h.op = H_BRK;
		h.stack = b.stack;
		h.cause = b.cause == FSK_BRK_CALL ? MODEL_RC_BRK
			: b.cause == FSK_BRK_SBRK ? MODEL_RC_SBRK : MODEL_RC_MALLOC;
		h.prot = b.new_brk > b.old_brk; /* grows */
		h.lo = (b.new_brk < b.old_brk ? b.new_brk : b.old_brk) & ~(ps - 1);
		h.hi = up(b.new_brk > b.old_brk ? b.new_brk : b.old_brk, ps);
		return hint_push(p, &h);
	}
	case FSK_REC_ALLOC: {
		struct fsk_alloc a;
		memcpy(&a, ev->payload, sizeof(a));
		if (!(a.flags & FSK_AF_MMAPPED) || !a.addr)
			return 0;
		h.op = H_ADD;
		h.stack = a.stack;
		hint_chunk(&h, a.addr, a.size, ps);
		return hint_push(p, &h);
	}
	case FSK_REC_FREE: {
		struct fsk_free f;
		memcpy(&f, ev->payload, sizeof(f));
		if (!(f.flags & FSK_AF_MMAPPED) || !f.addr)
			return 0;
		table_get(&p->heap.live, f.addr, &size);
		h.op = H_REMOVE;
		h.stack = f.stack;
		hint_chunk(&h, f.addr, size, ps);
		return hint_push(p, &h);
	}
	case FSK_REC_REALLOC: {
		struct fsk_realloc r;
		memcpy(&r, ev->payload, sizeof(r));
		if (!(r.flags & FSK_AF_MMAPPED) || !r.new_addr || (r.flags & FSK_AF_FAILED))
			return 0;
		h.stack = r.stack;
		hint_chunk(&h, r.new_addr, r.size, ps);
		h.op = H_ADD;
		if (r.old_addr && table_get(&p->heap.live, r.old_addr, &size)) {
			/* glibc mremaps an mmapped chunk: in place or moved */
			h.lo2 = h.lo;
			h.hi2 = h.hi;
			hint_chunk(&h, r.old_addr, size, ps);
			h.op = H_REMAP;
		}
		return hint_push(p, &h);
	}
	}
	return 0;
}

static int overlaps(uint64_t lo, uint64_t hi, uint64_t a, uint64_t b)
{
	return lo < b && a < hi;
}

/* The newest unused hint that can explain a piece of class cls at [lo, hi). */
static struct model_hint *hint_find(struct model_proc *p, int cls, uint64_t lo, uint64_t hi)
{
	for (size_t i = p->nhints; i-- > 0;) {
		struct model_hint *h = &p->hints[i];
		int hit = 0;
		switch (h->op) {
		case H_ADD:
			hit = cls == C_ADDED && overlaps(lo, hi, h->lo, h->hi);
			break;
		case H_REMOVE:
			hit = cls == C_REMOVED && overlaps(lo, hi, h->lo, h->hi);
			break;
		case H_REMAP:
			hit = (cls == C_ADDED && overlaps(lo, hi, h->lo2, h->hi2)) ||
			      (cls == C_REMOVED && overlaps(lo, hi, h->lo, h->hi));
			break;
		case H_PROT:
			hit = overlaps(lo, hi, h->lo, h->hi) &&
			      (cls == C_PROT || (cls == C_ADDED && h->prot != PROT_NONE) ||
			       (cls == C_REMOVED && h->prot == PROT_NONE));
			break;
		case H_BRK:
			hit = overlaps(lo, hi, h->lo, h->hi) &&
			      (h->prot ? cls == C_ADDED : cls == C_REMOVED);
			break;
		}
		if (hit)
			return h;
	}
	return NULL;
}

/* ---- the sweep ---- */

static int seg_push(struct seg **v, size_t *n, size_t *cap, const struct seg *s)
{
	if (vec_reserve(v, cap, *n + 1, sizeof(**v)) < 0)
		return -ENOMEM;
	(*v)[(*n)++] = *s;
	return 0;
}

static int same_object(const struct fsk_region *a, const struct fsk_region *b)
{
	if (a->inode != b->inode || a->dev != b->dev)
		return 0;
	return !a->inode || a->offset - a->start == b->offset - b->start;
}

/* Cuts [lo, hi) by both scans' boundaries; one seg per piece of either. */
static int sweep(const struct model_scan *a, const struct model_scan *b, struct seg **v,
		 size_t *n, size_t *cap)
{
	size_t i = 0, j = 0;
	uint64_t at = 0;

	while (i < a->n || j < b->n) {
		const struct model_region *o = i < a->n ? &a->v[i] : NULL;
		const struct model_region *w = j < b->n ? &b->v[j] : NULL;
		if (o && o->r.end <= at) {
			i++;
			continue;
		}
		if (w && w->r.end <= at) {
			j++;
			continue;
		}
		uint64_t os = o ? (o->r.start > at ? o->r.start : at) : UINT64_MAX;
		uint64_t ws = w ? (w->r.start > at ? w->r.start : at) : UINT64_MAX;
		uint64_t lo = os < ws ? os : ws, hi = UINT64_MAX;
		if (lo > at) {
			at = lo;
			continue;
		}
		int oin = o && o->r.start <= at, win = w && w->r.start <= at;
		if (o)
			hi = oin ? o->r.end : o->r.start;
		if (w) {
			uint64_t e = win ? w->r.end : w->r.start;
			hi = e < hi ? e : hi;
		}
		struct seg s = { at, hi, oin ? o : NULL, win ? w : NULL, C_SAME };
		int own = (s.o && s.o->r.kind == FSK_RK_FORKSCOPE) ||
			  (s.n && s.n->r.kind == FSK_RK_FORKSCOPE);
		if (own || (!s.o && !s.n)) {
			s.cls = C_IGNORE;
		} else if (!s.o) {
			s.cls = C_ADDED;
		} else if (!s.n) {
			s.cls = C_REMOVED;
		} else if (!same_object(&s.o->r, &s.n->r)) {
			struct seg r = { at, hi, s.o, NULL, C_REMOVED };
			if (seg_push(v, n, cap, &r) < 0)
				return -ENOMEM;
			s.o = NULL;
			s.cls = C_ADDED;
		} else if (s.o->r.perms != s.n->r.perms) {
			s.cls = C_PROT;
		}
		if (seg_push(v, n, cap, &s) < 0)
			return -ENOMEM;
		at = hi;
	}
	return 0;
}

/* The part of region r (old: r is an old region; else new) that is in
 * both scans: [*lo, *hi), 0 if none. The segments of r are those around
 * v[at] inside r's range (address order), so this costs r's segments only. */
static int kept_part(const struct seg *v, size_t n, size_t at, const struct model_region *r,
		     int old, uint64_t *lo, uint64_t *hi)
{
	size_t a = at, b = at;
	int any = 0;

	while (a > 0 && v[a - 1].hi > r->r.start)
		a--;
	while (b < n && v[b].lo < r->r.end)
		b++;
	for (size_t k = a; k < b; k++) {
		if ((old ? v[k].o : v[k].n) != r || (v[k].cls != C_SAME && v[k].cls != C_PROT))
			continue;
		if (!any || v[k].lo < *lo)
			*lo = v[k].lo;
		if (!any || v[k].hi > *hi)
			*hi = v[k].hi;
		any = 1;
	}
	return any;
}

static int rev_push(struct model_proc *p, const struct model_rev *r, const char *path)
{
	struct model_rev *d;

	if (p->nrevs >= MODEL_REVS_MAX) {
		p->revs_dropped++;
		return 0;
	}
	if (vec_reserve(&p->revs, &p->revs_cap, p->nrevs + 1, sizeof(*p->revs)) < 0)
		return -ENOMEM;
	d = &p->revs[p->nrevs];
	*d = *r;
	d->path = NULL;
	if (path && !(d->path = strdup(path)))
		return -ENOMEM;
	p->nrevs++;
	return 0;
}

static int moving(const struct model_hint *h)
{
	return h && h->op == H_REMAP && h->lo != h->lo2;
}

/* One change from a piece (and its mremap partner for a move). */
static int piece_rev(struct model_proc *p, const struct seg *v, size_t nv, struct piece *pc,
		     struct piece *all, size_t npc, uint64_t scan_ns)
{
	const struct model_region *r = pc->n ? pc->n : pc->o;
	struct model_hint *h = pc->h;
	struct model_rev e = { .t_ns = h ? h->ts : scan_ns, .scan_ns = scan_ns,
			       .start = pc->lo, .end = pc->hi, .kind = r->r.kind,
			       .perms = r->r.perms, .cause = h ? h->cause : MODEL_RC_UNKNOWN,
			       .stack = h ? h->stack : 0 };
	uint64_t lo = 0, hi = 0;

	pc->done = 1;
	if (h)
		h->used = 1;
	if (pc->cls == C_PROT) {
		e.what = MODEL_REV_PROT;
		e.old_perms = pc->o->r.perms;
	} else if (h && h->op == H_PROT) {
		/* to or from PROT_NONE, which scans do not list */
		e.what = MODEL_REV_PROT;
		if (pc->cls == C_REMOVED) {
			e.old_perms = e.perms;
			e.perms = pc->o->r.perms & FSK_P_SHARED;
		} else {
			e.old_perms = pc->n->r.perms & FSK_P_SHARED;
		}
	} else if (moving(h)) {
		e.what = pc->cls == C_ADDED ? MODEL_REV_ADDED : MODEL_REV_REMOVED;
		for (size_t k = 0; k < npc; k++) {
			struct piece *q = &all[k];
			if (q->done || q->h != h || q->cls == pc->cls)
				continue;
			const struct piece *add = pc->cls == C_ADDED ? pc : q;
			const struct piece *rm = pc->cls == C_ADDED ? q : pc;
			q->done = 1;
			e.what = MODEL_REV_MOVED;
			e.start = add->lo, e.end = add->hi;
			e.old_start = rm->lo, e.old_end = rm->hi;
			e.kind = add->n->r.kind;
			e.perms = add->n->r.perms;
			r = add->n;
			break;
		}
	} else if (pc->cls == C_ADDED) {
		e.what = MODEL_REV_ADDED;
		if (!h && r->r.kind == FSK_RK_THREAD_STACK)
			e.cause = MODEL_RC_THREAD;
		else if ((!h || h->op != H_ADD) && kept_part(v, nv, pc->seg, r, 0, &lo, &hi)) {
			e.what = MODEL_REV_GROWN;
			e.start = r->r.start, e.end = r->r.end;
			e.old_start = lo, e.old_end = hi;
			if (!h && r->r.kind == FSK_RK_STACK)
				e.cause = MODEL_RC_STACK;
		}
	} else {
		e.what = MODEL_REV_REMOVED;
		if (!(h && h->op == H_REMOVE && h->cause == MODEL_RC_MALLOC) &&
		    kept_part(v, nv, pc->seg, r, 1, &lo, &hi) && (pc->hi <= lo || pc->lo >= hi)) {
			e.what = MODEL_REV_SHRUNK;
			e.start = lo, e.end = hi;
			e.old_start = r->r.start, e.old_end = r->r.end;
		}
	}
	return rev_push(p, &e, r->path);
}

int regions_diff_scan(struct model_proc *p, const struct model_scan *a,
		      const struct model_scan *b)
{
	struct seg *v = NULL;
	struct piece *pcs = NULL;
	size_t nv = 0, cv = 0, np = 0, cp = 0, keep = 0;
	int e = sweep(a, b, &v, &nv, &cv);

	for (size_t k = 0; e == 0 && k < nv; k++) {
		const struct seg *s = &v[k];
		struct piece *last = np ? &pcs[np - 1] : NULL;
		if (s->cls == C_SAME || s->cls == C_IGNORE)
			continue;
		if (last && last->cls == s->cls && last->hi == s->lo &&
		    (s->cls == C_ADDED ? last->n == s->n
		     : s->cls == C_REMOVED ? last->o == s->o
		     : last->o == s->o && last->n == s->n)) {
			last->hi = s->hi;
			continue;
		}
		if (vec_reserve(&pcs, &cp, np + 1, sizeof(*pcs)) < 0) {
			e = -ENOMEM;
			break;
		}
		pcs[np++] = (struct piece){ s->lo, s->hi, k, s->o, s->n, s->cls, NULL, 0 };
	}
	for (size_t k = 0; k < np; k++)
		pcs[k].h = hint_find(p, pcs[k].cls, pcs[k].lo, pcs[k].hi);
	size_t first = p->nrevs;
	for (size_t k = 0; e == 0 && k < np; k++)
		if (!pcs[k].done)
			e = piece_rev(p, v, nv, &pcs[k], pcs, np, b->ts_ns);
	/* One scan's changes in the order their calls came (insertion sort:
	 * a scan has a handful). */
	for (size_t k = first + 1; k < p->nrevs; k++) {
		struct model_rev r = p->revs[k];
		size_t j = k;
		for (; j > first && p->revs[j - 1].t_ns > r.t_ns; j--)
			p->revs[j] = p->revs[j - 1];
		p->revs[j] = r;
	}
	/* Hints newer than the scan's start may show in the next scan. */
	for (size_t k = 0; k < p->nhints; k++)
		if (!p->hints[k].used && p->hints[k].ts >= b->ts_ns)
			p->hints[keep++] = p->hints[k];
	p->nhints = keep;
	free(v);
	free(pcs);
	return e;
}

void regions_diff_reset(struct model_proc *p)
{
	p->nhints = 0;
}

void regions_diff_free(struct model_proc *p)
{
	for (size_t k = 0; k < p->nrevs; k++)
		free(p->revs[k].path);
	free(p->revs);
	free(p->hints);
	p->revs = NULL;
	p->hints = NULL;
	p->nrevs = p->revs_cap = p->nhints = p->hints_cap = 0;
}

int regions_diff_copy(struct model_proc *dst, const struct model_proc *src)
{
	dst->revs = NULL;
	dst->hints = NULL;
	dst->nrevs = dst->revs_cap = dst->nhints = dst->hints_cap = 0;
	if (src->nrevs && !(dst->revs = calloc(src->nrevs, sizeof(*dst->revs))))
		return -ENOMEM;
	dst->revs_cap = src->nrevs;
	for (size_t k = 0; k < src->nrevs; k++) {
		dst->revs[k] = src->revs[k];
		dst->revs[k].path = NULL;
		dst->nrevs++;
		if (src->revs[k].path && !(dst->revs[k].path = strdup(src->revs[k].path)))
			return -ENOMEM;
	}
	if (src->nhints && !(dst->hints = malloc(src->nhints * sizeof(*dst->hints))))
		return -ENOMEM;
	if (src->nhints)
		memcpy(dst->hints, src->hints, src->nhints * sizeof(*dst->hints));
	dst->nhints = dst->hints_cap = src->nhints;
	return 0;
}
