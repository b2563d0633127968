/*
 * malloc-family hooks and brk/sbrk: the hot path. One fixed-size record per
 * call into the thread's buffer: no system call, no lock. glibc moves the
 * program break inside malloc through its internal brk, which we cannot
 * interpose, so after each call we compare __curbrk with the last value we
 * recorded; and whether glibc served a block from its own mmap is the
 * IS_MMAPPED bit of the chunk header in front of the block. Most calls
 * become compact records (CMALLOC/CALLOC/CFREE, trace.h) stamped with the
 * buffer's TSC clock; values that do not fit them take the full records.
 */
#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>

#include "emit.h"

extern void *__curbrk; /* glibc's program break, exported by libc.so */
static void *_Atomic s_last_brk;

#ifdef FSK_STRICT
/* Test builds: a malloc hook entered again on the same thread while it is
 * recording means something we call allocates. Fail loudly. */
static __thread int t_in_record;
#define STRICT_ENTER()                                                     \
	do {                                                               \
		if (t_in_record) {                                         \
			sys_say("strict: malloc hook re-entered", (char *)NULL); \
			real.abort();                                      \
		}                                                          \
		t_in_record = 1;                                           \
	} while (0)
#define STRICT_LEAVE() (t_in_record = 0)
#else
#define STRICT_ENTER() ((void)0)
#define STRICT_LEAVE() ((void)0)
#endif

/* glibc's IS_MMAPPED bit, in the chunk header before the block; never
 * read under another malloc, whose block may follow an unmapped page
 * (python3 under jemalloc died of that read at its first thread). */
static inline int chunk_mmapped(const void *p)
{
	return p && real.malloc_is_glibc && (((const size_t *)p)[-1] & 2);
}

/* `stack_ok` 0: the caller is not the thread that moved the break. */
static __attribute__((noinline)) void brk_record(void *old, void *now, uint32_t cause, int stack_ok)
{
	int err = errno;
	scan_mark(FSK_SCAN_BRK);
	uint32_t stack = stack_ok ? FSK_STACK(0) : 0;
	struct fsk_rec *h = emit_reserve(FSK_REC_BRK, sizeof(struct fsk_rec) + sizeof(struct fsk_brk),
					 FSK_TS_CLOCK);
	if (!h) {
		errno = err;
		return;
	}
	struct fsk_brk *b = (void *)(h + 1);
	b->old_brk = (uint64_t)old;
	b->new_brk = (uint64_t)now;
	b->cause = cause;
	b->stack = stack;
	emit_commit();
	errno = err;
}

/* Did malloc move the break? Cheap when it did not: one load. */
static inline void brk_check_as(int stack_ok)
{
	void *now = __curbrk;
	void *last = atomic_load_explicit(&s_last_brk, memory_order_relaxed);
	if (likely(now == last))
		return;
	if (atomic_compare_exchange_strong(&s_last_brk, &last, now) && last)
		brk_record(last, now, FSK_BRK_MALLOC, stack_ok);
}

static inline void brk_check(void)
{
	brk_check_as(1);
}

static inline int hot_on(void)
{
	return !t_guard && G.active && G.malloc_on;
}

/*
 * Calls before our constructor. A preloaded library's constructor runs
 * after those of the libraries the program needs, and theirs allocate:
 * LLVM's thousands of option objects (clang showed 2 241 frees of blocks
 * it never saw allocated). Those calls are kept here as full records with
 * the time they happened and no stack, and the constructor writes them
 * out ahead of its START scan. What does not fit is counted dropped. Not
 * under sampling (its weights start with the constructor) nor --no-malloc.
 */
#define PRE_BYTES (512u << 10)
static char s_pre_buf[PRE_BYTES] __attribute__((aligned(8))) FSK_COLD;
static _Atomic uint64_t s_pre_len;   /* reserved (may run past the end) */
static _Atomic uint64_t s_pre_lost;  /* records that did not fit */
static _Atomic int s_pre_state;      /* 0 not decided, 1 keeping, -1 not (any more) */
#define PRE_DONE() (atomic_load_explicit(&s_pre_state, memory_order_relaxed) < 0)

