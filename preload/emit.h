/*
 * The per-thread buffer and the inline fast path of a compact malloc
 * record (trace.h), for emit.c and the malloc hooks (heap.c) only.
 *
 * A traced malloc costs what this path costs, so it is one straight line
 * in the hook: the thread's buffer, room, the TSC clock still fresh and the
 * thread's CBASE still in reach; then three stores and a release store of
 * `committed`. Everything else (first record of a thread, buffer full,
 * clock resync, a new CBASE) is emit_compact_slow() in emit.c, which is
 * also where errno is saved: the fast path makes no call that could set it.
 */
#ifndef FORKSCOPE_PRELOAD_EMIT_H
#define FORKSCOPE_PRELOAD_EMIT_H

#include <stdatomic.h>
#include <x86intrin.h>

#include "fsk.h"

#define TB_CAP (128u * 1024u)
#define TB_HEAD 16u               /* room for the CTX of the first block */
#define TB_PROBE 6u               /* fills per way of a probe (tb_handoff_tune) */

struct tbuf {
	_Atomic int32_t lock;      /* tid of the thread writing it out, 0 = free */
	_Atomic uint32_t committed;/* bytes of whole records */
	uint32_t cap;              /* owner only: committed stays under it, the
	                              end of a write that ends the stream at a
	                              TB_ALIGN boundary where it can (tb_cap) */
	uint32_t flushed;          /* bytes already written (under lock) */
	uint32_t pending;          /* size of the reserved, uncommitted record */
	_Atomic int inuse;
	int32_t tid;
	uint64_t records;
	char *data;                /* the buffer records go to */
	char *spare;               /* an empty second buffer, NULL = none yet */
	char *full;                /* a full one left to the flusher, NULL = none */
	uint32_t full_from, full_to; /* its part not written yet */
	_Atomic uint64_t full_ns;  /* when the thread last filled a buffer */
	/* owner only: */
	uint64_t base_ns;          /* CBASE of the compact records, 0 = none yet */
	uint64_t last_ns;          /* latest stamp: records never go back */
	uint64_t ref_tsc, ref_ns;  /* last resynchronisation of the clock */
	uint64_t last_cns;         /* stamp of the last compact record, 0 = none */
	uint64_t last_caddr;       /* its block's address (trace.h, version 5) */
	uint32_t last_cstack;      /* stack id of the last compact allocation */
	uint64_t clock;            /* emit_clock when the clock was last read */
	uint32_t reuse;            /* records that may still take last_ns */
	uint32_t grant;            /* reuse after a clock read while emit_clock
	                              stays `clock`: EMIT_REUSE or 0 */
	uint64_t own_win;          /* a heap window only this thread allocates
	                              in (EMIT_WIN_SHIFT), ~0 = none yet */
	uint64_t own_win2;         /* the one before */
	uint64_t rate_ns, rate_recs; /* the start of the window over which
	                              emit_clock_claim measures its rate */
	int hot;                   /* that rate makes reused stamps pay */
	/* which way of writing a full buffer is faster here (tb_handoff_tune) */
	uint32_t ho_iv[2][TB_PROBE - 1]; /* fill intervals, us: [0] written
	                              by the thread, [1] left to the flusher */
	uint32_t ho_left;          /* fills the choice holds before the next probe */
	uint8_t ho_n;              /* fills of the probe so far */
	uint8_t ho_pick;           /* the choice: 1 leave it to the flusher */
} __attribute__((aligned(128))); /* owners of neighbouring slots never share a line */

/* The calling thread's buffer, NULL until its first record. */
FSK_HIDDEN extern __thread struct tbuf *t_buf;
/* ns per TSC tick << 32 (0 = not calibrated) and the ticks after which a
 * thread takes a new (TSC, CLOCK_MONOTONIC) pair (0 until calibrated). */
FSK_HIDDEN extern _Atomic uint64_t emit_tsc_mult, emit_tsc_resync;
/* The TSC's calibration (emit.c): the process's first (TSC, clock) pair
 * not yet taken, being taken, or taken; or PLAIN: the TSC is unusable
 * (the kernel keeps time otherwise), and every record reads
 * CLOCK_MONOTONIC itself, in the fast path as in the slow one. */
enum { EMIT_CAL_UNSET, EMIT_CAL_TAKING, EMIT_CAL_FIRST, EMIT_CAL_PLAIN };
FSK_HIDDEN extern _Atomic int emit_cal_state;

