/*
 * Unit tests of the viewer's timeline on a trace from tests/progs/gen_trace
 * (1,000 processes, 500,000 events): seeking anywhere, forward or back,
 * through the snapshots gives the same model as replaying every event
 * from the start; COW bursts are found exactly where the generator put
 * them. The generator is $FSK_PROGS/gen_trace (build/progs by default).
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "describe.h"
#include "synth.h"
#include "timeline.h"

#define NPROCS 1000
#define NEVENTS 500000
#define NSEEKS 48

struct burst {
	uint32_t pid;
	uint64_t ts;
	unsigned unshared;      /* after a scan; 0 for the fault cluster */
	int found;
};

static struct burst *bursts;
static size_t nbursts;

static uint64_t fnv(uint64_t h, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= 1099511628211ull;
	}
	return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
	while (s && *s)
		h = fnv(h, (unsigned char)*s++);
	return fnv(h, 0);
}

/* Everything a pane shows of the model, hashed. */
static uint64_t digest(const struct model *m)
{
	uint64_t h = fnv(14695981039346656037ull, m->n);

	h = fnv(h, m->nroots);
	h = fnv(h, m->events);
	for (size_t i = 0; i < m->n; i++) {
		const struct model_proc *p = m->procs[i];
		h = fnv(h, p->pid);
		h = fnv(h, p->ppid);
		h = fnv(h, p->parent);
		h = fnv(h, p->nchildren);
		h = fnv_str(h, describe_state(m, p));
		h = fnv(h, (uint64_t)p->exit_kind << 32 | (uint32_t)p->exit_value);
		h = fnv(h, (uint64_t)p->exit_core << 1 | (uint64_t)p->orphaned);
		h = fnv(h, p->has_end ? p->end_ns : 0);
		h = fnv(h, p->reaped ? p->reap_ts : 0);
		h = fnv(h, p->heap.live_bytes);
		h = fnv(h, p->heap.calls);
		h = fnv(h, p->heap.frees);
		h = fnv(h, p->heap.live.n);
		h = fnv(h, p->nimages);
		h = fnv(h, p->cur.n);
		h = fnv(h, p->cur.id);
		h = fnv(h, p->unshared_pages);
		h = fnv(h, p->faults);
		for (size_t k = 0; k < p->cur.n; k++)
			h = fnv(h, (uint64_t)p->cur.v[k].r.resident << 32 | p->cur.v[k].r.shared);
	}
	return h;
}