static __attribute__((noinline)) int pre_decide(void)
{
	if (!__environ)
		return 0; /* libc has not set it up yet: asked again later */
	const char *dir = getenv("FORKSCOPE_DIR"), *m = getenv("FORKSCOPE_MALLOC");
	const char *sb = getenv("FORKSCOPE_SAMPLE_BYTES");
	int st = dir && dir[0] == '/' && !(m && m[0] == '0') && !(sb && sb[0] && sb[0] != '0') ? 1 : -1;
	int expect = 0;
	atomic_compare_exchange_strong(&s_pre_state, &expect, st);
	return atomic_load(&s_pre_state) > 0;
}

/* Whether this call (not recorded the usual way) is one to keep. */
static inline int pre_on(void)
{
	int st = atomic_load_explicit(&s_pre_state, memory_order_relaxed);
	if (likely(st < 0) || t_guard)
		return 0;
	return st > 0 || pre_decide();
}

/* A record of `payload` bytes after its header, its type still 0: the
 * caller fills the payload, then pre_commit. NULL when it does not fit. */
static struct fsk_rec *pre_reserve(uint32_t payload)
{
	uint32_t size = (uint32_t)sizeof(struct fsk_rec) + payload;
	uint64_t at = atomic_fetch_add(&s_pre_len, size);
	if (at + size > PRE_BYTES) {
		atomic_fetch_add(&s_pre_lost, 1);
		return NULL;
	}
	struct fsk_rec *r = (void *)(s_pre_buf + at);
	r->size = (uint16_t)size;
	r->tid = (uint32_t)emit_tid();
	r->ts_ns = sys_now_ns();
	return r;
}

/* The type last: heap_pre_flush takes a record with one as whole. */
static void pre_commit(struct fsk_rec *r, uint16_t type)
{
	__atomic_store_n(&r->type, type, __ATOMIC_RELEASE);
}

/* The block is the caller's to use only after this returns: its record
 * is in place before another thread's free of it could be. */
static void pre_alloc(uint16_t fn, void *p, size_t size)
{
	int err = errno;
	struct fsk_rec *h = pre_reserve(sizeof(struct fsk_alloc));
	if (h) {
		struct fsk_alloc *a = (void *)(h + 1);
		a->addr = (uint64_t)(uintptr_t)p;
		a->size = size;
		a->stack = 0;
		a->fn = fn;
		a->flags = !p ? FSK_AF_FAILED : chunk_mmapped(p) ? FSK_AF_MMAPPED : 0;
		pre_commit(h, FSK_REC_ALLOC);
	}
	errno = err;
}

static void pre_free(void *p)
{
	int err = errno;
	struct fsk_rec *h = p ? pre_reserve(sizeof(struct fsk_free)) : NULL;
	if (h) {
		struct fsk_free *f = (void *)(h + 1);
		f->addr = (uint64_t)(uintptr_t)p;
		f->stack = 0;
		f->fn = FSK_FN_FREE;
		f->flags = chunk_mmapped(p) ? FSK_AF_MMAPPED : 0;
		pre_commit(h, FSK_REC_FREE);
	}
	errno = err;
}

static void pre_realloc(uint16_t fn, void *old, void *p, size_t size)
{
	int err = errno;
	struct fsk_rec *h = pre_reserve(sizeof(struct fsk_realloc));
	if (h) {
		struct fsk_realloc *r = (void *)(h + 1);
		r->old_addr = (uint64_t)(uintptr_t)old;
		r->new_addr = (uint64_t)(uintptr_t)p;
		r->size = size;
		r->stack = 0;
		r->fn = fn;
		r->flags = (uint16_t)((!p && size) ? FSK_AF_FAILED : chunk_mmapped(p) ? FSK_AF_MMAPPED : 0);
		pre_commit(h, FSK_REC_REALLOC);
	}
	errno = err;
}

/* The constructor, first: no more calls are kept. */
void heap_pre_close(void)
{
	atomic_store(&s_pre_state, -1);
}

/* The constructor, its stream open: the kept calls go out; those that did
 * not fit are counted dropped (a DROPPED record says so). */
