/*
 * Unit tests of the model on a synthetic trace of a small process tree:
 *
 *   runner 100 spawns 101 (sh)
 *   101 forks 102 (execs /bin/echo, exits 3, reaped by 101 after a stop),
 *       forks 103 (outlives 101, killed by SIGKILL, reaped by the runner:
 *       an orphan and a zombie, stream cut without END),
 *       forks 104 (never writes a stream: untraced, killed by SIGSEGV+core),
 *       forks 105 (execs a static binary: an untraced image),
 *       then exits 0 and is reaped by the runner.
 *
 * Records of two threads of 101 are out of order in the file, as chunked
 * flushes leave them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "load.h"
#include "report.h"
#include "synth.h"

static char *const argv_sh[] = { "sh", "-c", "work", NULL };
static char *const argv_echo[] = { "echo", "hi", NULL };
static char *const argv_static[] = { "static-tool", NULL };
static char *const argv_runner[] = { "forkscope", "run", "--", "sh", "-c", "work", NULL };

static void build_trace(const char *dir)
{
	struct writer w;

	/* the runner */
	writer_init(&w);
	synth_header(&w, 100, 1, 0, 5, 0, FSK_HF_RUNNER, "/usr/bin/forkscope", argv_runner);
	synth_exec(&w, FSK_REC_SPAWN, 9, 101, 0, "sh", argv_sh);
	synth_wait(&w, 610, 101, FSK_WS_EXITED, 0, 0);
	synth_wait(&w, 900, 103, FSK_WS_SIGNALED, 9, 0);
	synth_end(&w, 910, FSK_END_EXIT);
	synth_save(dir, 100, 0, &w, -1);
	writer_free(&w);

	/* 101: thread 2's early alloc is flushed after thread 1's fork */
	writer_init(&w);
	synth_header(&w, 101, 100, 0, 10, 0, FSK_HF_MALLOC, "/bin/sh", argv_sh);
	synth_alloc(&w, 1, 12, 0xa1, 100, 0);
	synth_alloc(&w, 1, 13, 0xa2, 200, FSK_AF_MMAPPED);
	synth_free(&w, 14, 0xa1);
	synth_realloc(&w, 15, 0, 0xa3, 50);
	synth_fork(&w, 20, 102, FSK_SIDE_PARENT);
	synth_alloc(&w, 2, 11, 0xa4, 8, 0);
	synth_fork(&w, 30, 103, FSK_SIDE_PARENT);
	synth_fork(&w, 40, 104, FSK_SIDE_PARENT);
	synth_fork(&w, 45, 105, FSK_SIDE_PARENT);
	{
		struct fsk_wait st = { .pid_arg = 102, .result = 102, .fn = FSK_WAIT_WAITPID,
				       .state = FSK_WS_STOPPED, .value = 19 };
		writer_rec(&w, FSK_REC_WAIT, 1, 300, &st, sizeof(st));
	}
	synth_wait(&w, 500, 102, FSK_WS_EXITED, 3, 0);
	synth_wait(&w, 550, 104, FSK_WS_SIGNALED, 11, 1);
	synth_wait(&w, 560, 105, FSK_WS_EXITED, 0, 0);
	synth_exit(&w, 600, 0, FSK_EXIT_MAIN);
	synth_end(&w, 601, FSK_END_EXIT);
	synth_save(dir, 101, 0, &w, -1);
	writer_free(&w);

	/* 102: fork child, frees an inherited block, execs echo */
	writer_init(&w);
	synth_header(&w, 102, 101, 0, 21, 19, FSK_HF_MALLOC, "/bin/sh", argv_sh);
	synth_fork(&w, 22, 102, FSK_SIDE_CHILD);
	synth_free(&w, 50, 0xa2);
	synth_exec(&w, FSK_REC_EXEC, 100, 0, 0, "/bin/echo", argv_echo);
	synth_save(dir, 102, 0, &w, -1);
	writer_free(&w);
	writer_init(&w);
	synth_header(&w, 102, 101, 1, 110, 0, FSK_HF_MALLOC, "/bin/echo", argv_echo);
	synth_alloc(&w, 1, 200, 0xb1, 10, 0);
	synth_exit(&w, 400, 3, FSK_EXIT_EXIT);
	synth_end(&w, 450, FSK_END_EXIT); /* atexit handlers, the exit scan */
	synth_save(dir, 102, 1, &w, -1);
	writer_free(&w);

	/* 103: killed, no END; loses some records */
	writer_init(&w);
	synth_header(&w, 103, 101, 0, 31, 29, FSK_HF_MALLOC, "/bin/sh", argv_sh);
	{
		struct fsk_dropped d = { .records = 5 };
		writer_rec(&w, FSK_REC_DROPPED, 1, 700, &d, sizeof(d));
	}
	synth_alloc(&w, 1, 800, 0xc1, 1000, 0);
	synth_save(dir, 103, 0, &w, -1);
	writer_free(&w);

	/* 105: execs an untraceable binary */
	writer_init(&w);
	synth_header(&w, 105, 101, 0, 46, 44, 0, "/bin/sh", argv_sh);
	synth_exec(&w, FSK_REC_EXEC, 60, 0, FSK_EF_UNTRACEABLE, "/sbin/static-tool", argv_static);
	synth_save(dir, 105, 0, &w, -1);
	writer_free(&w);
}

