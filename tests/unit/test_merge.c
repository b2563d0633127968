/*
 * Unit tests of the streamed load (viewer/merge.c): the events a finished
 * trace replays from its files must be exactly those of the in-memory
 * sort (FORKSCOPE_LOAD_ALL), in the same order, with the same messages,
 * for interleaved thread blocks, ties, context changes, damage and random
 * streams.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "load.h"
#include "report.h"
#include "synth.h"

static char *const argv_x[] = { "x", NULL };

/* What identifies one replayed event. */
struct sig {
	uint64_t key, order, ts, off, sum;
	uint32_t kind, tid, pid, len;
};

struct sigs {
	struct sig *v;
	size_t n, cap;
};

static int sigs_add(void *ctx, const struct model_event *ev)
{
	struct sigs *s = ctx;
	struct sig *g;

	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (!s->v)
			return -ENOMEM;
	}
	g = &s->v[s->n++];
	memset(g, 0, sizeof(*g));
	g->key = ev->key_ns;
	g->order = ev->order;
	g->ts = ev->ts_ns;
	g->off = ev->off;
	g->kind = ev->kind;
	g->tid = ev->tid;
	g->pid = ev->stream->pid;
	g->len = ev->len;
	for (uint32_t i = 0; i < ev->len; i++)
		g->sum = g->sum * 131 + ev->payload[i];
	return 0;
}

/* One load of dir: its replayed events, report --json and text, the
 * messages, load_dir's result and the number of runs (streamed only). */
struct loaded {
	struct sigs ev;
	char *json, *msgs;
	size_t jlen, mlen;
	int rc, replay;
	size_t runs;
};

static void load_one(const char *dir, int all, struct loaded *o)
{
	struct load l;
	FILE *j, *m;

	memset(o, 0, sizeof(*o));
	if (all)
		setenv("FORKSCOPE_LOAD_ALL", "1", 1);
	else
		unsetenv("FORKSCOPE_LOAD_ALL");
	j = open_memstream(&o->json, &o->jlen);
	m = open_memstream(&o->msgs, &o->mlen);
	o->rc = load_dir(&l, dir);
	if (o->rc >= 0) {
		o->replay = load_replay(&l, sigs_add, &o->ev);
		report_json(j, &l, dir);
		report_text(j, &l, dir);
		report_space(j, &l);
	}
	report_messages(m, &l);
	o->runs = l.merge.n;
	load_free(&l);
	fclose(j);
	fclose(m);
	unsetenv("FORKSCOPE_LOAD_ALL");
}

static void loaded_free(struct loaded *o)
{
	free(o->ev.v);
	free(o->json);
	free(o->msgs);
}

/* Both paths agree on everything: returns 1, else says where. */
static int same(const struct loaded *a, const struct loaded *b, char *why, size_t n)
{
	if (a->rc != b->rc || a->replay != b->replay) {
		snprintf(why, n, "rc %d/%d replay %d/%d", a->rc, b->rc, a->replay, b->replay);
		return 0;
	}
	if (a->ev.n != b->ev.n) {
		snprintf(why, n, "%zu events in memory, %zu streamed", a->ev.n, b->ev.n);
		return 0;
	}
	for (size_t i = 0; i < a->ev.n; i++)
		if (memcmp(&a->ev.v[i], &b->ev.v[i], sizeof(struct sig))) {
			snprintf(why, n, "event %zu differs: ts %llu/%llu order %llu/%llu", i,
				 (unsigned long long)a->ev.v[i].ts, (unsigned long long)b->ev.v[i].ts,
				 (unsigned long long)a->ev.v[i].order,
				 (unsigned long long)b->ev.v[i].order);
			return 0;
		}
	if (a->jlen != b->jlen || memcmp(a->json, b->json, a->jlen)) {
		snprintf(why, n, "reports differ");
		return 0;
	}
	if (a->mlen != b->mlen || memcmp(a->msgs, b->msgs, a->mlen)) {
		snprintf(why, n, "messages differ: [%s] [%s]", a->msgs, b->msgs);
		return 0;
	}
	return 1;
}

/* Loads dir both ways into a (in memory) and b (streamed) and checks
 * that they agree. */