void heap_pre_flush(void)
{
	uint64_t n = atomic_load(&s_pre_len);
	uint32_t end = n > PRE_BYTES ? PRE_BYTES : (uint32_t)n, at = 0;
	while (at + sizeof(struct fsk_rec) <= end) {
		struct fsk_rec *r = (void *)(s_pre_buf + at);
		if (!__atomic_load_n(&r->type, __ATOMIC_ACQUIRE) || at + r->size > end)
			break; /* a record another thread was still writing: lost */
		at += r->size;
	}
	if (at)
		emit_block(s_pre_buf, at);
	uint64_t lost = atomic_load(&s_pre_lost);
	if (lost)
		emit_dropped(lost, lost * (sizeof(struct fsk_rec) + sizeof(struct fsk_alloc)));
}

#define HOT_BEGIN()            \
	t_guard = 1;           \
	STRICT_ENTER()
#define HOT_END(err)           \
	STRICT_LEAVE();        \
	t_guard = 0;           \
	errno = err

/* brk_check for a call that writes no record (sampling): guarded, errno
 * kept, one load when the break did not move. */
static inline void brk_quiet(void)
{
	if (likely(__curbrk == atomic_load_explicit(&s_last_brk, memory_order_relaxed)))
		return;
	HOT_BEGIN();
	int err = errno;
	brk_check();
	HOT_END(err);
}

/* Sampling on and this call not chosen: a tail call of the real one, no
 * record and no look at the break (the next recorded call and the
 * flusher's heap_brk_poll see it move). Only for functions whose glibc
 * code calls none of our hooks. */
#define SAMPLE_PASS(size, call)                                   \
	if (G.sample_bytes && likely(!sample_take(size)))          \
		return call

static inline int caddr_fits(uint64_t a)
{
	return a && !(a & FSK_CADDR_FLAGS) && !(a >> (FSK_CM_ADDR_BITS + 4));
}

/* CMALLOC (or a tiny or micro form) of malloc(size) = a; a and size fit it.
 * Always inlined: as a call, its prologue and epilogue were a sixth of a
 * traced malloc_bench (events only: 0.233 s CPU against 0.192 inlined). */
static inline __attribute__((always_inline)) void emit_cmalloc(uint64_t a, size_t size, int mm)
{
	emit_compact(FSK_REC_CMALLOC, sizeof(struct fsk_cmalloc),
		     a >> 4 | (uint64_t)size << FSK_CM_ADDR_BITS | (mm ? FSK_CM_MMAPPED : 0), 0,
		     mm ? ~0ull : a, EMIT_C_MALLOC, a, size, 0, FSK_FN_MALLOC, mm);
}

/* CFREE (or a tiny or micro form) of free(a); a is 16-aligned. */
static inline __attribute__((always_inline)) void emit_cfree(uint64_t a, int mm)
{
	emit_compact(FSK_REC_CFREE, sizeof(struct fsk_cfree), a | (mm ? FSK_AF_MMAPPED : 0), 0,
		     mm ? ~0ull : a, EMIT_C_FREE, a, 0, 0, 0, mm);
}

/* Whether a CALLOC holds the call: an aligned address (not NULL), a
 * 32-bit size and a 24-bit stack id. */
static inline int calloc_fits(uint64_t addr, size_t size, uint32_t stack)
{
	return addr && !(addr & FSK_CADDR_FLAGS) && size <= UINT32_MAX && stack <= FSK_CSTACK_MAX;
}

/* CALLOC (or a tiny or micro form) of allocation function fn (size) =
 * addr, with its stack. */
static inline __attribute__((always_inline)) void emit_calloc(uint16_t fn, uint64_t addr, size_t size,
								int mm, uint32_t stack)
{
	emit_compact(FSK_REC_CALLOC, sizeof(struct fsk_calloc), addr | (mm ? FSK_AF_MMAPPED : 0),
		     (uint32_t)size | (uint64_t)(stack | (uint32_t)fn << 24) << 32, mm ? ~0ull : addr,
		     EMIT_C_ALLOC, addr, size, stack, fn, mm);
}

/* The smallest record that holds the call: CMALLOC, CALLOC, else ALLOC;
 * stack already taken. */