static void generate(const char *dir)
{
	char cmd[1400], line[256];
	const char *progs = getenv("FSK_PROGS");
	FILE *f;

	snprintf(cmd, sizeof(cmd), "'%s/gen_trace' '%s' %d %d", progs ? progs : "build/progs", dir,
		 NPROCS, NEVENTS);
	f = popen(cmd, "r");
	if (!f) {
		perror("gen_trace");
		exit(99);
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned pid, un;
		unsigned long long fts, sts;
		if (sscanf(line, "@ burst pid=%u faults_ts=%llu scan_ts=%llu unshared=%u", &pid, &fts,
			   &sts, &un) != 4)
			continue;
		bursts = realloc(bursts, (nbursts + 2) * sizeof(*bursts));
		if (!bursts)
			exit(99);
		if (fts)
			bursts[nbursts++] = (struct burst){ pid, fts, 0, 0 };
		bursts[nbursts++] = (struct burst){ pid, sts, un, 0 };
	}
	if (pclose(f) != 0) {
		fprintf(stderr, "%s failed\n", cmd);
		exit(99);
	}
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static size_t pick(size_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (size_t)(rng % (n + 1));
}

static int pos_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* Seeks to NSEEKS positions in random order (so, often backwards) and
 * compares each model with a replay from the start, finished the same
 * way. */
static void test_seek(struct timeline *t)
{
	size_t pos[NSEEKS], order[NSEEKS], n = timeline_len(t), bad = 0, back = 0;
	uint64_t want[NSEEKS], got[NSEEKS];
	struct model ref;

	for (size_t i = 0; i < NSEEKS; i++)
		pos[i] = i == 0 ? 0 : i == 1 ? n : i == 2 ? n - 1 : pick(n);
	qsort(pos, NSEEKS, sizeof(*pos), pos_cmp);
	model_init(&ref);
	for (size_t i = 0, applied = 0; i < NSEEKS; i++) {
		while (applied < pos[i])
			model_apply(&ref, timeline_event(t, applied++));
		ref.partial = pos[i] < n;
		model_finish(&ref, pos[i] == n);
		want[i] = digest(&ref);
	}
	model_free(&ref);
	for (size_t i = 0; i < NSEEKS; i++)
		order[i] = i;
	for (size_t i = NSEEKS; i-- > 1;) {
		size_t j = pick(i - 1), x = order[i];
		order[i] = order[j];
		order[j] = x;
	}
	for (size_t k = 0; k < NSEEKS; k++) {
		size_t i = order[k];
		back += k && pos[i] < t->pos;
		if (timeline_seek(t, pos[i]) < 0)
			exit(99);
		got[i] = digest(timeline_model(t));
		if (got[i] != want[i] && !bad++)
			printf("first difference at event %zu of %zu\n", pos[i], n);
	}
	synth_check("timeline.seek-equals-replay", !bad, "%zu of %d positions differ", bad, NSEEKS);
	synth_check("timeline.seeks-went-back", back >= NSEEKS / 4, "%zu backward seeks", back);
	synth_check("timeline.snapshots-used", t->nsnaps >= 8, "%zu snapshots", t->nsnaps);
	/* processes no event changed between two snapshots are one copy */
	size_t held = 0;
	for (size_t i = 0; i < t->nsnaps; i++)
		held += t->snaps[i].m.n;
	synth_check("timeline.snapshots-share", t->refs.n < held * 3 / 4, "%zu copies for %zu processes held",
		    t->refs.n, held);
}

/* Stepping back event by event across a multiple of the near-checkpoint
 * interval (4096) from the middle of a snapshot interval. */
static void test_step_back(struct timeline *t)
{
	enum { STEPS = 48 };
	size_t top = 4096 * 37 + STEPS / 2, bad = 0;
	uint64_t want[STEPS + 1];
	struct model ref;

	model_init(&ref);
	for (size_t applied = 0, k = STEPS + 1; k-- > 0;) {
		while (applied < top - k)
			model_apply(&ref, timeline_event(t, applied++));
		ref.partial = 1;
		model_finish(&ref, 0);
		want[k] = digest(&ref);
	}
	model_free(&ref);
	timeline_seek(t, top);
	for (size_t k = 0; k <= STEPS; k++) {
		if (timeline_seek(t, top - k) < 0)
			exit(99);
		bad += digest(timeline_model(t)) != want[k];
	}
	synth_check("timeline.step-back-equals-replay", !bad && t->has_near, "%zu of %d steps differ%s",
		    bad, STEPS + 1, t->has_near ? "" : ", no near checkpoint");
}

static void test_bursts(struct timeline *t)
{
	size_t p = 0, found = 0, stray = 0, wrong = 0, back = 0;

	for (;;) {
		size_t q = timeline_burst(t, p, 1);
		const struct model_event *e;
		int hit = 0;
		if (q == p)
			break;
		p = q;
		found++;
		e = timeline_event(t, p - 1);
		for (size_t i = 0; i < nbursts; i++)
			if (bursts[i].pid == describe_pid(e) && bursts[i].ts == e->ts_ns) {
				hit = 1;
				bursts[i].found++;
				if (bursts[i].unshared) {
					const struct model_proc *pr;
					timeline_seek(t, p);
					pr = model_find(timeline_model(t), bursts[i].pid);
					wrong += e->kind != FSK_REC_SCAN_END || !pr ||
						 pr->unshared_pages != bursts[i].unshared;
				} else {
					wrong += e->kind != FSK_REC_FAULT;
				}
			}
		stray += !hit;
	}
	for (size_t i = 0; i < nbursts; i++)
		wrong += bursts[i].found != 1;
	synth_check("timeline.bursts.count", found == nbursts && nbursts >= 3 * (NPROCS - 1),
		    "found %zu, generated %zu", found, nbursts);
	synth_check("timeline.bursts.where-generated", !stray && !wrong, "%zu stray, %zu wrong",
		    stray, wrong);
	/* and back from the end: the same stops in reverse */
	for (size_t q = timeline_len(t);;) {
		size_t r = timeline_burst(t, q, -1);
		if (r == q)
			break;
		q = r;
		back++;
	}
	synth_check("timeline.bursts.backwards", back == found, "%zu backwards, %zu forwards", back,
		    found);
}

/* A trace that arrives in two parts, the second with events older than
 * the first's newest (as a live directory grows): the poll merges them in
 * order and drops what it made stale; the end state is the one of reading
 * everything at once. */
static void test_growth(const char *dir)
{
	char a[700], b[700], from[1400], to[1400];
	struct timeline t, whole;
	struct dirent *de;
	size_t moved = 0, unsorted = 0;
	DIR *d;

	snprintf(a, sizeof(a), "%s/growth", dir);
	snprintf(b, sizeof(b), "%s/growth-later", dir);
	generate(a);
	mkdir(b, 0700);
	d = opendir(a);
	while (d && (de = readdir(d)))
		if (strstr(de->d_name, ".fst") && atoi(de->d_name) % 2) {
			snprintf(from, sizeof(from), "%s/%s", a, de->d_name);
			snprintf(to, sizeof(to), "%s/%s", b, de->d_name);
			moved += rename(from, to) == 0;
		}
	if (d)
		closedir(d);
	if (timeline_open(&t, a, 0) < 0 || timeline_seek(&t, timeline_len(&t)) < 0)
		exit(99);
	d = opendir(b);
	while (d && (de = readdir(d)))
		if (strstr(de->d_name, ".fst")) {
			snprintf(from, sizeof(from), "%s/%s", b, de->d_name);
			snprintf(to, sizeof(to), "%s/%s", a, de->d_name);
			rename(from, to);
		}
	if (d)
		closedir(d);
	if (timeline_poll(&t, 1) <= 0 || timeline_seek(&t, timeline_len(&t)) < 0)
		exit(99);
	for (size_t i = 1; i < timeline_len(&t); i++)
		unsorted += model_event_cmp(timeline_event(&t, i - 1), timeline_event(&t, i)) > 0;
	if (timeline_open(&whole, a, 1) < 0 || timeline_seek(&whole, timeline_len(&whole)) < 0)
		exit(99);
	synth_check("timeline.growth.merged-in-order", moved > 100 && !unsorted &&
		    timeline_len(&t) == timeline_len(&whole), "%zu moved, %zu out of order, %zu vs %zu events",
		    moved, unsorted, timeline_len(&t), timeline_len(&whole));
	synth_check("timeline.growth.same-model", digest(timeline_model(&t)) == digest(timeline_model(&whole)),
		    "the model after growing differs from the model read at once");
	timeline_free(&t);
	timeline_free(&whole);
}

int main(void)
{
	char *dir = synth_dir(), sub[600];
	struct timeline t;

	snprintf(sub, sizeof(sub), "%s/trace", dir);
	generate(sub);
	if (timeline_open(&t, sub, 1) < 0 || t.load.nmsgs) {
		synth_check("timeline.open", 0, "cannot open the generated trace (%zu messages)",
			    t.load.nmsgs);
		return 1;
	}
	synth_check("timeline.open", timeline_len(&t) > NEVENTS - NPROCS - 10 &&
		    timeline_len(&t) < NEVENTS + NPROCS, "%zu events", timeline_len(&t));
	if (timeline_seek(&t, timeline_len(&t)) < 0)
		return 99;
	synth_check("timeline.all-processes", timeline_model(&t)->n == NPROCS, "%zu processes",
		    timeline_model(&t)->n);
	test_seek(&t);
	test_step_back(&t);
	test_bursts(&t);
	timeline_free(&t);
	nbursts = 0;
	test_growth(dir);
	free(bursts);
	synth_rmdir(dir);
	free(dir);
	return synth_failed;
}