/*
 * Reading the clock (rdtsc, ~12 ns; clock_gettime, ~27 ns, where the TSC
 * is unusable) is half of a traced malloc or more, so a compact record
 * may take the stamp of its thread's previous record, up to EMIT_REUSE
 * times in a row (EMIT_REUSE_PLAIN where each read is a clock_gettime),
 * when both of these hold:
 *  - its block lies in a heap window (64 MiB of address space, the size
 *    and alignment of a glibc arena heap) in which no other thread of the
 *    process has allocated: only this thread's own records can come
 *    before it for that block;
 *  - emit_clock is what the thread saw when it read the clock, and has no
 *    EMIT_CLOCK_MULTI.
 * Every other record (a block of another thread's window, a block glibc
 * mmapped, a lifecycle, scan or mmap record, ...) sets EMIT_CLOCK_MULTI
 * before its effect (the block it freed, the block it returned, the fork)
 * is visible to anyone, when another thread has a buffer: a thread that
 * then records sees the word changed and reads the clock from then on. So
 * a reused stamp never sorts before a record of another thread that
 * happened before it and concerns the same block, nor before any record
 * of another thread other than a compact record of that thread's own
 * window. Each thread reads the clock before it looks at emit_clock
 * (emit_clock_after_read), and a stamp read before a look that found the
 * word changed is never reused, so a reused stamp is never older than a
 * change of the word it did not see. Every flusher tick (50 ms, and every
 * millisecond while some thread reuses stamps: EMIT_CLOCK_REUSING) starts
 * a new epoch (bits 33-63) with neither bit, which bounds how stale a
 * reused stamp gets. trace.h says what precision that leaves.
 *
 * Only a thread that records fast reuses stamps: at least one record
 * every EMIT_HOT_NS over its last EMIT_REUSE or more. A reuse saves ~10 ns
 * and makes the flusher tick every millisecond, which costs a
 * fork-heavy program more than that: each tick a wake-up, and a second
 * thread running in the mm makes each fork and COW fault of the program
 * flush the other CPU's TLB by interrupt (a bash loop of /bin/true, whose
 * shell allocates a little between forks: ~2 context switches a fork,
 * 3% of the loop's time).
 */
#define EMIT_REUSE 63u
/* The same for the dearer clock: its reads then cost a record about what
 * rdtsc's do at EMIT_REUSE (1-thread malloc row, events only, 25
 * shuffled runs: 0.1409 -> 0.1360 s at the first quartile, 1.96x ->
 * 1.89x). A fast thread's stamp is then at most ~4 us old instead of
 * ~1 us (the epochs bound it as before). */
#define EMIT_REUSE_PLAIN 255u
#define EMIT_HOT_NS 2000u
#define EMIT_EPOCH_NS (1000ull * 1000) /* epochs while a thread reuses stamps */
#define EMIT_CLOCK_REUSING 1ull
#define EMIT_CLOCK_MULTI (1ull << 32)
#define EMIT_CLOCK_EPOCH (1ull << 33)
#define EMIT_WIN_SHIFT 26 /* 64 MiB: glibc's HEAP_MAX_SIZE on 64-bit */
FSK_HIDDEN extern _Atomic uint64_t emit_clock;

/* The clock was read for b's thread and emit_clock after it (st),
 * differing from b->clock or for a record not `own`: sets EMIT_CLOCK_MULTI
 * for the latter (emit_clock_global), b->clock, b->grant and b->reuse,
 * and EMIT_CLOCK_REUSING when it grants. A thread not hot gets no grant
 * and b->clock ~0, so each of its records comes back here, until its
 * rate makes it hot. ns: the time just read for the record. */
FSK_HIDDEN void emit_clock_claim(struct tbuf *b, uint64_t st, int own, uint64_t ns);

/* A record stamped ts (read before the call) that is not a compact one of
 * the thread's own window, before its effect is visible: sets
 * EMIT_CLOCK_MULTI when another thread has a buffer (so may be reusing a
 * stamp). */
FSK_HIDDEN void emit_clock_global(uint64_t ts);

/* Is block address blk (~0: glibc mmapped it) in a heap window only b's
 * thread allocates in? `claim`: an allocation, which takes a window no
 * thread has yet. Caches the answer in b->own_win; sets no bit of
 * emit_clock (a record not own does that when it reads the clock). */
FSK_HIDDEN int emit_clock_own(struct tbuf *b, uint64_t blk, int claim);

