/*
 * Sampled malloc tracing (FORKSCOPE_SAMPLE_BYTES=N, trace.h): which calls
 * get records, and the set of recorded blocks still live.
 *
 * Each thread counts its allocated bytes down from a length drawn from an
 * exponential distribution of mean N (the heap profilers' scheme): the hot
 * path is a subtraction and a branch, no system call, no lock. A free
 * writes a record only when its block was recorded, so the addresses of
 * recorded live blocks are kept in an open-addressing table of our own
 * memory, updated with compare-and-swap; a small table of counters keyed by
 * other bits of the address answers "surely not recorded" for most frees
 * from a few cache lines.
 */
#include <stdatomic.h>
#include <x86intrin.h>

#include "fsk.h"

__thread uint64_t t_sample_left;
static __thread uint64_t t_rng;
static _Atomic uint64_t s_threads;

#define SET_BITS 18               /* 2^18 live recorded blocks at most */
#define SET_PROBES 512
#define SET_TOMB 1ull             /* a removed entry: probing goes on */
static _Atomic uint64_t *s_set;
uint16_t *sample_filter;
static _Atomic int s_full_said;

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* -ln(u) for u in (0, 1], without libm: linking it would add a library
 * to every traced program's address space. u = m 2^e with m in
 * [sqrt(1/2), sqrt(2)], ln m = 2 atanh(z), z = (m-1)/(m+1), |z| < 0.172. */
static double neg_log(double u)
{
	uint64_t bits;
	double m;
	__builtin_memcpy(&bits, &u, 8);
	int e = (int)((bits >> 52) & 0x7ff) - 1023;
	bits = (bits & ((1ull << 52) - 1)) | (1023ull << 52);
	__builtin_memcpy(&m, &bits, 8);
	if (m > 1.4142135623730951) {
		m *= 0.5;
		e++;
	}
	double z = (m - 1) / (m + 1), z2 = z * z, t = z, s = 0;
	for (int k = 1; k < 24; k += 2) { /* error below 1e-17 */
		s += t / k;
		t *= z2;
	}
	return -((double)e * 0.6931471805599453 + 2 * s);
}

/* A length of mean N bytes, >= 1: floor of an exponential draw, plus one,
 * so a call of s bytes crosses zero with probability 1 - exp(-s/N). */
static uint64_t sample_draw(void)
{
	t_rng ^= t_rng << 13;
	t_rng ^= t_rng >> 7;
	t_rng ^= t_rng << 17;
	double u = (double)((t_rng >> 11) + 1) * 0x1p-53; /* (0, 1] */
	double x = neg_log(u) * (double)G.sample_bytes;
	return x < 0x1p62 ? (uint64_t)x + 1 : 1ull << 62;
}

int sample_slow(size_t size)
{
	uint64_t s = size | !size;
	if (unlikely(!t_rng)) {
		/* a fixed seed gives each thread, in order of its first
		 * allocation, the same sequence on every run */
		uint64_t n = atomic_fetch_add(&s_threads, 1);
		t_rng = G.sample_seed ? mix(G.sample_seed + n)
				      : mix(__rdtsc() ^ (uint64_t)sys_gettid() << 32);
		t_rng |= !t_rng;
		t_sample_left = sample_draw();
		if (t_sample_left > s) {
			t_sample_left -= s;
			return 0;
		}
	}
	t_sample_left = sample_draw();
	return 1;
}

/* A fork child draws apart from its parent, whose sequence it copied. */
void sample_fork_child(void)
{
	if (t_rng)
		t_rng = mix(t_rng ^ (uint64_t)G.pid) | 1;
}

static inline uint64_t set_home(uint64_t a)
{
	return (a >> 4) * 0x9e3779b97f4a7c15ull >> (64 - SET_BITS);
}

static inline _Atomic uint16_t *set_filter(uint64_t a)
{
	return (_Atomic uint16_t *)&sample_filter[sample_filter_index(a)];
}

int sample_init(void)
{
	size_t n = (sizeof(*s_set) << SET_BITS) + (sizeof(*sample_filter) << SAMPLE_FILTER_BITS);
	char *p = sys_mmap(n);
	if (!p)
		return -1;
	scan_own_add(p, n);
	s_set = (void *)p;
	sample_filter = (void *)(p + (sizeof(*s_set) << SET_BITS));
	return 0;
}

int sample_add(const void *p)
{
	uint64_t a = (uint64_t)(uintptr_t)p, h = set_home(a);
	for (uint64_t i = 0; i < SET_PROBES; i++) {
		_Atomic uint64_t *slot = &s_set[(h + i) & ((1u << SET_BITS) - 1)];
		uint64_t v = atomic_load_explicit(slot, memory_order_relaxed);
		while (v <= SET_TOMB) {
			if (atomic_compare_exchange_weak(slot, &v, a)) {
				atomic_fetch_add_explicit(set_filter(a), 1, memory_order_relaxed);
				return 1;
			}
		}
	}
	if (!atomic_exchange(&s_full_said, 1))
		emit_note(FSK_NOTE_WARN, "sampling: too many live sampled blocks; "
					 "later ones are left out and estimates are low");
	return 0;
}

int sample_remove_slow(const void *p)
{
	uint64_t a = (uint64_t)(uintptr_t)p;
	_Atomic uint16_t *f = set_filter(a);
	uint64_t h = set_home(a);
	for (uint64_t i = 0; i < SET_PROBES; i++) {
		_Atomic uint64_t *slot = &s_set[(h + i) & ((1u << SET_BITS) - 1)];
		uint64_t v = atomic_load_explicit(slot, memory_order_relaxed);
		if (v == 0)
			return 0; /* an insert stops at the first free slot */
		if (v == a && atomic_compare_exchange_strong(slot, &v, SET_TOMB)) {
			atomic_fetch_sub_explicit(f, 1, memory_order_relaxed);
			return 1;
		}
	}
	return 0;
}
