/*
 * malloc_count: a malloc-family workload whose exact call counts are known.
 *
 * Usage: malloc_count ITERS [THREADS]
 * THREADS threads (default 8) each run ITERS iterations of
 *     p = malloc(a); q = calloc(2, b); p = realloc(p, c); free(p); free(q);
 * then, once per thread, EXTRA calls each of reallocarray, posix_memalign,
 * aligned_alloc and memalign, each freed. Sizes vary but are never 0 and
 * pointers never NULL, so no call is a special case (realloc(NULL), free(NULL),
 * realloc(p, 0)). All output is write(2): no stdio buffer is allocated.
 *
 * It prints one line with its own counts:
 *   @ counts threads=T iters=N malloc=.. calloc=.. realloc=.. reallocarray=..
 *            posix_memalign=.. aligned_alloc=.. memalign=.. free=.. bytes=..
 *            realloc_bytes=.. errno_changed=..
 * bytes is the sum of requested sizes (calloc: n*size; realloc: new size);
 * realloc_bytes the part of it that realloc requested. errno_changed counts
 * iterations after which errno was not the value the thread set before the
 * loop (0: glibc's malloc family keeps errno on success, and so must a
 * traced run).
 * Running it with ITERS=0 makes every call the program itself makes except
 * the loop, so a test can subtract what glibc allocates on its own.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXTRA 100
#define MAX_THREADS 64

struct counts {
	uint64_t malloc, calloc, realloc, reallocarray, posix_memalign, aligned_alloc, memalign;
	uint64_t free, bytes, realloc_bytes, errno_changed;
};

static long g_iters;
static struct counts g_counts[MAX_THREADS];

/* Keeps the compiler from proving an allocation unused and removing it. */
static inline void use(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static void fail(const char *what)
{
	char buf[128];
	int n = snprintf(buf, sizeof buf, "malloc_count: %s failed\n", what);
	if (write(2, buf, (size_t)n) < 0)
		_exit(2);
	_exit(2);
}

static void *thread_main(void *arg)
{
	struct counts *c = arg;
	unsigned seed = (unsigned)(c - g_counts) * 2654435761u + 1;
	int mark = 4000 + (int)(c - g_counts); /* no call sets this errno */
	errno = mark;
	for (long i = 0; i < g_iters; i++) {
		seed = seed * 1103515245u + 12345u;
		size_t a = 16 + (seed >> 8) % 512, b = 8 + (seed >> 16) % 256, n = a + 64;
		char *p = malloc(a);
		char *q = calloc(2, b);
		if (!p || !q)
			fail("malloc/calloc");
		p[0] = 1;
		use(q);
		char *r = realloc(p, n);
		if (!r)
			fail("realloc");
		r[n - 1] = 2;
		use(r);
		free(r);
		free(q);
		if (errno != mark) {
			c->errno_changed++;
			errno = mark;
		}
		c->malloc++, c->calloc++, c->realloc++, c->free += 2;
		c->bytes += a + 2 * b + n;
		c->realloc_bytes += n;
	}
	for (int i = 0; i < EXTRA && g_iters > 0; i++) {
		void *p = reallocarray(NULL, 4, 32); /* ptr NULL: acts as malloc */
		void *q = NULL;
		if (!p || posix_memalign(&q, 64, 200) != 0)
			fail("reallocarray/posix_memalign");
		void *r = aligned_alloc(128, 256), *s = memalign(32, 96);
		if (!r || !s)
			fail("aligned_alloc/memalign");
		use(p), use(q), use(r), use(s);
		free(p), free(q), free(r), free(s);
		c->reallocarray++, c->posix_memalign++, c->aligned_alloc++, c->memalign++;
		c->free += 4;
		c->bytes += 128 + 200 + 256 + 96;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	g_iters = argc > 1 ? atol(argv[1]) : 100000;
	int threads = argc > 2 ? atoi(argv[2]) : 8;
	if (g_iters < 0 || threads < 1 || threads > MAX_THREADS) {
		static const char usage[] = "usage: malloc_count ITERS [THREADS<=64]\n";
		if (write(2, usage, sizeof usage - 1) < 0)
			return 2;
		return 2;
	}
	pthread_t tid[MAX_THREADS];
	for (int t = 0; t < threads; t++)
		if (pthread_create(&tid[t], NULL, thread_main, &g_counts[t]) != 0)
			fail("pthread_create");
	struct counts sum = { 0 };
	for (int t = 0; t < threads; t++) {
		pthread_join(tid[t], NULL);
		struct counts *c = &g_counts[t];
		sum.malloc += c->malloc, sum.calloc += c->calloc, sum.realloc += c->realloc;
		sum.reallocarray += c->reallocarray, sum.posix_memalign += c->posix_memalign;
		sum.aligned_alloc += c->aligned_alloc, sum.memalign += c->memalign;
		sum.free += c->free, sum.bytes += c->bytes, sum.realloc_bytes += c->realloc_bytes;
		sum.errno_changed += c->errno_changed;
	}
	char buf[512];
	int n = snprintf(buf, sizeof buf,
			 "@ counts threads=%d iters=%ld malloc=%lu calloc=%lu realloc=%lu reallocarray=%lu "
			 "posix_memalign=%lu aligned_alloc=%lu memalign=%lu free=%lu bytes=%lu realloc_bytes=%lu "
			 "errno_changed=%lu\n",
			 threads, g_iters, (unsigned long)sum.malloc, (unsigned long)sum.calloc,
			 (unsigned long)sum.realloc, (unsigned long)sum.reallocarray,
			 (unsigned long)sum.posix_memalign, (unsigned long)sum.aligned_alloc,
			 (unsigned long)sum.memalign, (unsigned long)sum.free, (unsigned long)sum.bytes,
			 (unsigned long)sum.realloc_bytes, (unsigned long)sum.errno_changed);
	if (write(1, buf, (size_t)n) != n)
		return 1;
	return 0;
}