/* The flusher: emit_clock_reused() says a thread may be reusing stamps;
 * emit_clock_tick() starts a new epoch, which it does every EMIT_EPOCH_NS
 * while that lasts, so a reused stamp is stale by about a millisecond at
 * most unless the flusher itself is kept from running, and by one flush
 * interval (50 ms) at worst. */
FSK_HIDDEN int emit_clock_reused(void);
/* A thread set EMIT_CLOCK_REUSING in this epoch (EMIT_CLOCK_MULTI or not). */
FSK_HIDDEN int emit_clock_reusing(void);
/* Set by the flusher while it ticks every EMIT_EPOCH_NS; a thread that
 * sets EMIT_CLOCK_REUSING kicks it awake when it is not. */
FSK_HIDDEN extern _Atomic int emit_fast_ticks;
FSK_HIDDEN void emit_clock_tick(void);

/* emit_clock, loaded once v (a counter or clock value just read) is
 * known: the address of the load depends on v (and with 0, which the CPU
 * does not know to be 0), so the load cannot run before the read has, as
 * lfence would ensure at ~9 ns a record. */
static inline __attribute__((always_inline)) uint64_t emit_clock_load_after(uint64_t v)
{
	uintptr_t zero;
	__asm__("and $0, %0" : "=r"(zero) : "0"(v));
	return atomic_load_explicit((_Atomic uint64_t *)((char *)&emit_clock + zero),
				    memory_order_acquire);
}

/* After a clock read of b's thread (tsc: the counter value read) for a
 * record, `own` when it is a compact one of the thread's own window: may
 * the next records reuse it? A record not `own` sets EMIT_CLOCK_MULTI only
 * after this load, so after its stamp was read (a tick between the two
 * would otherwise clear the bit before the stamp existed). */
static inline __attribute__((always_inline)) void emit_clock_after_read(struct tbuf *b,
									 uint64_t tsc, uint64_t ns, int own)
{
	uint64_t st = emit_clock_load_after(tsc);
	if (likely(st == b->clock) && likely(own))
		b->reuse = b->grant;
	else
		emit_clock_claim(b, st, own, ns);
}

/* The time for a record of b's thread without a new (TSC, clock) pair:
 * the TSC scaled from the thread's pair, or CLOCK_MONOTONIC itself where
 * the TSC is unusable. 0 when a pair is needed (not calibrated yet, or
 * the thread's is too old): clock_resync. *read: a value the read made
 * (emit_clock_load_after). */
static inline __attribute__((always_inline)) uint64_t emit_clock_quick(const struct tbuf *b, uint64_t *read)
{
	/* resync is 0 until calibrated, and stays 0 where the TSC is unusable */
	uint64_t resync = atomic_load_explicit(&emit_tsc_resync, memory_order_relaxed), tsc;
	if (likely(resync) && likely((tsc = __rdtsc()) - b->ref_tsc < resync)) {
		uint64_t mult = atomic_load_explicit(&emit_tsc_mult, memory_order_relaxed);
		*read = tsc;
		return b->ref_ns + (((tsc - b->ref_tsc) * mult) >> 32);
	}
	if (!resync && atomic_load_explicit(&emit_cal_state, memory_order_relaxed) == EMIT_CAL_PLAIN)
		return *read = sys_now_ns();
	return 0;
}

/* What a compact record stands for (emit_compact): a free, a malloc
 * without a stack, or an allocation of any function with its stack. */
enum { EMIT_C_FREE, EMIT_C_MALLOC, EMIT_C_ALLOC };

/* Whether signed d fits n bits. */
#define EMIT_FITS(d, n) ((uint64_t)((d) + (1ll << ((n) - 1))) < (1ull << (n)))

/* Whether a malloc record may name its stack as "the thread's previous
 * allocation's" (MSMALLOC, TLATER): always for one without a stack. */
static inline __attribute__((always_inline)) int emit_same_stack(const struct tbuf *b, int ev,
								 uint32_t stack, uint32_t fn)
{
	return ev == EMIT_C_MALLOC || (fn == FSK_FN_MALLOC && stack == b->last_cstack);
}

/* After a compact, tiny or micro record of event ev (block a) that ends
 * at `end`: what the next ones count from, and the commit. */
static inline __attribute__((always_inline)) void emit_compact_done(struct tbuf *b, uint32_t end,
								   uint64_t a, int ev, uint32_t stack)
{
	b->last_caddr = a;
	if (ev != EMIT_C_FREE)
		b->last_cstack = ev == EMIT_C_MALLOC ? 0 : stack;
	b->records++;
	atomic_store_explicit(&b->committed, end, memory_order_release);
}