static void load_both(const char *name, const char *dir, struct loaded *a, struct loaded *b)
{
	char why[256];

	load_one(dir, 1, a);
	load_one(dir, 0, b);
	synth_check(name, same(a, b, why, sizeof(why)), "%s", why);
}

static void rmstreams(const char *dir)
{
	synth_rmdir(dir);
	mkdir(dir, 0700);
}

/*
 * Two threads' blocks interleaved in one stream, overlapping in time,
 * with ties inside the stream and against a fork child's stream.
 */
static void build_interleaved(struct writer *w, size_t *off_exit)
{
	writer_init(w);
	synth_header(w, 100, 1, 0, 1000, 0, FSK_HF_MALLOC, "/x", argv_x);
	synth_ctx(w, FSK_REC_CBASE, 1, 2000);
	synth_cmalloc(w, 0, 0x1000, 16, 0);     /* 2000 */
	synth_cmalloc(w, 50, 0x1010, 16, 0);    /* 2050 */
	synth_cmalloc(w, 100, 0x1020, 16, 0);   /* 2100 */
	synth_ctx(w, FSK_REC_CBASE, 2, 1990);
	synth_cfree(w, 20, 0x1000);             /* 2010 */
	synth_cfree(w, 60, 0x1010);             /* 2050: after tid 1's 2050 */
	synth_ctx(w, FSK_REC_CTX, 1, 0);
	synth_cmalloc(w, 200, 0x1030, 32, 0);   /* 2200 */
	synth_ctx(w, FSK_REC_CTX, 2, 0);
	synth_cfree(w, 150, 0x1020);            /* 2140 */
	*off_exit = w->len;
	synth_exit(w, 2300, 0, FSK_EXIT_MAIN);
	synth_end(w, 2400, FSK_END_EXIT);
}

static void test_interleaved(const char *dir)
{
	static const uint64_t want_key[] = {
		1000, 2000, 2010, 2050, 2050, 2050, 2050, 2100, 2140, 2200, 2300, 2400, 2500,
	};
	static const uint32_t want_pid[] = {
		100, 100, 100, 100, 100, 101, 101, 100, 100, 100, 100, 100, 101,
	};
	static const uint32_t want_tid[] = { 0, 1, 2, 1, 2, 0, 101, 1, 2, 1, 1, 1, 1 };
	struct loaded a, b;
	struct writer w, c;
	size_t off_exit;
	int ok;

	rmstreams(dir);
	build_interleaved(&w, &off_exit);
	synth_save(dir, 100, 0, &w, -1);
	/* a fork child: its OPEN sorts at the fork (2050), before its records */
	writer_init(&c);
	synth_header(&c, 101, 100, 0, 2060, 2050, FSK_HF_MALLOC, "/x", argv_x);
	synth_alloc(&c, 101, 2050, 0x9000, 8, 0);
	synth_end(&c, 2500, FSK_END_EXIT);
	synth_save(dir, 101, 0, &c, -1);

	load_both("merge_interleaved_same", dir, &a, &b);
	ok = b.ev.n == 13;
	for (size_t i = 0; ok && i < 13; i++)
		ok = b.ev.v[i].key == want_key[i] && b.ev.v[i].pid == want_pid[i] &&
		     b.ev.v[i].tid == want_tid[i];
	synth_check("merge_interleaved_order", ok, "%zu events", b.ev.n);
	/* OPEN+3 of tid 1, 2 of tid 2, 1 of tid 1, tid 2 + exit + end; the child */
	synth_check("merge_interleaved_runs", b.runs == 5 && a.runs == 0, "%zu runs streamed, %zu in memory",
		    b.runs, a.runs);
	synth_check("merge_interleaved_clean", b.rc == 0 && b.mlen == 0, "rc %d", b.rc);
	loaded_free(&a);
	loaded_free(&b);
	writer_free(&c);
	writer_free(&w);
}

/* A run that starts in the middle of a stream (time went back) cannot
 * look up bases across a CTX: the CTX starts a run of its own, which
 * resumes with its thread's base; a CBASE inside a run moves the base for
 * what follows. */
