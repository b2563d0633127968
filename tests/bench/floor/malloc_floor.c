/*
 * malloc_floor: the naive recorders the performance issue measures
 * forkscope's malloc path against, built as preload libraries for the
 * malloc rows of make bench (a floor to beat, not a tracer). The Makefile
 * builds one per kind (FLOOR_KIND_shim and so on):
 *   shim    a bare forwarding shim (glibc's __libc_* functions);
 *   clock   a 32-byte record per call appended to a thread-local buffer,
 *           stamped by clock_gettime(CLOCK_MONOTONIC);
 *   tsc     the same stamped by rdtsc;
 *   unwind  as tsc, with a plain unw_backtrace of up to 32 frames per
 *           allocation, its frames appended after the record;
 *   word    one 8-byte word per call, the block's address with the
 *           call's kind in its low bits: no stamp, no size, the least a
 *           recorder of every call can write.
 * A full buffer goes to the file FLOOR_OUT by one write(), a thread's
 * rest when it ends (the main thread's at exit). No fork or exec
 * handling, no interning, no errno care.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#if defined(FLOOR_KIND_shim)
#define FLOOR 0
#elif defined(FLOOR_KIND_clock)
#define FLOOR 1
#elif defined(FLOOR_KIND_tsc)
#define FLOOR 2
#elif defined(FLOOR_KIND_unwind)
#define FLOOR 3
#elif defined(FLOOR_KIND_word)
#define FLOOR 4
#else
#error "FLOOR_KIND_shim, _clock, _tsc, _unwind or _word"
#endif
#if FLOOR == 3
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#endif

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

#define BUF (64u << 10)

struct rec {
	uint32_t type, frames;
	uint64_t ts, addr, size;
};

static int s_fd = -1;
static pthread_key_t s_key; /* its destructor writes a thread's rest */
static __thread char t_buf[BUF];
static __thread size_t t_used;
#if FLOOR > 0
static __thread int t_in; /* unw_backtrace and pthread_setspecific may allocate */
static __thread int t_keyed;
#endif

static void flush(void)
{
	if (s_fd >= 0 && t_used && write(s_fd, t_buf, t_used) < 0)
		s_fd = -1;
	t_used = 0;
}

static void thread_end(void *unused)
{
	(void)unused;
	flush();
}

__attribute__((constructor)) static void floor_init(void)
{
	const char *p = getenv("FLOOR_OUT");
	if (p)
		s_fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	pthread_key_create(&s_key, thread_end);
}

__attribute__((destructor)) static void floor_fini(void)
{
	flush();
}

static inline uint64_t stamp(void)
{
#if FLOOR == 1
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#else
	return __rdtsc();
#endif
}

static inline void record(uint32_t type, void *addr, size_t size)
{
#if FLOOR == 4
	(void)size;
	if (__builtin_expect(!t_keyed, 0)) {
		if (t_in)
			return; /* pthread_setspecific's own allocation */
		t_in = 1;
		t_keyed = 1;
		pthread_setspecific(s_key, &t_keyed);
		t_in = 0;
	}
	if (__builtin_expect(t_used + 8 > BUF, 0))
		flush();
	*(uint64_t *)(void *)(t_buf + t_used) = (uint64_t)(uintptr_t)addr | type;
	t_used += 8;
#elif FLOOR > 0
	if (t_in)
		return;
	t_in = 1;
	if (!t_keyed) {
		t_keyed = 1;
		pthread_setspecific(s_key, &t_keyed);
	}
	if (t_used + sizeof(struct rec) + 32 * sizeof(uint64_t) > BUF)
		flush();
	struct rec *r = (void *)(t_buf + t_used);
	r->type = type;
	r->ts = stamp();
	r->addr = (uint64_t)(uintptr_t)addr;
	r->size = size;
	r->frames = 0;
	t_used += sizeof(*r);
#if FLOOR == 3
	if (type) {
		int n = unw_backtrace((void **)(t_buf + t_used), 32);
		if (n > 0) {
			r->frames = (uint32_t)n;
			t_used += (size_t)n * sizeof(uint64_t);
		}
	}
#endif
	t_in = 0;
#else
	(void)type;
	(void)addr;
	(void)size;
#endif
}

void *malloc(size_t size)
{
	void *p = __libc_malloc(size);
	record(1, p, size);
	return p;
}

void *calloc(size_t n, size_t size)
{
	void *p = __libc_calloc(n, size);
	record(2, p, n * size);
	return p;
}

void *realloc(void *old, size_t size)
{
	void *p = __libc_realloc(old, size);
	record(3, p, size);
	return p;
}

void free(void *p)
{
	record(0, p, 0);
	__libc_free(p);
}