static __attribute__((noinline)) void rec_alloc_stack(uint16_t fn, void *p, size_t size, uint32_t stack)
{
	uint64_t addr = (uint64_t)(uintptr_t)p;
	int mm = addr && chunk_mmapped(p);
	if (likely(caddr_fits(addr) && !stack && fn == FSK_FN_MALLOC && !(size >> FSK_CM_SIZE_BITS))) {
		emit_cmalloc(addr, size, mm);
	} else if (likely(calloc_fits(addr, size, stack))) {
		emit_calloc(fn, addr, size, mm, stack);
	} else {
		struct fsk_rec *h = emit_reserve(FSK_REC_ALLOC,
						 sizeof(struct fsk_rec) + sizeof(struct fsk_alloc),
						 FSK_TS_CLOCK);
		if (h) {
			struct fsk_alloc *a = (void *)(h + 1);
			a->addr = addr;
			a->size = size;
			a->stack = stack;
			a->fn = fn;
			a->flags = (uint16_t)(!p ? FSK_AF_FAILED : mm ? FSK_AF_MMAPPED : 0);
			emit_commit();
		}
	}
	brk_check();
}

static void rec_alloc(uint16_t fn, void *p, size_t size)
{
	if (G.sample_bytes && p && !sample_add(p)) {
		brk_check();
		return;
	}
	rec_alloc_stack(fn, p, size, FSK_STACK(0));
}

/* A recorded malloc through the general recorder, errno kept. */
static inline __attribute__((always_inline)) void *malloc_recorded(size_t size)
{
	HOT_BEGIN();
	void *p = real.malloc(size);
	int err = errno;
	rec_alloc(FSK_FN_MALLOC, p, size);
	HOT_END(err);
	return p;
}

/* Everything but the sampled pass; `chosen`: sampling picked this call. */
static __attribute__((noinline)) void *malloc_slow(size_t size, int chosen)
{
	if (unlikely(!real.malloc)) {
		resolve_all();
		if (!real.malloc)
			return resolve_boot_alloc(size, 16);
	}
	if (!chosen && !hot_on()) {
		if (unlikely(!G.active) && pre_on()) {
			void *p = real.malloc(size);
			pre_alloc(FSK_FN_MALLOC, p, size);
			return p;
		}
		return real.malloc(size);
	}
	return malloc_recorded(size);
}

/* malloc_fast's record when its fast path could not finish: `done`, the
 * record is written and only the break moved. */
static __attribute__((noinline)) void *malloc_fast_more(void *p, size_t size, int done)
{
	uint64_t a = (uint64_t)(uintptr_t)p;
	if (!done) {
		if (unlikely(!caddr_fits(a) || size >> FSK_CM_SIZE_BITS)) {
			int err = errno;
			rec_alloc(FSK_FN_MALLOC, p, size);
			HOT_END(err);
			return p;
		}
		emit_cmalloc(a, size, chunk_mmapped(p));
	}
	brk_check();
	STRICT_LEAVE();
	t_guard = 0;
	return p;
}

/* malloc_fast after glibc's call: a leaf but for the tail call of
 * malloc_fast_more, so it saves one register, not five (their saves and
 * restores were a sixth of its instructions). Its fast path is the commonest one:
 * a record that reuses the thread's last stamp, the break not moved. */
static __attribute__((noinline)) void *malloc_fast_rec(void *p, size_t size)
{
	uint64_t a = (uint64_t)(uintptr_t)p;
	int done = 0;
	if (likely(caddr_fits(a) && !(size >> FSK_CM_SIZE_BITS))) {
		int mm = chunk_mmapped(p);
		done = emit_compact_reuse(mm ? ~0ull : a, EMIT_C_MALLOC, a, size, 0, FSK_FN_MALLOC, mm);
		if (likely(done) &&
		    likely(__curbrk == atomic_load_explicit(&s_last_brk, memory_order_relaxed))) {
			STRICT_LEAVE();
			t_guard = 0;
			return p;
		}
	}
	return malloc_fast_more(p, size, done);
}

/* Every call recorded, no stacks (FSK_HOT_FAST): no errno save. Each
 * recording path is a function of its own, entered by a jump from the
 * dispatcher below, which makes no frame. */