static void test_context(const char *dir)
{
	static const uint64_t want[] = { 505, 1000, 1010, 1020, 5000000001ull };
	struct loaded a, b;
	struct writer w;
	int ok;

	rmstreams(dir);
	writer_init(&w);
	synth_header(&w, 7, 1, 0, 1000, 0, FSK_HF_MALLOC, "/x", argv_x);
	synth_ctx(&w, FSK_REC_CBASE, 1, 1000);
	synth_cmalloc(&w, 10, 0x100, 8, 0);
	synth_ctx(&w, FSK_REC_CBASE, 2, 500);
	synth_cmalloc(&w, 5, 0x200, 8, 0);
	synth_ctx(&w, FSK_REC_CTX, 1, 0);
	synth_cmalloc(&w, 20, 0x300, 8, 0);
	synth_ctx(&w, FSK_REC_CBASE, 1, 5000000000ull);
	synth_cfree(&w, 1, 0x300);
	synth_save(dir, 7, 0, &w, -1);
	load_both("merge_context_same", dir, &a, &b);
	ok = b.ev.n == 5;
	for (size_t i = 0; ok && i < 5; i++)
		ok = b.ev.v[i].ts == want[i];
	synth_check("merge_context_ts", ok, "%zu events, ts[3] %llu", b.ev.n,
		    b.ev.n > 3 ? (unsigned long long)b.ev.v[3].ts : 0ull);
	loaded_free(&a);
	loaded_free(&b);
	writer_free(&w);
}

/* Damage: the same messages and offsets, and what came before replays. */
static void test_damage(const char *dir)
{
	struct loaded a, b;
	struct writer w;
	size_t off_exit;
	char want[1200];
	uint16_t bad = 12;

	rmstreams(dir);
	build_interleaved(&w, &off_exit);
	synth_save(dir, 100, 0, &w, (long)off_exit + 8);
	load_both("merge_cut_same", dir, &a, &b);
	snprintf(want, sizeof(want), "forkscope: stream cut short (record runs past end of file): "
		 "%s/100.0.fst: offset %zu\n", dir, off_exit);
	synth_check("merge_cut_message", b.msgs && !strcmp(b.msgs, want) && b.ev.n == 8,
		    "[%s] %zu events", b.msgs, b.ev.n);
	loaded_free(&a);
	loaded_free(&b);

	memcpy(w.buf + off_exit + 2, &bad, 2);
	synth_save(dir, 100, 0, &w, -1);
	load_both("merge_corrupt_same", dir, &a, &b);
	snprintf(want, sizeof(want), "forkscope: impossible record size 12: %s/100.0.fst: offset %zu\n",
		 dir, off_exit);
	synth_check("merge_corrupt_message", b.msgs && !strcmp(b.msgs, want) && b.rc == 1 &&
		    b.ev.n == 8, "[%s] rc %d %zu events", b.msgs, b.rc, b.ev.n);
	loaded_free(&a);
	loaded_free(&b);
	writer_free(&w);
}

static int replay_count(void *ctx, const struct model_event *ev)
{
	(void)ev;
	++*(size_t *)ctx;
	return 0;
}

/* A file that changes between reading and replaying is an error, not
 * wrong events. */
static void test_changed(const char *dir)
{
	struct writer w;
	struct load l;
	size_t off_exit, n = 0;
	int rc, e;

	rmstreams(dir);
	build_interleaved(&w, &off_exit);
	synth_save(dir, 100, 0, &w, -1);
	rc = load_dir(&l, dir);
	synth_save(dir, 100, 0, &w, (long)off_exit - 16);
	e = load_replay(&l, replay_count, &n);
	synth_check("merge_changed_file", rc == 0 && l.streamed && e == -EIO && n == 6,
		    "rc %d streamed %d replay %d after %zu events", rc, l.streamed, e, n);
	/* the model keeps what came before and is finished: reports work */
	e = load_build(&l, 1);
	synth_check("merge_changed_model", e == -EIO && l.model.events == 6 && l.model.n == 1 &&
		    l.model.order != NULL, "build %d, %llu events", e,
		    (unsigned long long)l.model.events);
	FILE *null = fopen("/dev/null", "w");
	report_json(null, &l, dir);
	report_text(null, &l, dir);
	fclose(null);
	load_free(&l);
	writer_free(&w);
}

