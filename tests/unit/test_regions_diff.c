/*
 * Unit tests of regions_diff on hand-made scans: the kernel merging a new
 * mapping with its neighbour, a hole punched in a region, a mapping
 * replaced by another file, mprotect to no access, the main stack growing,
 * forkscope's own memory changing kind, what happens to hints after a
 * scan, and scans no kernel would write (overlapping, unsorted, empty).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "regions_diff.h"
#include "synth.h"

#define RW (FSK_P_READ | FSK_P_WRITE)

struct scan_spec {
	uint64_t start, end;
	uint16_t kind, perms;
	uint64_t inode;
};

static void scan_set(struct model_scan *s, const struct scan_spec *v, size_t n, uint64_t ts)
{
	memset(s, 0, sizeof(*s));
	s->ts_ns = ts;
	s->v = calloc(n ? n : 1, sizeof(*s->v));
	s->n = s->cap = n;
	for (size_t i = 0; i < n; i++) {
		s->v[i].r.start = v[i].start;
		s->v[i].r.end = v[i].end;
		s->v[i].r.kind = v[i].kind;
		s->v[i].r.perms = v[i].perms;
		s->v[i].r.inode = v[i].inode;
		s->v[i].path = v[i].inode ? strdup("/lib/f.so") : NULL;
	}
}

static void scan_drop(struct model_scan *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].path);
	free(s->v);
}

static void hint_map(struct model_proc *p, uint64_t ts, uint16_t op, uint64_t addr, uint64_t len,
		     uint64_t result, int prot)
{
	struct fsk_map m = { .addr = addr, .len = len, .result = result, .prot = prot, .op = op,
			     .fd = -1 };
	struct model_event ev = { .ts_ns = ts, .kind = FSK_REC_MAP,
				  .payload = (const unsigned char *)&m, .len = sizeof(m) };

	regions_diff_hint(p, &ev);
}

/* Runs one diff; returns p with its events (the caller frees). */
static struct model_proc *diff(const struct scan_spec *a, size_t na, const struct scan_spec *b,
			       size_t nb, struct model_proc *p)
{
	struct model_scan sa, sb;

	scan_set(&sa, a, na, 100);
	scan_set(&sb, b, nb, 200);
	regions_diff_scan(p, &sa, &sb);
	scan_drop(&sa);
	scan_drop(&sb);
	return p;
}

static int rev_is(const struct model_rev *e, unsigned what, unsigned cause, uint64_t start,
		  uint64_t end, uint64_t old_start, uint64_t old_end)
{
	return e->what == what && e->cause == cause && e->start == start && e->end == end &&
	       e->old_start == old_start && e->old_end == old_end;
}

static void test_merged_mmap(void)
{
	struct scan_spec a[] = { { 0x10000, 0x20000, FSK_RK_ANON, RW, 0 } };
	struct scan_spec b[] = { { 0x10000, 0x30000, FSK_RK_ANON, RW, 0 } };
	struct model_proc p = { 0 }, q = { 0 };

	hint_map(&p, 150, FSK_MAP_MMAP, 0, 0x10000, 0x20000, PROT_READ | PROT_WRITE);
	diff(a, 1, b, 1, &p);
	synth_check("merged_mmap_is_added", p.nrevs == 1 &&
		    rev_is(&p.revs[0], MODEL_REV_ADDED, MODEL_RC_MMAP, 0x20000, 0x30000, 0, 0) &&
		    p.revs[0].t_ns == 150 && p.revs[0].scan_ns == 200 && p.nhints == 0,
		    "%zu events, first what %u cause %u", p.nrevs, p.nrevs ? p.revs[0].what : 0,
		    p.nrevs ? p.revs[0].cause : 0);
	diff(a, 1, b, 1, &q);
	synth_check("unexplained_growth", q.nrevs == 1 &&
		    rev_is(&q.revs[0], MODEL_REV_GROWN, MODEL_RC_UNKNOWN, 0x10000, 0x30000, 0x10000,
			   0x20000), "%zu events", q.nrevs);
	regions_diff_free(&p);
	regions_diff_free(&q);
}

static void test_hole(void)
{
	struct scan_spec a[] = { { 0x10000, 0x40000, FSK_RK_ANON, RW, 0 } };
	struct scan_spec b[] = { { 0x10000, 0x20000, FSK_RK_ANON, RW, 0 },
				 { 0x30000, 0x40000, FSK_RK_ANON, RW, 0 } };
	struct model_proc p = { 0 };

	hint_map(&p, 150, FSK_MAP_MUNMAP, 0x20000, 0x10000, 0, 0);
	diff(a, 1, b, 2, &p);
	synth_check("hole_is_removed", p.nrevs == 1 &&
		    rev_is(&p.revs[0], MODEL_REV_REMOVED, MODEL_RC_MUNMAP, 0x20000, 0x30000, 0, 0),
		    "%zu events", p.nrevs);
	regions_diff_free(&p);
}