/* The version 5 tiny or micro record (trace.h) of the event, as its word
 * and its length (4 or 8) in *n; 0 when none holds it. d: the block's
 * address minus the thread's previous compact record's, >> 4. */
static inline __attribute__((always_inline)) uint64_t emit_small(const struct tbuf *b, int ev, uint64_t a,
								  int64_t d, uint64_t size, uint32_t stack,
								  uint32_t fn, int mm, uint32_t *n)
{
	*n = 4;
	if (ev == EMIT_C_FREE) {
		if (likely(!mm) && likely(EMIT_FITS(d, FSK_M_FREE_BITS)))
			return FSK_TINY | FSK_MICRO | ((uint64_t)d & 0xfff) | ((uint64_t)d >> 12 & 0xffff) << 16;
		*n = 8;
		return a >> (FSK_TINY_ADDR_BITS + 4) ? 0 : FSK_TINY | (mm ? FSK_T5_MMAPPED : 0) | (a >> 4) << 16;
	}
	if (emit_same_stack(b, ev, stack, fn) && !mm && size >> FSK_M_SIZE_BITS == 0 &&
	    EMIT_FITS(d, FSK_M_DELTA_BITS))
		return FSK_TINY | FSK_MICRO | (ev == EMIT_C_MALLOC ? FSK_TK_MALLOC : FSK_TK_ALLOC) << 12 |
		       size | ((uint64_t)d & 1) << 11 | ((uint64_t)d >> 1 & 0xffff) << 16;
	*n = 8;
	if (ev == EMIT_C_MALLOC)
		return (a >> (FSK_TINY_ADDR_BITS + 4)) | (size >> FSK_T5_SIZE_BITS) ? 0 :
		       FSK_TINY | FSK_TK_MALLOC << 12 | (mm ? FSK_T5_MMAPPED : 0) |
		       (size & ((1u << FSK_T5_SIZE_LOW) - 1)) | (a >> 4) << 16 |
		       (size >> FSK_T5_SIZE_LOW) << FSK_TINY_SIZE_SHIFT;
	if (mm || size >> FSK_T5_ASIZE_BITS || stack >> FSK_T5_STACK_BITS ||
	    !EMIT_FITS(d, FSK_T5_DELTA_BITS))
		return 0;
	return FSK_TINY | FSK_TK_ALLOC << 12 | size | ((uint64_t)d & 0xffffff) << 16 |
	       (uint64_t)stack << 40 | (uint64_t)fn << 60;
}

/* Writes the compact record whose first word (type, size; dt filled in
 * here) is `head`, of block blk, when the fast path cannot; errno kept.
 * a, ev, stack: as emit_compact's. */
FSK_HIDDEN void emit_compact_slow(uint32_t head, uint64_t w1, uint64_t w2, uint64_t blk,
				  uint64_t a, int ev, uint32_t stack);

/* A 4-byte-aligned store of word w of n bytes (records other than
 * micro ones start at multiples of 4 only where a micro one came). */
typedef uint64_t emit_u64a4 __attribute__((aligned(4), may_alias));
typedef uint32_t emit_u32a4 __attribute__((aligned(4), may_alias));

/* The tiny or micro record of the event (emit_small) at c, b's committed
 * bytes, committed, when one holds it: 1; else 0, with nothing changed.
 * For a record that takes the stamp of the thread's last compact one. */
static inline __attribute__((always_inline)) int emit_compact_small(struct tbuf *b, uint32_t c, int ev,
								   uint64_t a, uint64_t asize,
								   uint32_t stack, uint32_t fn, int mm)
{
	uint32_t n;
	uint64_t w = emit_small(b, ev, a, (int64_t)(a - b->last_caddr) >> 4, asize, stack, fn, mm, &n);
	if (unlikely(!w))
		return 0;
	char *r = b->data + c;
	if (n == 4)
		*(emit_u32a4 *)r = (uint32_t)w;
	else
		*(emit_u64a4 *)r = w;
	emit_compact_done(b, c + n, a, ev, stack);
	return 1;
}

/* Appends and commits a compact record of `size` bytes (16 or 24) whose
 * second word is w1 and third (24) w2; or, when the stamp is the one of
 * the thread's last compact record, the tiny or micro record (emit_small)
 * of event ev (block address a, 16-aligned; size, stack id and fn of an
 * allocation; mm: glibc mmapped the block) where one holds it. blk: the
 * block's address, ~0 when glibc mmapped it. Called with t_guard set. */