static void test_tree(const struct model *m)
{
	struct model_proc *sh = model_find(m, 101), *p102 = model_find(m, 102);
	struct model_proc *p103 = model_find(m, 103), *p104 = model_find(m, 104);
	struct model_proc *p105 = model_find(m, 105);

	synth_check("runner_not_a_process", m->has_runner && m->runner_pid == 100 &&
		    !model_find(m, 100) && m->n == 5, "n %zu", m->n);
	if (!sh || !p102 || !p103 || !p104 || !p105) {
		synth_check("all_processes", 0, "a process is missing");
		return;
	}
	synth_check("tree", sh->ppid == 100 && sh->parent == MODEL_NONE && m->nroots == 1 &&
		    sh->nchildren == 4 && p102->ppid == 101 && p104->ppid == 101 &&
		    m->procs[sh->children[0]] == p102, "children %zu", sh->nchildren);
	synth_check("order_by_start", m->procs[m->order[0]] == sh &&
		    m->procs[m->order[1]] == p102, "wrong order");
	synth_check("exec_images", p102->nimages == 2 && !strcmp(p102->images[1].exe, "/bin/echo") &&
		    p102->images[0].state == MODEL_SS_EXEC && p102->images[1].state == MODEL_SS_CLEAN,
		    "images %zu", p102->nimages);
	synth_check("exit_from_wait", p102->exit_kind == MODEL_EXIT_EXITED && p102->exit_value == 3 &&
		    !strcmp(p102->exit_source, "wait") && p102->stopped == 1, "kind %d value %d",
		    p102->exit_kind, p102->exit_value);
	/* a zombie from its death (END at 450), not from exit() (400) */
	synth_check("zombie", p102->has_end && p102->end_ns == 400 && p102->reaped_by == 101 &&
		    p102->has_zombie && p102->dead_ns == 450 && p102->zombie_ns == 50 &&
		    !p102->orphaned, "end %" PRIu64 " dead %" PRIu64 " zombie %" PRIu64, p102->end_ns,
		    p102->dead_ns, p102->zombie_ns);
	synth_check("orphan", p103->orphaned && p103->reaped_by == 100 &&
		    p103->exit_kind == MODEL_EXIT_SIGNALED && p103->exit_value == 9 &&
		    !p103->has_end && !p103->has_zombie && model_image_last(p103)->last_ns == 800,
		    "orphaned %d has_end %d", p103->orphaned, p103->has_end);
	synth_check("cut_stream", p103->images[0].state == MODEL_SS_CUT && p103->dropped == 5,
		    "state %d dropped %" PRIu64, p103->images[0].state, p103->dropped);
	synth_check("untraced_fork_child", !p104->traced && p104->untraced_reason &&
		    p104->exit_kind == MODEL_EXIT_SIGNALED && p104->exit_value == 11 &&
		    p104->exit_core && !p104->has_end && !strcmp(p104->images[0].exe, "/bin/sh"),
		    "traced %d", p104->traced);
	synth_check("untraced_exec", p105->traced && p105->nimages == 2 &&
		    !p105->images[1].stream && p105->images[1].state == MODEL_SS_UNTRACED &&
		    !strcmp(model_image_last(p105)->exe, "/sbin/static-tool") &&
		    strstr(p105->images[1].untraced_reason, "setuid"), "images %zu", p105->nimages);
	synth_check("parent_exit", sh->exit_kind == MODEL_EXIT_EXITED && sh->exit_value == 0 &&
		    sh->reaped_by == 100 && !sh->orphaned && sh->zombie_ns == 9, "zombie %" PRIu64,
		    sh->zombie_ns);
}