static void test_replaced_and_prot_none(void)
{
	struct scan_spec a[] = { { 0x10000, 0x20000, FSK_RK_FILE, FSK_P_READ, 7 },
				 { 0x50000, 0x60000, FSK_RK_ANON, RW, 0 } };
	struct scan_spec b[] = { { 0x10000, 0x20000, FSK_RK_FILE, FSK_P_READ, 8 } };
	struct model_proc p = { 0 };

	hint_map(&p, 150, FSK_MAP_MPROTECT, 0x50000, 0x10000, 0, PROT_NONE);
	diff(a, 2, b, 1, &p);
	synth_check("replaced_file", p.nrevs == 3 && p.revs[1].what == MODEL_REV_REMOVED &&
		    p.revs[2].what == MODEL_REV_ADDED && p.revs[2].path &&
		    !strcmp(p.revs[2].path, "/lib/f.so"), "%zu events", p.nrevs);
	synth_check("prot_none", p.nrevs == 3 && p.revs[0].what == MODEL_REV_PROT &&
		    p.revs[0].cause == MODEL_RC_MPROTECT && p.revs[0].perms == 0 &&
		    p.revs[0].old_perms == RW && p.revs[0].start == 0x50000,
		    "first event what %u", p.nrevs ? p.revs[0].what : 0);
	regions_diff_free(&p);
}

static void test_stack_and_own(void)
{
	struct scan_spec a[] = { { 0x20000, 0x30000, FSK_RK_FORKSCOPE, RW, 0 },
				 { 0x40000, 0x50000, FSK_RK_ANON, RW, 0 },
				 { 0x97000, 0x99000, FSK_RK_STACK, RW, 0 } };
	struct scan_spec b[] = { { 0x20000, 0x30000, FSK_RK_ANON, RW, 0 },
				 { 0x40000, 0x50000, FSK_RK_FORKSCOPE, RW, 0 },
				 { 0x95000, 0x99000, FSK_RK_STACK, RW, 0 } };
	struct model_proc p = { 0 };

	hint_map(&p, 50, FSK_MAP_MMAP, 0, 0x1000, 0x90000, PROT_READ); /* before the scan: stale */
	hint_map(&p, 250, FSK_MAP_MMAP, 0, 0x1000, 0xa0000, PROT_READ); /* after it: kept */
	diff(a, 3, b, 3, &p);
	synth_check("stack_growth", p.nrevs == 1 &&
		    rev_is(&p.revs[0], MODEL_REV_GROWN, MODEL_RC_STACK, 0x95000, 0x99000, 0x97000,
			   0x99000), "%zu events (forkscope's memory must not count)", p.nrevs);
	synth_check("hints_kept_after_scan", p.nhints == 1 && p.hints[0].ts == 250,
		    "%zu hints", p.nhints);
	regions_diff_free(&p);
}

/* Nothing a kernel writes, but a damaged trace may: no crash, no hang. */
static void test_hostile(void)
{
	struct scan_spec a[] = { { 0x50000, 0x10000, FSK_RK_ANON, RW, 0 },
				 { 0x10000, 0x90000, FSK_RK_ANON, RW, 0 },
				 { 0x20000, 0x30000, FSK_RK_LIB, FSK_P_READ, 3 },
				 { 0, 0, FSK_RK_ANON, 0, 0 },
				 { 0xfffffffffffff000ull, 0xffffffffffffffffull, FSK_RK_ANON, RW, 0 } };
	struct scan_spec b[] = { { 0x30000, 0x40000, FSK_RK_ANON, FSK_P_READ, 0 },
				 { 0x8000, 0x38000, FSK_RK_ANON, RW, 0 } };
	struct model_proc p = { 0 };

	hint_map(&p, 150, FSK_MAP_MREMAP, 0x10000, ~0ull, 0x30000, 0);
	hint_map(&p, 150, FSK_MAP_MMAP, 0, ~0ull, ~0ull - 5, 0);
	diff(a, 5, b, 2, &p);
	diff(b, 2, a, 5, &p);
	diff(a, 0, b, 2, &p);
	synth_check("hostile_scans", p.nrevs < 64, "%zu events", p.nrevs);
	regions_diff_free(&p);
}

int main(void)
{
	test_merged_mmap();
	test_hole();
	test_replaced_and_prot_none();
	test_stack_and_own();
	test_hostile();
	return synth_failed;
}
