/*
 * gen_trace: writes a synthetic but valid trace directory (trace.h) of any
 * size, for the viewer's scale tests and benchmarks:
 *
 *   gen_trace DIR NPROCS NEVENTS [SEED]
 *
 * One `forkscope run` stream spawns and reaps the root; the root and every
 * process after it fork children (parent of process i is process (i-1)/4),
 * so NPROCS processes form a tree. Each process writes its header, the
 * child side of its fork, an address-space scan at start and three timer
 * scans, malloc/free/realloc records, forks and waits of its children, its
 * exit and END. Every 13th process is killed (SIGKILL seen only in its
 * parent's wait, stream cut). A child's heap pages start shared with its
 * parent; each timer scan finds 8 more of them unshared (COW broken), after
 * a cluster of 8 sampled COW faults 100 us before it. NEVENTS is the total
 * number of records plus stream openings, to within NPROCS.
 *
 * Ground truth goes to stdout as "@ KIND key=value" lines: one "@ proc" per
 * process (pid, ppid, exit code or signal) and one "@ burst" per COW burst
 * (its pid, the ts of its first COW fault and of the scan that saw the
 * growth (its SCAN_END), the unshared pages after it) when NPROCS <= 1000;
 * faults_ts is 0 when the cluster continues the previous one (closer than
 * GEN_BURST_GAP_NS).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "forkscope/trace.h"

#define GEN_T0 1000000000ull    /* the trace starts at 1 s */
#define GEN_PID0 3000u          /* pid of process 0; the runner is GEN_PID0 - 1 */
#define GEN_FANOUT 4
#define GEN_SCANS 3             /* timer scans per process */
#define GEN_FAULTS 8            /* COW faults before each timer scan */
#define GEN_HEAP_PAGES 32
/* The viewer's TIMELINE_BURST_GAP_NS: COW faults of one process further
 * apart than this start a new burst. */
#define GEN_BURST_GAP_NS 1000000ull

struct gen_proc {
	uint64_t start, end, wait;      /* fork time, exit time, reaped at */
	int killed, code;
	uint32_t parent;
};

struct gen_rec {
	uint64_t ts;
	uint32_t seq;
	uint16_t type, len;
	unsigned char p[80];
	const char *str;                /* REGION path; SPAWN path and argv[0] */
	int nstr;
};

static struct gen_proc *procs;
static uint32_t nprocs;
static struct gen_rec *recs;
static size_t nrecs, caprecs;
static uint64_t rng = 88172645463325252ull;
static const char *dir;
static unsigned char *out;
static size_t outlen, outcap;
static int quiet;

static uint64_t gen_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static double gen_unit(void)
{
	return (double)(gen_rand() >> 11) / 9007199254740992.0;
}

static struct gen_rec *gen_add(uint64_t ts, uint16_t type, const void *p, size_t len)
{
	struct gen_rec *r;

	if (nrecs == caprecs) {
		caprecs = caprecs ? caprecs * 2 : 4096;
		recs = realloc(recs, caprecs * sizeof(*recs));
		if (!recs) {
			perror("gen_trace");
			exit(2);
		}
	}
	r = &recs[nrecs];
	r->ts = ts;
	r->seq = (uint32_t)nrecs++;
	r->type = type;
	r->len = (uint16_t)len;
	r->str = NULL;
	r->nstr = 0;
	memcpy(r->p, p, len);
	return r;
}