/* The walk on a hand-built forest: 0 -> {1 -> {3}, 2}, and root 4.
 * Pre-order, depths, last-child flags, and skipping a subtree. */
static void test_walk(void)
{
	struct model_proc p[5];
	struct model_proc *pp[5];
	size_t c0[] = { 1, 2 }, c1[] = { 3 }, roots[] = { 0, 4 };
	struct model m = { 0 };
	struct model_walk w;
	size_t got[8], dep[8], lastf[8], n = 0, i, d;

	memset(p, 0, sizeof(p));
	for (int k = 0; k < 5; k++) {
		p[k].parent = MODEL_NONE;
		pp[k] = &p[k];
	}
	p[0].children = c0, p[0].nchildren = 2;
	p[1].children = c1, p[1].nchildren = 1, p[1].parent = 0;
	p[2].parent = 0;
	p[3].parent = 1;
	m.procs = pp, m.n = 5, m.roots = roots, m.nroots = 2;
	if (model_walk_begin(&w, &m) < 0)
		return synth_check("walk", 0, "no memory");
	while ((i = model_walk_next(&w, &d)) != MODEL_NONE && n < 8) {
		got[n] = i, dep[n] = d, lastf[n] = w.last[d];
		n++;
	}
	model_walk_end(&w);
	synth_check("walk_preorder", n == 5 && got[0] == 0 && got[1] == 1 && got[2] == 3 &&
		    got[3] == 2 && got[4] == 4 && dep[2] == 2 && dep[3] == 1 && dep[4] == 0,
		    "order or depth wrong (n=%zu)", n);
	synth_check("walk_last_child", n == 5 && !lastf[1] && lastf[2] && lastf[3],
		    "last-child flags wrong");
	n = 0;
	model_walk_begin(&w, &m);
	while ((i = model_walk_next(&w, &d)) != MODEL_NONE && n < 8) {
		got[n++] = i;
		if (i == 1)
			model_walk_skip(&w);
	}
	model_walk_end(&w);
	synth_check("walk_skip", n == 4 && got[1] == 1 && got[2] == 2 && got[3] == 4,
		    "a skipped subtree was walked (n=%zu)", n);
}

static void test_heap(const struct model *m)
{
	const struct heap *h = &model_find(m, 101)->heap;
	const struct heap *c = &model_find(m, 102)->heap;

	synth_check("malloc_counts", h->calls == 4 && h->frees == 1 && h->bytes == 358 &&
		    h->mmap_served == 1 && h->brk_served == 3, "calls %" PRIu64 " frees %" PRIu64
		    " bytes %" PRIu64, h->calls, h->frees, h->bytes);
	synth_check("malloc_peak_and_leaks", h->peak_live_bytes == 308 && h->ended &&
		    h->exit_bytes == 258 && h->exit_blocks == 3, "peak %" PRIu64 " live %" PRIu64
		    "/%" PRIu64, h->peak_live_bytes, h->exit_bytes, h->exit_blocks);
	synth_check("malloc_fork_inherit", c->inherited_blocks == 3 && c->inherited_bytes == 258 &&
		    c->frees == 1 && c->unknown_frees == 0, "inherited %" PRIu64, c->inherited_blocks);
	synth_check("malloc_after_exec", c->calls == 1 && c->exit_bytes == 10 && c->exit_blocks == 1,
		    "calls %" PRIu64 " live %" PRIu64, c->calls, c->exit_bytes);
}

static void test_json(const struct load *l, const char *dir)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	report_json(f, l, dir);
	fclose(f);
	synth_check("json_keys", strstr(buf, "\"forkscope\": 1") &&
		    strstr(buf, "\"runner\": {\"pid\": 100") &&
		    strstr(buf, "\"exit\": {\"kind\": \"signaled\", \"signal\": 11, \"core\": true}") &&
		    strstr(buf, "\"reaped_by\": 100") && strstr(buf, "\"zombie_ns\": null") &&
		    strstr(buf, "\"live_at_exit_blocks\": 3") && strstr(buf, "\"regions\": []"),
		    "%s", buf);
	free(buf);
}