static __attribute__((noinline)) void *malloc_fast(size_t size)
{
	if (unlikely(t_guard))
		return malloc_slow(size, 0);
	HOT_BEGIN();
	return malloc_fast_rec(real.malloc(size), size);
}

/* Every call recorded, with stacks (FSK_HOT_STACKS): CALLOC written
 * inline. Its frame record is the one the stack capture starts from: the
 * dispatcher jumps here, so the return address in it is the program's. */
static __attribute__((noinline)) void *malloc_stacks(size_t size)
{
	if (unlikely(t_guard))
		return malloc_slow(size, 0);
	HOT_BEGIN();
	void *p = real.malloc(size);
	int err = errno;
	uint64_t a = (uint64_t)(uintptr_t)p;
	uint32_t stack = unwind_stack(0);
	if (likely(calloc_fits(a, size, stack))) {
		emit_calloc(FSK_FN_MALLOC, a, size, chunk_mmapped(p), stack);
		brk_check();
	} else {
		rec_alloc_stack(FSK_FN_MALLOC, p, size, stack);
	}
	HOT_END(err);
	return p;
}

/* A dispatcher with no frame of its own (FSK_FRAMELESS): one load says
 * which path; the recording paths are tail calls, and the sampled pass (a
 * call not chosen) is a few loads and a jump to glibc's malloc. */
FSK_EXPORT FSK_FRAMELESS void *malloc(size_t size)
{
	int m = G.hot;
	if (likely(m == FSK_HOT_FAST))
		return malloc_fast(size);
	if (likely(m == FSK_HOT_STACKS))
		return malloc_stacks(size);
	if (likely(m == FSK_HOT_SAMPLED) && likely(!t_guard)) {
		if (likely(!sample_take(size)))
			return real.malloc(size);
		return malloc_slow(size, 1);
	}
	if (!G.malloc_on && likely(real.malloc) && likely(PRE_DONE())) /* --no-malloc: a tail call */
		return real.malloc(size);
	return malloc_slow(size, 0);
}

FSK_EXPORT void *calloc(size_t n, size_t size)
{
	if (unlikely(!real.calloc)) {
		resolve_all();
		if (!real.calloc) {
			size_t total;
			if (__builtin_mul_overflow(n, size, &total))
				return NULL;
			return resolve_boot_alloc(total, 16);
		}
	}
	if (!hot_on()) {
		if (unlikely(!G.active) && pre_on()) {
			void *p = real.calloc(n, size);
			pre_alloc(FSK_FN_CALLOC, p, __builtin_mul_overflow(n, size, &n) ? (size_t)-1 : n);
			return p;
		}
		return real.calloc(n, size);
	}
	size_t total;
	if (__builtin_mul_overflow(n, size, &total))
		total = (size_t)-1;
	SAMPLE_PASS(total, real.calloc(n, size));
	HOT_BEGIN();
	void *p = real.calloc(n, size);
	int err = errno;
	rec_alloc(FSK_FN_CALLOC, p, total);
	HOT_END(err);
	return p;
}

/* A FREE record, compact when it fits; fn FSK_FN_REALLOC only for a
 * sampled realloc that releases a recorded block (trace.h). */
static void rec_free(void *p, uint16_t fn)
{
	uint64_t a = (uint64_t)(uintptr_t)p;
	if (likely(!(a & FSK_CADDR_FLAGS) && fn == FSK_FN_FREE)) {
		emit_cfree(a, chunk_mmapped(p));
		return;
	}
	struct fsk_rec *h = emit_reserve(FSK_REC_FREE, sizeof(struct fsk_rec) + sizeof(struct fsk_free),
					 FSK_TS_CLOCK);
	if (h) {
		struct fsk_free *f = (void *)(h + 1);
		f->addr = a;
		f->stack = 0;
		f->fn = fn;
		f->flags = chunk_mmapped(p) ? FSK_AF_MMAPPED : 0;
		emit_commit();
	}
}

/* Everything but the sampled pass; `recorded`: sampling found p's block
 * recorded (and took it out of the set). */