static unsigned rnd(unsigned *seed, unsigned n)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 8) % n;
}

/*
 * Random streams: blocks of up to four threads in random order, compact
 * and full records, small steps (many ties), sometimes a thread going back
 * in time (what a writer must not do, but the merge must still match).
 */
static void build_random(struct writer *w, unsigned *seed, uint32_t pid, uint64_t start)
{
	uint64_t ts[4], base[4] = { 0 };
	int has_base[4] = { 0 };
	unsigned nth = 1 + rnd(seed, 4), blocks = 1 + rnd(seed, 12);

	writer_init(w);
	synth_header(w, pid, 1, 0, start, rnd(seed, 3) ? 0 : start - rnd(seed, 50), FSK_HF_MALLOC,
		     "/x", argv_x);
	for (unsigned t = 0; t < nth; t++)
		ts[t] = start + rnd(seed, 40);
	for (unsigned b = 0; b < blocks; b++) {
		unsigned t = rnd(seed, nth), n = rnd(seed, 8);
		uint32_t tid = pid + t;
		if (!has_base[t] || rnd(seed, 6) == 0) {
			base[t] = ts[t];
			has_base[t] = 1;
			synth_ctx(w, FSK_REC_CBASE, tid, base[t]);
		} else {
			synth_ctx(w, FSK_REC_CTX, tid, 0);
		}
		for (unsigned k = 0; k < n; k++) {
			ts[t] += rnd(seed, 4);
			if (rnd(seed, 25) == 0 && ts[t] > base[t] + 5)
				ts[t] -= 5;
			uint64_t addr = 0x10000 + 16 * (uint64_t)rnd(seed, 64);
			switch (rnd(seed, 4)) {
			case 0:
				synth_cmalloc(w, (uint32_t)(ts[t] - base[t]), addr, 16, 0);
				break;
			case 1:
				synth_cfree(w, (uint32_t)(ts[t] - base[t]), addr);
				break;
			case 2:
				synth_alloc(w, tid, ts[t], addr, 48, 0);
				break;
			default:
				synth_calloc(w, (uint32_t)(ts[t] - base[t]), addr, 24, 0,
					     FSK_FN_CALLOC);
			}
		}
	}
	synth_exit(w, ts[0] + 1, 0, FSK_EXIT_MAIN);
	synth_end(w, ts[0] + 2, FSK_END_EXIT);
}

static void test_random(const char *dir)
{
	unsigned seed = 4242, bad = 0, runs = 0, events = 0;
	char why[256] = "";

	for (int it = 0; it < 300; it++) {
		unsigned nstreams = 1 + rnd(&seed, 3);
		struct loaded a, b;

		rmstreams(dir);
		for (unsigned s = 0; s < nstreams; s++) {
			struct writer w;
			build_random(&w, &seed, 200 + 10 * s, 1000 + rnd(&seed, 30));
			/* now and then damage a copy: cut or a bad size */
			long n = -1;
			if (rnd(&seed, 5) == 0)
				n = (long)rnd(&seed, (unsigned)w.len + 1);
			synth_save(dir, 200 + 10 * s, 0, &w, n);
			writer_free(&w);
		}
		load_one(dir, 1, &a);
		load_one(dir, 0, &b);
		if (!same(&a, &b, why, sizeof(why)) && !bad++)
			fprintf(stderr, "random trace %d: %s\n", it, why);
		runs += (unsigned)b.runs;
		events += (unsigned)b.ev.n;
		loaded_free(&a);
		loaded_free(&b);
	}
	synth_check("merge_random_same", bad == 0, "%u of 300 traces differ (first: %s)", bad, why);
	synth_check("merge_random_not_trivial", events > 300 * 5 && runs > 300 * 2,
		    "%u events, %u runs", events, runs);
}

int main(void)
{
	char *dir = synth_dir();
	char sub[512];

	snprintf(sub, sizeof(sub), "%.500s/t", dir);
	test_interleaved(sub);
	test_context(sub);
	test_damage(sub);
	test_changed(sub);
	test_random(sub);
	synth_rmdir(dir);
	free(dir);
	return synth_failed;
}