/* Regions: the latest complete scan wins; an unfinished one is ignored. */
static void test_regions(const char *dir)
{
	static char *const argv1[] = { "a", NULL };
	struct fsk_scan sc = { .id = 1, .trigger = FSK_SCAN_START };
	struct fsk_scan_end se = { .id = 1, .regions = 2 };
	struct fsk_region rg = { .start = 0x1000, .end = 0x3000, .kind = FSK_RK_HEAP,
				 .perms = FSK_P_READ | FSK_P_WRITE, .resident = 2,
				 .shared_at_fork = 2, .unshared = 1, .cow_faults = 1 };
	struct writer w;
	struct load l;
	const struct model_proc *p;

	writer_init(&w);
	synth_header(&w, 200, 1, 0, 10, 0, 0, "/a", argv1);
	writer_rec(&w, FSK_REC_SCAN, 1, 20, &sc, sizeof(sc));
	for (int i = 0; i < 2; i++) {
		writer_begin(&w, FSK_REC_REGION, 1, 21);
		writer_put(&w, &rg, sizeof(rg));
		writer_str(&w, i ? "/lib/x.so" : "");
		writer_end(&w);
	}
	writer_rec(&w, FSK_REC_SCAN_END, 1, 22, &se, sizeof(se));
	sc.id = se.id = 2;
	writer_rec(&w, FSK_REC_SCAN, 1, 30, &sc, sizeof(sc));
	writer_begin(&w, FSK_REC_REGION, 1, 31);
	writer_put(&w, &rg, sizeof(rg));
	writer_str(&w, "");
	writer_end(&w);
	synth_end(&w, 40, FSK_END_EXIT);
	synth_save(dir, 200, 0, &w, -1);
	writer_free(&w);
	synth_check("regions_load", load_dir(&l, dir) == 0, "load failed");
	p = model_find(&l.model, 200);
	synth_check("regions_latest_complete", p && p->cur.n == 2 && !p->cur.v[0].path &&
		    !strcmp(p->cur.v[1].path, "/lib/x.so") && p->shared_at_fork_pages == 4 &&
		    p->unshared_pages == 2 && p->cow_faults == 2, "regions %zu", p ? p->cur.n : 0);
	synth_check("no_exit_info", p && p->exit_kind == MODEL_EXIT_UNKNOWN && p->has_end &&
		    p->end_ns == 40 && !p->reaped, "exit kind %d", p ? (int)p->exit_kind : -1);
	load_free(&l);
}

/* A pid reused after its first owner was reaped is a second process. */
static void test_pid_reuse(const char *dir)
{
	static char *const argv1[] = { "p", NULL };
	struct writer w;
	struct load l;
	size_t n = 0;

	writer_init(&w);
	synth_header(&w, 300, 1, 0, 10, 0, 0, "/p", argv1);
	synth_fork(&w, 11, 301, FSK_SIDE_PARENT);
	synth_wait(&w, 20, 301, FSK_WS_EXITED, 1, 0);
	synth_fork(&w, 30, 301, FSK_SIDE_PARENT);
	synth_wait(&w, 40, 301, FSK_WS_EXITED, 2, 0);
	synth_end(&w, 50, FSK_END_EXIT);
	synth_save(dir, 300, 0, &w, -1);
	writer_free(&w);
	load_dir(&l, dir);
	for (size_t i = 0; i < l.model.n; i++)
		n += l.model.procs[i]->pid == 301;
	synth_check("pid_reuse", n == 2 && model_find(&l.model, 301)->exit_value == 2,
		    "%zu processes with pid 301", n);
	load_free(&l);
}

/* A sampled stream (trace.h): each record stands for 1/p calls and size/p
 * bytes, p = 1 - exp(-size/N). With N = 1000: size 1000 -> 1.582 calls,
 * 1582 bytes; size 2000 -> 1.157 calls, 2313 bytes. */