static __attribute__((noinline)) void free_slow(void *p, int recorded)
{
	if (!recorded) {
		if (unlikely(!p || resolve_is_boot(p)))
			return;
		if (unlikely(!real.free)) {
			resolve_all();
			if (!real.free)
				return;
		}
		if (!hot_on()) {
			if (unlikely(!G.active) && pre_on())
				pre_free(p); /* before the block can be another's */
			real.free(p);
			return;
		}
	}
	HOT_BEGIN();
	int err = errno;
	rec_free(p, FSK_FN_FREE);
	real.free(p);
	brk_check();
	HOT_END(err);
}

/* free_all when its record needs more than its fast path. */
static __attribute__((noinline)) void free_all_more(void *p, uint64_t a, int mm)
{
	emit_cfree(a, mm);
	real.free(p);
	brk_check();
	STRICT_LEAVE();
	t_guard = 0;
}

/* Every call recorded (stacks or not): a CFREE written before the block
 * goes back (so it sorts before another thread's malloc that gets the
 * address). No value lives across glibc's call, and the record's other
 * cases are a tail call: one register is saved, not five. */
static __attribute__((noinline)) void free_all(void *p, uint64_t a)
{
	HOT_BEGIN();
	int mm = chunk_mmapped(p);
	if (unlikely(!emit_compact_reuse(mm ? ~0ull : a, EMIT_C_FREE, a, 0, 0, 0, mm)))
		return free_all_more(p, a, mm);
	real.free(p);
	brk_check();
	STRICT_LEAVE();
	t_guard = 0;
}

/* Under sampling, a block sampling may have recorded, and every call
 * that records nothing: --no-malloc, a guarded call, no tracing. */
static __attribute__((noinline)) void free_other(void *p)
{
	int recorded = 0;
	if (G.sample_bytes && hot_on()) {
		recorded = sample_remove(p);
		if (!recorded && !resolve_is_boot(p)) {
			real.free(p);
			return;
		}
	}
	if (!G.malloc_on && likely(real.free) && likely(PRE_DONE()) && !resolve_is_boot(p)) { /* --no-malloc */
		real.free(p);
		return;
	}
	free_slow(p, recorded);
}

/* A dispatcher with no frame, as malloc. Under sampling a block the
 * filter says was not recorded goes straight to glibc (free(NULL) too). */
FSK_EXPORT FSK_FRAMELESS void free(void *p)
{
	uint64_t a = (uint64_t)(uintptr_t)p;
	int m = G.hot;
	if (likely(m == FSK_HOT_FAST || m == FSK_HOT_STACKS) && likely(!t_guard) &&
	    likely(caddr_fits(a) && !resolve_is_boot(p)))
		return free_all(p, a);
	if (likely(m == FSK_HOT_SAMPLED) && likely(!t_guard) && likely(!sample_maybe(p)) &&
	    !resolve_is_boot(p))
		return real.free(p);
	free_other(p);
}

/* The stamp of a realloc's record: FSK_TS_CLOCK_OWN when both blocks lie
 * in heap windows only this thread allocates in (emit.h). The old block is
 * gone by now (glibc may have unmapped it): only its address is looked
 * at, which is enough, since another thread's record of a block in our
 * window always counts as foreign. A NULL block is no block. */
static uint64_t ts_realloc(void *old, void *p)
{
	struct tbuf *t = t_buf;
	if (!t || (old && !emit_clock_own(t, (uint64_t)(uintptr_t)old, 0)) ||
	    (p && (chunk_mmapped(p) || !emit_clock_own(t, (uint64_t)(uintptr_t)p, 1))))
		return FSK_TS_CLOCK;
	return FSK_TS_CLOCK_OWN;
}

static void rec_realloc(uint16_t fn, void *old, void *p, size_t size)
{
	uint32_t stack = FSK_STACK(0);
	struct fsk_rec *h = emit_reserve(FSK_REC_REALLOC,
					 sizeof(struct fsk_rec) + sizeof(struct fsk_realloc),
					 ts_realloc(old, p));
	if (h) {
		struct fsk_realloc *r = (void *)(h + 1);
		r->old_addr = (uint64_t)old;
		r->new_addr = (uint64_t)p;
		r->size = size;
		r->stack = stack;
		r->fn = fn;
		r->flags = (uint16_t)((!p && size) ? FSK_AF_FAILED : chunk_mmapped(p) ? FSK_AF_MMAPPED : 0);
		emit_commit();
	}
	brk_check();
}