static int gen_cmp(const void *a, const void *b)
{
	const struct gen_rec *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void gen_bytes(const void *p, size_t n)
{
	if (outlen + n > outcap) {
		outcap = (outlen + n) * 2;
		out = realloc(out, outcap);
		if (!out) {
			perror("gen_trace");
			exit(2);
		}
	}
	memcpy(out + outlen, p, n);
	outlen += n;
}

static void gen_pad(size_t to)
{
	static const unsigned char z;

	while (outlen % to)
		gen_bytes(&z, 1);
}

static void gen_str(const char *s)
{
	uint32_t n = (uint32_t)strlen(s);

	gen_bytes(&n, 4);
	gen_bytes(s, n);
	gen_pad(4);
}

static void gen_header(uint32_t pid, uint32_t ppid, uint64_t start, uint64_t parent_start,
		       uint32_t flags, const char *exe, const char *arg1)
{
	struct fsk_header h = {
		.version = FSK_VERSION, .header_fixed = sizeof(h), .pid = pid, .ppid = ppid,
		.page_size = 4096, .start_ns = start, .clock_id = 1, .flags = flags,
		.argc = 2, .parent_start_ns = parent_start, .stack_depth = 0, .scan_ms = 0,
	};
	const char *base = strrchr(exe, '/');

	memcpy(h.magic, FSK_MAGIC, 8);
	outlen = 0;
	gen_bytes(&h, sizeof(h));
	gen_str(exe);
	gen_str(base ? base + 1 : exe);
	gen_str(arg1);
	gen_pad(8);
	memcpy(out + 12, &(uint32_t){ (uint32_t)outlen }, 4); /* hdr_size */
}

/* Sorts the collected records, appends them to the header and writes
 * DIR/<pid>.0.fst. */
static void gen_flush(uint32_t pid)
{
	char path[4096];
	int fd;

	qsort(recs, nrecs, sizeof(*recs), gen_cmp);
	for (size_t i = 0; i < nrecs; i++) {
		const struct gen_rec *r = &recs[i];
		size_t at = outlen;
		struct fsk_rec h = { .type = r->type, .tid = pid, .ts_ns = r->ts };
		gen_bytes(&h, sizeof(h));
		gen_bytes(r->p, r->len);
		for (int k = 0; k < r->nstr; k++)
			gen_str(r->str);
		gen_pad(8);
		h.size = (uint16_t)(outlen - at);
		memcpy(out + at, &h, sizeof(h));
	}
	nrecs = 0;
	snprintf(path, sizeof(path), "%s/%u.0.fst", dir, pid);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || write(fd, out, outlen) != (ssize_t)outlen || close(fd) < 0) {
		perror(path);
		exit(2);
	}
}

static void gen_region(uint64_t ts, uint64_t start, uint64_t pages, uint16_t kind, uint16_t perms,
		       uint32_t resident, uint32_t shared, uint32_t unshared, const char *path)
{
	struct fsk_region g = {
		.start = start, .end = start + pages * 4096, .kind = kind, .perms = perms,
		.resident = resident, .shared = shared, .unshared = unshared,
		.shared_at_fork = shared + unshared, .cow_faults = unshared,
	};
	struct gen_rec *r = gen_add(ts, FSK_REC_REGION, &g, sizeof(g));

	r->str = path;
	r->nstr = 1;
}

/* One scan: text, data, bss, heap, stack; `unshared` heap pages broken. */
static void gen_scan(uint64_t ts, uint32_t id, uint16_t trigger, int child, uint32_t unshared)
{
	struct fsk_scan s = { .id = id, .trigger = trigger };
	struct fsk_scan_end e = { .id = id, .regions = 5, .cost_ns = 5000 };
	uint32_t sh = child ? GEN_HEAP_PAGES - unshared : 0;

	gen_add(ts, FSK_REC_SCAN, &s, sizeof(s));
	gen_region(ts + 1, 0x400000, 16, FSK_RK_TEXT, FSK_P_READ | FSK_P_EXEC, 12, 0, 0,
		   "/usr/bin/gen-worker");
	gen_region(ts + 2, 0x410000, 2, FSK_RK_DATA, FSK_P_READ | FSK_P_WRITE, 2, child ? 2 : 0, 0,
		   "/usr/bin/gen-worker");
	gen_region(ts + 3, 0x412000, 4, FSK_RK_BSS, FSK_P_READ | FSK_P_WRITE, 4, child ? 4 : 0, 0,
		   "");
	gen_region(ts + 4, 0x1000000, GEN_HEAP_PAGES + 8, FSK_RK_HEAP, FSK_P_READ | FSK_P_WRITE,
		   GEN_HEAP_PAGES, sh, child ? unshared : 0, "[heap]");
	gen_region(ts + 5, 0x7ffd0000000, 33, FSK_RK_STACK, FSK_P_READ | FSK_P_WRITE, 6,
		   child ? 6 : 0, 0, "[stack]");
	gen_add(ts + 6, FSK_REC_SCAN_END, &e, sizeof(e));
}

static uint64_t gen_between(uint64_t a, uint64_t b, double lo, double hi)
{
	return a + (uint64_t)((double)(b - a) * (lo + (hi - lo) * gen_unit()));
}

/* Lifetimes, top down: a child starts in the first half of its parent's
 * life, ends before it, and is reaped before the parent ends. */