static inline __attribute__((always_inline)) void emit_compact(uint16_t type, uint32_t size,
							       uint64_t w1, uint64_t w2, uint64_t blk,
							       int ev, uint64_t a, uint64_t asize,
							       uint32_t stack, uint32_t fn, int mm)
{
	struct tbuf *b = t_buf;
	uint32_t head = type | size << 16;
	if (unlikely(!b)) {
		emit_compact_slow(head, w1, w2, blk, a, ev, stack);
		return;
	}
	uint32_t c = atomic_load_explicit(&b->committed, memory_order_relaxed);
	if (unlikely(c + size + 4 > b->cap)) {
		emit_compact_slow(head, w1, w2, blk, a, ev, stack);
		return;
	}
	uint64_t ns = b->last_ns;
	int own = blk >> EMIT_WIN_SHIFT == b->own_win;
	if (likely(b->reuse) && likely(own) &&
	    likely(atomic_load_explicit(&emit_clock, memory_order_acquire) == b->clock)) {
		b->reuse--;
	} else {
		if (!own)
			own = emit_clock_own(b, blk, type != FSK_REC_CFREE);
		uint64_t tsc, now = emit_clock_quick(b, &tsc);
		if (unlikely(!now)) {
			emit_compact_slow(head, w1, w2, blk, a, ev, stack);
			return;
		}
		ns = now < ns ? ns : now; /* a thread's records never go back */
		emit_clock_after_read(b, tsc, ns, own);
	}
	if (ns == b->last_cns && likely(emit_compact_small(b, c, ev, a, asize, stack, fn, mm)))
		return;
	char *r = b->data + c;
	int64_t d = (int64_t)(a - b->last_caddr) >> 4;
	/* a stamp of its own, close after the last: TLATER */
	uint64_t tdt = ns - b->last_cns;
	if (b->last_cns && tdt >> FSK_TL_DT_BITS == 0 && !mm && EMIT_FITS(d, 64 - FSK_TL_DELTA_SHIFT) &&
	    (ev == EMIT_C_FREE || (asize >> FSK_T5_SIZE_LOW == 0 && emit_same_stack(b, ev, stack, fn)))) {
		uint64_t w = FSK_TINY | FSK_TK_LATER << 12 | tdt << 16 | (uint64_t)d << FSK_TL_DELTA_SHIFT;
		if (ev != EMIT_C_FREE)
			w |= FSK_TL_MALLOC | asize | (ev == EMIT_C_ALLOC ? FSK_TL_SAME_STACK : 0);
		*(emit_u64a4 *)r = w;
		b->last_ns = ns;
		b->last_cns = ns;
		emit_compact_done(b, c + 8, a, ev, stack);
		return;
	}
	uint64_t dt = ns - b->base_ns;
	if (unlikely(dt > UINT32_MAX || !b->base_ns)) {
		emit_compact_slow(head, w1, w2, blk, a, ev, stack);
		return;
	}
	if (c & 4) { /* the full forms stay 8-aligned in the buffer */
		*(emit_u32a4 *)r = FSK_MPAD;
		r += 4;
		c += 4;
	}
	b->last_ns = ns;
	b->last_cns = ns;
	uint64_t *q = (uint64_t *)r;
	q[0] = head | dt << 32;
	q[1] = w1;
	if (size > 16)
		q[2] = w2;
	emit_compact_done(b, c + size, a, ev, stack);
}

/* emit_compact's commonest case alone, for hooks whose fast path makes
 * no call (so saves no register): the thread reuses its last compact
 * record's stamp, and a tiny or micro record holds the event. 0, with
 * nothing changed, when that is not so: then emit_compact does it all. */
static inline __attribute__((always_inline)) int emit_compact_reuse(uint64_t blk, int ev, uint64_t a,
								   uint64_t asize, uint32_t stack,
								   uint32_t fn, int mm)
{
	struct tbuf *b = t_buf;
	if (unlikely(!b))
		return 0;
	uint32_t c = atomic_load_explicit(&b->committed, memory_order_relaxed);
	if (unlikely(c + 12 > b->cap) || unlikely(!b->reuse) || unlikely(b->last_ns != b->last_cns) ||
	    unlikely(blk >> EMIT_WIN_SHIFT != b->own_win) ||
	    unlikely(atomic_load_explicit(&emit_clock, memory_order_acquire) != b->clock))
		return 0;
	if (unlikely(!emit_compact_small(b, c, ev, a, asize, stack, fn, mm)))
		return 0;
	b->reuse--;
	return 1;
}

#endif