/* Records of a realloc under sampling (trace.h): `was` = the old block was
 * recorded (already taken out of the set), `take` = this call is chosen. */
static void sample_realloc_rec(uint16_t fn, void *old, void *p, size_t size, int was, int take)
{
	if (!was && !take) {
		brk_quiet();
		return;
	}
	HOT_BEGIN();
	int err = errno;
	if (!p && size) { /* failed: the old block is still live */
		if (was)
			sample_add(old);
		if (take)
			rec_realloc(fn, old, NULL, size);
	} else if (!p) { /* size 0 freed it */
		rec_realloc(fn, old, NULL, 0);
	} else if (take && sample_add(p)) {
		rec_realloc(fn, old, p, size);
	} else if (was) {
		rec_free(old, fn);
		brk_check();
	}
	HOT_END(err);
}

/* A block from the bootstrap arena moving to the real heap. */
static void *boot_realloc(void *old, size_t size)
{
	void *p = real.malloc ? real.malloc(size) : resolve_boot_alloc(size, 16);
	if (p && old) {
		size_t room = 64 * 1024; /* never read past the arena */
		for (size_t i = 0; i < size && i < room && resolve_is_boot((char *)old + i); i++)
			((char *)p)[i] = ((char *)old)[i];
	}
	return p;
}

FSK_EXPORT void *realloc(void *old, size_t size)
{
	if (unlikely(!real.realloc || resolve_is_boot(old))) {
		resolve_all();
		if (!real.realloc || resolve_is_boot(old))
			return boot_realloc(old, size);
	}
	if (!hot_on()) {
		if (unlikely(!G.active) && pre_on()) {
			void *p = real.realloc(old, size);
			pre_realloc(FSK_FN_REALLOC, old, p, size);
			return p;
		}
		return real.realloc(old, size);
	}
	if (G.sample_bytes) {
		int was = old && sample_remove(old), take = sample_take(size);
		t_guard = 1;
		void *p = real.realloc(old, size);
		t_guard = 0;
		sample_realloc_rec(FSK_FN_REALLOC, old, p, size, was, take);
		return p;
	}
	HOT_BEGIN();
	void *p = real.realloc(old, size);
	int err = errno;
	rec_realloc(FSK_FN_REALLOC, old, p, size);
	HOT_END(err);
	return p;
}

FSK_EXPORT void *reallocarray(void *old, size_t n, size_t size)
{
	size_t total;
	if (unlikely(!real.reallocarray || resolve_is_boot(old))) {
		resolve_all();
		if (!real.reallocarray || resolve_is_boot(old)) {
			if (__builtin_mul_overflow(n, size, &total)) {
				errno = ENOMEM;
				return NULL;
			}
			return boot_realloc(old, total);
		}
	}
	if (!hot_on()) {
		if (unlikely(!G.active) && pre_on()) {
			void *p = real.reallocarray(old, n, size);
			pre_realloc(FSK_FN_REALLOCARRAY, old, p,
				    __builtin_mul_overflow(n, size, &total) ? (size_t)-1 : total);
			return p;
		}
		return real.reallocarray(old, n, size);
	}
	if (__builtin_mul_overflow(n, size, &total))
		total = (size_t)-1;
	if (G.sample_bytes) {
		int was = old && sample_remove(old), take = sample_take(total);
		t_guard = 1;
		void *p = real.reallocarray(old, n, size);
		t_guard = 0;
		sample_realloc_rec(FSK_FN_REALLOCARRAY, old, p, total, was, take);
		return p;
	}
	HOT_BEGIN();
	void *p = real.reallocarray(old, n, size);
	int err = errno;
	rec_realloc(FSK_FN_REALLOCARRAY, old, p, total);
	HOT_END(err);
	return p;
}