static void test_sampled(const char *dir)
{
	static char *const argv1[] = { "hot", NULL };
	struct fsk_sample sm = { .mean_bytes = 1000 };
	struct fsk_free rel = { .addr = 0x2000, .fn = FSK_FN_REALLOC };
	struct writer w;
	struct load l;

	writer_init(&w);
	synth_header(&w, 400, 1, 0, 10, 0, FSK_HF_MALLOC | FSK_HF_SAMPLED, "/hot", argv1);
	writer_rec(&w, FSK_REC_SAMPLE, 400, 10, &sm, sizeof(sm));
	synth_alloc(&w, 400, 11, 0x1000, 1000, 0);
	synth_alloc(&w, 400, 12, 0x2000, 1000, 0);
	synth_free(&w, 13, 0x1000);
	/* realloc of a block that was not recorded: nothing to remove */
	synth_realloc(&w, 14, 0x3000, 0x4000, 2000);
	/* a realloc whose new block was not recorded released 0x2000 */
	writer_rec(&w, FSK_REC_FREE, 400, 15, &rel, sizeof(rel));
	synth_end(&w, 20, FSK_END_EXIT);
	synth_save(dir, 400, 0, &w, -1);
	writer_free(&w);
	load_dir(&l, dir);
	const struct model_proc *p = model_find(&l.model, 400);
	const struct heap *h = p ? &p->heap : NULL;
	synth_check("sampled_weights", h && h->sample_bytes == 1000 && h->calls == 3 &&
		    h->bytes == 3164 && h->frees == 2 && h->reallocs == 1 &&
		    h->unknown_frees == 0 && h->peak_live_bytes == 3895 &&
		    h->exit_bytes == 2313 && h->exit_blocks == 1,
		    "calls %" PRIu64 " bytes %" PRIu64 " frees %" PRIu64 " reallocs %" PRIu64
		    " unknown %" PRIu64 " peak %" PRIu64 " exit %" PRIu64 "/%" PRIu64,
		    h ? h->calls : 0, h ? h->bytes : 0, h ? h->frees : 0, h ? h->reallocs : 0,
		    h ? h->unknown_frees : 0, h ? h->peak_live_bytes : 0, h ? h->exit_bytes : 0,
		    h ? h->exit_blocks : 0);
	load_free(&l);
}

/* Under another malloc than glibc's (FSK_HF_MALLOC_OTHER) no record says
 * heap or mmap: every call counts as served by that malloc. */
static void test_heap_other(void)
{
	struct heap h;
	memset(&h, 0, sizeof(h));
	h.other_malloc = 1;
	heap_alloc(&h, 0x1000, 10, 0);
	heap_alloc(&h, 0x2000, 20, FSK_AF_MMAPPED);
	heap_free(&h, 0x1000);
	synth_check("malloc_other_served", h.calls == 2 && h.other_served == 2 && !h.mmap_served &&
		    !h.brk_served && h.live_bytes == 20, "other %" PRIu64 " mmap %" PRIu64 " brk %" PRIu64,
		    h.other_served, h.mmap_served, h.brk_served);
	heap_free_all(&h);
}

/* heap_round rounds as llround does (halves up), heap_weight's chance
 * comes from libm's expm1 (loaded on first use): 1 - exp(-x) computed
 * plainly is off by ~5e-6 in 1/p for a 1-byte call under a 512 KiB mean. */
static void test_round_weight(void)
{
	static const struct {
		double x;
		uint64_t want;
	} r[] = { { 0, 0 }, { -3, 0 }, { 0.49999999999999994, 0 }, { 0.5, 1 }, { 2.4999999999999996, 2 },
		  { 2.5, 3 }, { 4503599627370497.0, 4503599627370497ull }, { 1e30, UINT64_MAX } };
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		synth_check("heap_round", heap_round(r[i].x) == r[i].want, "%.17g: %" PRIu64 ", want %" PRIu64,
			    r[i].x, heap_round(r[i].x), r[i].want);
	double c1, c2, c3;
	uint64_t w1 = heap_weight(1000, 1000, &c1), w2 = heap_weight(524288, 1, &c2),
		 w3 = heap_weight(524288, 16777216, &c3);
	synth_check("heap_weight", w1 == 1582 && c1 > 1.5819767068693 && c1 < 1.5819767068694 && w2 == 524289 &&
		    c2 > 524288.500000158 && c2 < 524288.500000160 && w3 == 16777216 && c3 >= 1 && c3 < 1.000000001,
		    "%" PRIu64 " %.17g, %" PRIu64 " %.17g, %" PRIu64 " %.17g", w1, c1, w2, c2, w3, c3);
}

int main(void)
{
	char *dir = synth_dir(), sub[600];
	struct load l;
	int e;

	build_trace(dir);
	e = load_dir(&l, dir);
	synth_check("load", e == 0 && l.nmsgs == 0, "load %d, %zu messages",
		    e, l.nmsgs);
	test_tree(&l.model);
	test_walk();
	test_heap(&l.model);
	test_heap_other();
	test_round_weight();
	test_json(&l, dir);
	load_free(&l);
	snprintf(sub, sizeof(sub), "%s/regions", dir);
	mkdir(sub, 0700);
	test_regions(sub);
	snprintf(sub, sizeof(sub), "%s/reuse", dir);
	mkdir(sub, 0700);
	test_pid_reuse(sub);
	snprintf(sub, sizeof(sub), "%s/sampled", dir);
	mkdir(sub, 0700);
	test_sampled(sub);
	synth_rmdir(dir);
	free(dir);
	return synth_failed;
}
