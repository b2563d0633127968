/*
 * Unit tests of stack ids across streams (trace.h, "Stack ids") on a
 * synthetic trace:
 *
 *   10.0  starts a stack group: ids 1 (0x1100) and 2 (0x1200)
 *   11.0  fork child of 10.0 in its group: defines 3 (0x1300)
 *   12.0  fork child of 10.0 in its group, forked later: defines 4 (0x1400)
 *   13.0  fork child of 10.0 with a table of its own: defines 1 (0x1900)
 *   10.1  pid 10 after an exec: a new group, defines 2 (0x2200)
 *   14.0  fork child of 10.1 in its group
 *   15.0  claims to be in a group, but no stream of its ppid ran then
 *
 * Each stream's lookups must give exactly the stack of its group, or none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "stacks.h"
#include "synth.h"

static char *const argv_p[] = { "p", NULL };

static void header(struct writer *w, uint32_t pid, uint32_t ppid, uint32_t seq, uint64_t start,
		   uint64_t parent_start, uint32_t table)
{
	struct fsk_header h = {
		.pid = pid, .ppid = ppid, .seq = seq, .page_size = 4096, .start_ns = start,
		.clock_id = 1, .parent_start_ns = parent_start, .stack_table = table,
	};
	writer_init(w);
	writer_header(w, &h, "/bin/p", argv_p);
}

static void stack(struct writer *w, uint32_t pid, uint64_t ts, uint32_t id, uint64_t ip)
{
	struct fsk_stack s = { .id = id, .depth = 1 };
	writer_begin(w, FSK_REC_STACK, pid, ts);
	writer_put(w, &s, sizeof(s));
	writer_put(w, &ip, 8);
	writer_end(w);
}

/* The streams of the comment above: at most one STACK record each. */
static const struct {
	uint32_t pid, ppid, seq;
	uint64_t start, parent_start;
	uint32_t table, id;
	uint64_t ip;
} streams[] = {
	{ 10, 1, 0, 1000, 0, 0, 1, 0x1100 },
	{ 11, 10, 0, 1300, 1200, 1, 3, 0x1300 },
	{ 12, 10, 0, 1500, 1400, 1, 4, 0x1400 },
	{ 13, 10, 0, 1600, 1550, 0, 1, 0x1900 },
	{ 10, 1, 1, 2000, 0, 0, 2, 0x2200 },
	{ 14, 10, 0, 2200, 2100, 1, 0, 0 },
	{ 15, 99, 0, 2300, 2250, 1, 0, 0 },
};

static void build_trace(const char *dir)
{
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		struct writer w;
		header(&w, streams[i].pid, streams[i].ppid, streams[i].seq, streams[i].start,
		       streams[i].parent_start, streams[i].table);
		if (streams[i].id)
			stack(&w, streams[i].pid, streams[i].start + 10, streams[i].id, streams[i].ip);
		if (streams[i].pid == 10 && !streams[i].seq) /* a second one */
			stack(&w, 10, 1110, 2, 0x1200);
		synth_save(dir, streams[i].pid, streams[i].seq, &w, -1);
		writer_free(&w);
	}
}

static const struct reader_stream *stream_of(const struct load *l, uint32_t pid, uint32_t seq)
{
	for (size_t i = 0; i < l->dir.n; i++)
		if (l->dir.streams[i]->pid == pid && l->dir.streams[i]->seq == seq)
			return l->dir.streams[i];
	return NULL;
}

/* want: the stack's one address, 0 for none */
static void expect(const struct load *l, const struct stacks *st, uint32_t pid, uint32_t seq,
		   uint32_t id, uint64_t want)
{
	const struct reader_stream *s = stream_of(l, pid, seq);
	size_t k = s ? stacks_get(st, s, id) : STACKS_NONE;
	uint64_t got = k == STACKS_NONE ? 0 : stacks_ip(st, k, 0);
	char name[64];

	snprintf(name, sizeof(name), "stacks.%u.%u.id%u", pid, seq, id);
	synth_check(name, s && got == want, "want 0x%llx, got 0x%llx", (unsigned long long)want,
		    (unsigned long long)got);
}

int main(void)
{
	char *dir = synth_dir();
	struct load l;
	struct stacks st;
	int e;

	build_trace(dir);
	e = load_dir(&l, dir);
	synth_check("load", e == 0 && l.nmsgs == 0, "load %d, %zu messages", e, l.nmsgs);
	synth_check("build", stacks_build(&st, &l) == 0, "stacks_build failed");
	/* the group of 10.0: its ids, its children's, its children's siblings' */
	expect(&l, &st, 10, 0, 1, 0x1100);
	expect(&l, &st, 10, 0, 3, 0x1300);
	expect(&l, &st, 10, 0, 4, 0x1400);
	expect(&l, &st, 11, 0, 1, 0x1100);
	expect(&l, &st, 11, 0, 2, 0x1200);
	expect(&l, &st, 11, 0, 4, 0x1400);
	expect(&l, &st, 12, 0, 3, 0x1300);
	expect(&l, &st, 12, 0, 5, 0);
	/* a table of its own: its id 1, nothing of the others' */
	expect(&l, &st, 13, 0, 1, 0x1900);
	expect(&l, &st, 13, 0, 2, 0);
	expect(&l, &st, 13, 0, 3, 0);
	expect(&l, &st, 10, 0, 0, 0);
	/* after the exec: a new group; its child is in it, not in the old one */
	expect(&l, &st, 10, 1, 2, 0x2200);
	expect(&l, &st, 10, 1, 1, 0);
	expect(&l, &st, 10, 1, 3, 0);
	expect(&l, &st, 14, 0, 2, 0x2200);
	expect(&l, &st, 14, 0, 1, 0);
	/* no parent stream: no group */
	expect(&l, &st, 15, 0, 1, 0);
	stacks_free(&st);
	load_free(&l);
	synth_rmdir(dir);
	free(dir);
	return synth_failed;
}