static void gen_schedule(uint64_t span)
{
	procs[0] = (struct gen_proc){ GEN_T0 + 1000, GEN_T0 + span, GEN_T0 + span + 500, 0, 0, 0 };
	for (uint32_t i = 1; i < nprocs; i++) {
		struct gen_proc *c = &procs[i];
		const struct gen_proc *p;
		c->parent = (i - 1) / GEN_FANOUT;
		p = &procs[c->parent];
		c->start = gen_between(p->start, p->end, 0.02, 0.3) + 100;
		c->end = gen_between(c->start, p->end - 1000, 0.6, 0.9);
		c->wait = gen_between(c->end, p->end - 200, 0.0, 0.5) + 50;
		c->killed = i % 13 == 0;
		c->code = c->killed ? 9 : i % 7 == 0 ? (int)(i % 5) + 1 : 0;
	}
}

static void gen_body(uint32_t i, uint64_t nbody)
{
	const struct gen_proc *g = &procs[i];
	uint64_t base = 0x7f0000000000ull + ((uint64_t)i << 28), next = 0, *live = NULL;
	uint64_t lo = g->start + 10000, hi = g->end - 1000, *ts;
	size_t nlive = 0;

	if (hi <= lo + nbody)
		return;
	ts = malloc(nbody * sizeof(*ts));
	live = malloc(nbody * sizeof(*live));
	if (!ts || !live) {
		perror("gen_trace");
		exit(2);
	}
	for (uint64_t k = 0; k < nbody; k++)
		ts[k] = lo + gen_rand() % (hi - lo);
	for (uint64_t k = 0; k < nbody; k++) {
		uint64_t r = gen_rand() % 100;
		if (nlive && r < 45) {
			size_t j = gen_rand() % nlive;
			struct fsk_free f = { .addr = live[j], .fn = FSK_FN_FREE };
			live[j] = live[--nlive];
			gen_add(ts[k], FSK_REC_FREE, &f, sizeof(f));
		} else if (nlive && r < 50) {
			size_t j = gen_rand() % nlive;
			struct fsk_realloc x = { .old_addr = live[j], .new_addr = base + 64 * next++,
						 .size = 16 + gen_rand() % 4000, .fn = FSK_FN_REALLOC };
			live[j] = x.new_addr;
			gen_add(ts[k], FSK_REC_REALLOC, &x, sizeof(x));
		} else {
			struct fsk_alloc a = { .addr = base + 64 * next++, .size = 16 + gen_rand() % 4000,
					       .fn = FSK_FN_MALLOC };
			live[nlive++] = a.addr;
			gen_add(ts[k], FSK_REC_ALLOC, &a, sizeof(a));
		}
	}
	free(ts);
	free(live);
}

static void gen_process(uint32_t i, uint64_t nbody, uint64_t *made)
{
	const struct gen_proc *g = &procs[i];
	uint32_t pid = GEN_PID0 + i, ppid = i ? GEN_PID0 + g->parent : GEN_PID0 - 1;
	uint32_t unshared = 0;
	uint64_t last_fault = 0;
	char arg[16];

	snprintf(arg, sizeof(arg), "%u", i);
	gen_header(pid, ppid, i ? g->start + 1 : g->start, i ? g->start : 0, FSK_HF_MALLOC,
		   "/usr/bin/gen-worker", arg);
	*made += 1;
	if (i) {
		struct fsk_fork f = { .child_pid = pid, .kind = FSK_FORK, .side = FSK_SIDE_CHILD };
		gen_add(g->start + 2, FSK_REC_FORK, &f, sizeof(f));
	}
	gen_scan(g->start + 3, 1, i ? FSK_SCAN_FORK_CHILD : FSK_SCAN_START, i != 0, 0);
	for (uint32_t s = 1; s <= GEN_SCANS; s++) {
		uint64_t t = g->start + (g->end - g->start) * s / (GEN_SCANS + 1);
		if (i) {
			for (uint32_t k = 0; k < GEN_FAULTS; k++) {
				struct fsk_fault f = { .addr = 0x1000000 + 4096 * (unshared + k),
						       .ip = 0x400100 + 16 * s, .cls = FSK_FAULT_COW,
						       .kind = FSK_RK_HEAP };
				gen_add(t - 100000 + 1000 * k, FSK_REC_FAULT, &f, sizeof(f));
			}
			unshared += GEN_FAULTS;
			if (!quiet)
				printf("@ burst pid=%u faults_ts=%llu scan_ts=%llu unshared=%u\n", pid,
				       last_fault && t - 100000 - last_fault <= GEN_BURST_GAP_NS
				       ? 0ull : (unsigned long long)(t - 100000),
				       (unsigned long long)t + 6, unshared);
			last_fault = t - 100000 + 1000 * (GEN_FAULTS - 1);
		}
		gen_scan(t, 1 + s, FSK_SCAN_TIMER, i != 0, unshared);
	}
	for (uint32_t c = i * GEN_FANOUT + 1; c <= i * GEN_FANOUT + GEN_FANOUT && c < nprocs; c++) {
		const struct gen_proc *ch = &procs[c];
		struct fsk_fork f = { .child_pid = GEN_PID0 + c, .kind = FSK_FORK,
				      .side = FSK_SIDE_PARENT };
		struct fsk_wait w = { .pid_arg = -1, .result = (int32_t)(GEN_PID0 + c),
				      .fn = FSK_WAIT_WAITPID,
				      .state = ch->killed ? FSK_WS_SIGNALED : FSK_WS_EXITED,
				      .value = ch->code,
				      .raw_status = ch->killed ? ch->code : ch->code << 8 };
		gen_add(ch->start, FSK_REC_FORK, &f, sizeof(f));
		gen_add(ch->wait, FSK_REC_WAIT, &w, sizeof(w));
	}
	gen_body(i, nbody);
	if (!g->killed) {
		struct fsk_exit x = { .code = g->code, .how = FSK_EXIT_EXIT };
		struct fsk_end e = { .reason = FSK_END_EXIT };
		gen_add(g->end, FSK_REC_EXIT, &x, sizeof(x));
		gen_add(g->end + 1, FSK_REC_END, &e, sizeof(e));
	}
	*made += nrecs;
	if (!quiet)
		printf("@ proc pid=%u ppid=%u %s=%d\n", pid, ppid, g->killed ? "sig" : "code",
		       g->code);
	gen_flush(pid);
}