FSK_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	if (unlikely(!real.posix_memalign)) {
		resolve_all();
		if (!real.posix_memalign) {
			*out = resolve_boot_alloc(size, align);
			return *out ? 0 : ENOMEM;
		}
	}
	if (!hot_on()) {
		int r = real.posix_memalign(out, align, size);
		if (unlikely(!G.active) && pre_on())
			pre_alloc(FSK_FN_POSIX_MEMALIGN, r == 0 ? *out : NULL, size);
		return r;
	}
	SAMPLE_PASS(size, real.posix_memalign(out, align, size));
	HOT_BEGIN();
	int saved = errno;
	int r = real.posix_memalign(out, align, size);
	rec_alloc(FSK_FN_POSIX_MEMALIGN, r == 0 ? *out : NULL, size);
	HOT_END(saved);
	return r;
}

#define ALIGNED_HOOK(name, fn_id, params, args, size_expr, boot_expr) \
	FSK_EXPORT void *name params                                  \
	{                                                             \
		if (unlikely(!real.name)) {                           \
			resolve_all();                                \
			if (!real.name)                               \
				return boot_expr;                     \
		}                                                     \
		if (!hot_on()) {                                      \
			void *p = real.name args;                     \
			if (unlikely(!G.active) && pre_on())          \
				pre_alloc(fn_id, p, size_expr);       \
			return p;                                     \
		}                                                     \
		SAMPLE_PASS(size_expr, real.name args);               \
		HOT_BEGIN();                                          \
		void *p = real.name args;                             \
		int err = errno;                                      \
		rec_alloc(fn_id, p, size_expr);                       \
		HOT_END(err);                                         \
		return p;                                             \
	}

ALIGNED_HOOK(aligned_alloc, FSK_FN_ALIGNED_ALLOC, (size_t align, size_t size), (align, size), size,
	     resolve_boot_alloc(size, align))
ALIGNED_HOOK(memalign, FSK_FN_MEMALIGN, (size_t align, size_t size), (align, size), size,
	     resolve_boot_alloc(size, align))
ALIGNED_HOOK(valloc, FSK_FN_VALLOC, (size_t size), (size), size, resolve_boot_alloc(size, 4096))
ALIGNED_HOOK(pvalloc, FSK_FN_PVALLOC, (size_t size), (size), size, resolve_boot_alloc(size, 4096))

/* ---- the program's own brk/sbrk ---- */

FSK_EXPORT int brk(void *addr)
{
	if (unlikely(!real.brk))
		resolve_all();
	if (!G.active || t_guard || t_vfork_child)
		return real.brk(addr);
	t_guard = 1;
	void *old = __curbrk;
	int r = real.brk(addr);
	int err = errno;
	if (r == 0 && __curbrk != old) {
		atomic_store(&s_last_brk, __curbrk);
		t_map_hook = 1; /* an allocator's own break: its lock may be held */
		brk_record(old, __curbrk, FSK_BRK_CALL, 1);
		t_map_hook = 0;
	}
	t_guard = 0;
	errno = err;
	return r;
}

FSK_EXPORT void *sbrk(intptr_t incr)
{
	if (unlikely(!real.sbrk))
		resolve_all();
	if (!G.active || t_guard || t_vfork_child || incr == 0)
		return real.sbrk(incr);
	t_guard = 1;
	void *old = real.sbrk(incr);
	int err = errno;
	if (old != (void *)-1) {
		atomic_store(&s_last_brk, __curbrk);
		t_map_hook = 1;
		brk_record(old, __curbrk, FSK_BRK_SBRK, 1);
		t_map_hook = 0;
	}
	t_guard = 0;
	errno = err;
	return old;
}

/* The flusher, each tick while sampling: most calls do not look at the
 * break, so a move they made is recorded here if no recorded call did. */
FSK_HIDDEN void heap_brk_poll(void)
{
	brk_check_as(0); /* the flusher's own stack would mislead */
}

/* The break at stream start, so the first malloc growth is a change:
 * glibc sets __curbrk at its first sbrk, so ask for it if none came yet. */
FSK_HIDDEN void heap_init(void)
{
	if (!__curbrk)
		real.sbrk(0);
	atomic_store(&s_last_brk, __curbrk);
}