/* The stream of `forkscope run`: spawns the root, reaps it. */
static void gen_runner(void)
{
	uint32_t pid = GEN_PID0 - 1;
	struct fsk_exec x = { .child_pid = GEN_PID0, .fn = FSK_SPAWN_POSIX_SPAWN, .argc = 1 };
	struct fsk_wait w = { .pid_arg = (int32_t)GEN_PID0, .result = (int32_t)GEN_PID0,
			      .fn = FSK_WAIT_WAIT4, .state = FSK_WS_EXITED };
	struct fsk_end e = { .reason = FSK_END_EXIT };
	struct gen_rec *r;

	gen_header(pid, 1, GEN_T0, 0, FSK_HF_RUNNER, "/usr/bin/forkscope", "run");
	r = gen_add(procs[0].start - 10, FSK_REC_SPAWN, &x, sizeof(x));
	r->str = "/usr/bin/gen-worker";
	r->nstr = 2;
	gen_add(procs[0].wait, FSK_REC_WAIT, &w, sizeof(w));
	gen_add(procs[0].wait + 10, FSK_REC_END, &e, sizeof(e));
	gen_flush(pid);
}

int main(int argc, char **argv)
{
	uint64_t nev, fixed, nbody, made = 0;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: gen_trace DIR NPROCS NEVENTS [SEED]\n");
		return 2;
	}
	dir = argv[1];
	nprocs = (uint32_t)strtoul(argv[2], NULL, 10);
	nev = strtoull(argv[3], NULL, 10);
	if (argc == 5)
		rng ^= strtoull(argv[4], NULL, 10) * 0x9e3779b97f4a7c15ull;
	if (nprocs < 1 || nprocs > 1000000) {
		fprintf(stderr, "gen_trace: NPROCS must be 1..1000000\n");
		return 2;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		perror(dir);
		return 2;
	}
	quiet = nprocs > 1000;
	procs = calloc(nprocs, sizeof(*procs));
	if (!procs)
		return 2;
	/* per process: open, fork, 4 scans of 7, faults, exit, end, and 2
	 * records for each child */
	fixed = (uint64_t)nprocs * (4 * 7 + 4 + GEN_SCANS * GEN_FAULTS + 2);
	nbody = nev > fixed ? (nev - fixed) / nprocs : 0;
	gen_schedule(nev * 1000 + 1000000);
	gen_runner();
	for (uint32_t i = 0; i < nprocs; i++)
		gen_process(i, nbody, &made);
	printf("@ gen procs=%u events=%llu\n", nprocs, (unsigned long long)made + 4);
	return 0;
}
