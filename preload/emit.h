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

struct tbuf {
	_Atomic int32_t lock;      /* tid of the thread writing it out, 0 = free */
	_Atomic uint32_t committed;/* bytes of whole records */
	uint32_t flushed;          /* bytes already written (under lock) */
	uint32_t pending;          /* size of the reserved, uncommitted record */
	_Atomic int inuse;
	int32_t tid;
	uint64_t records;
	char *data;
	/* owner only: */
	uint64_t base_ns;          /* CBASE of the compact records, 0 = none yet */
	uint64_t last_ns;          /* latest stamp: records never go back */
	uint64_t ref_tsc, ref_ns;  /* last resynchronisation of the clock */
	uint64_t last_cns;         /* stamp of the last compact record, 0 = none */
	uint64_t clock;            /* emit_clock when the clock was last read */
	uint32_t reuse;            /* records that may still take last_ns */
	uint32_t grant;            /* reuse after a clock read while emit_clock
	                              stays `clock`: EMIT_REUSE or 0 */
	uint32_t retry;            /* grant 0: clock reads until emit_clock_claim
	                              looks again (the owner may have gone quiet) */
} __attribute__((aligned(128))); /* owners of neighbouring slots never share a line */

/* The calling thread's buffer, NULL until its first record. */
FSK_HIDDEN extern __thread struct tbuf *t_buf;
/* ns per TSC tick << 32 (0 = not calibrated) and the ticks after which a
 * thread takes a new (TSC, CLOCK_MONOTONIC) pair (0 until calibrated). */
FSK_HIDDEN extern _Atomic uint64_t emit_tsc_mult, emit_tsc_resync;

/*
 * Reading the clock (rdtsc, ~13 ns) is half of a traced malloc, so a
 * compact record may take the stamp of its thread's previous record, up
 * to EMIT_REUSE times in a row, while its thread is the only one that
 * recorded since the flusher's last tick: that thread owns emit_clock
 * (tid in bits 0-31). Any other thread that reads the clock sets bit 32
 * (EMIT_CLOCK_MULTI) before its record and so before the call's effect
 * (the block it freed, the block it returned) is visible to anyone; the
 * owner sees it at its next record and reads the clock from then on. So a
 * reused stamp never sorts before a record of another thread that happened
 * before it. Each thread reads the clock before it looks at emit_clock
 * (emit_clock_after_read), so a stamp taken before a change of the word
 * is older than any stamp the change allows to be reused. Every flusher tick (50 ms,
 * and every millisecond while a thread owns the clock) starts a new epoch
 * (bits 33-63) with no owner: a thread then reads the
 * clock at its next record, and after a quiet spell no stale stamp is
 * reused. An owner that recorded nothing for a millisecond can lose the
 * clock to another thread (a program whose main thread waits for one
 * worker). A thread that becomes the owner reuses no stamp read before it
 * did: another thread may have read the clock later yet still believed
 * itself the owner. trace.h says what precision that leaves.
 */
#define EMIT_REUSE 63u
#define EMIT_EPOCH_NS (1000ull * 1000) /* epochs while a thread owns the clock */
#define EMIT_CLOCK_MULTI (1ull << 32)
#define EMIT_CLOCK_EPOCH (1ull << 33)
FSK_HIDDEN extern _Atomic uint64_t emit_clock;

/* The clock was read for b's thread (ns) and emit_clock after it (st),
 * differing from b->clock or with b->retry run out: claims ownership,
 * takes it from an owner that went quiet, or marks a second thread; sets
 * b->clock, b->grant, b->reuse and b->retry. */
FSK_HIDDEN void emit_clock_claim(struct tbuf *b, uint64_t st, uint64_t ns);

/* The flusher: emit_clock_owned() says one thread owns the clock (and so
 * may reuse stamps); emit_clock_tick() starts a new epoch, which it does
 * every EMIT_EPOCH_NS while that lasts, so a reused stamp is stale by
 * about a millisecond at most unless the flusher itself is kept from
 * running, and by one flush interval (50 ms) at worst. */
FSK_HIDDEN int emit_clock_owned(void);
/* Set by the flusher while it ticks every EMIT_EPOCH_NS; a thread that
 * takes the clock kicks it awake when it is not. */
FSK_HIDDEN extern _Atomic int emit_fast_ticks;
FSK_HIDDEN void emit_clock_tick(void);

/* After a clock read of b's thread: may the next records reuse it?
 * `tsc` is the counter value read: the address of the load depends on it
 * (and with 0, which the CPU does not know to be 0), so the load cannot
 * run before rdtsc has, as lfence would ensure at ~9 ns a record. */
static inline __attribute__((always_inline)) void emit_clock_after_read(struct tbuf *b,
									 uint64_t tsc, uint64_t ns)
{
	uintptr_t zero;
	__asm__("and $0, %0" : "=r"(zero) : "0"(tsc));
	uint64_t st = atomic_load_explicit((_Atomic uint64_t *)((char *)&emit_clock + zero),
					   memory_order_acquire);
	if (likely(st == b->clock) && likely(b->grant || --b->retry))
		b->reuse = b->grant;
	else
		emit_clock_claim(b, st, ns);
}

/* The tiny record (trace.h) of malloc(size) = a or free(a), or 0 when
 * the values do not fit one. */
static inline uint64_t emit_tiny_malloc(uint64_t a, uint64_t size, int mmapped)
{
	if ((a >> (FSK_TINY_ADDR_BITS + 4)) | (size >> FSK_TINY_SIZE_BITS) | (a & 15))
		return 0;
	return FSK_TINY | FSK_TINY_MALLOC | (mmapped ? FSK_TINY_MMAPPED : 0) |
	       (size & ((1u << FSK_TINY_SIZE_LOW) - 1)) | (a >> 4) << 16 |
	       (size >> FSK_TINY_SIZE_LOW) << FSK_TINY_SIZE_SHIFT;
}

static inline uint64_t emit_tiny_free(uint64_t a, int mmapped)
{
	if ((a >> (FSK_TINY_ADDR_BITS + 4)) | (a & 15))
		return 0;
	return FSK_TINY | (mmapped ? FSK_TINY_MMAPPED : 0) | (a >> 4) << 16;
}

/* Writes the compact record whose first word (type, size; dt filled in
 * here) is `head` when the fast path cannot; errno kept. */
FSK_HIDDEN void emit_compact_slow(uint32_t head, uint64_t w1, uint64_t w2);

/* Appends and commits a compact record of `size` bytes (16 or 24) whose
 * second word is w1 and third (24) w2; or, when the stamp is the one of
 * the thread's last compact record, the tiny record `tiny` if not 0.
 * Called with t_guard set. */
static inline __attribute__((always_inline)) void emit_compact(uint16_t type, uint32_t size,
							       uint64_t w1, uint64_t w2,
							       uint64_t tiny)
{
	struct tbuf *b = t_buf;
	uint32_t head = type | size << 16;
	if (unlikely(!b)) {
		emit_compact_slow(head, w1, w2);
		return;
	}
	uint32_t c = atomic_load_explicit(&b->committed, memory_order_relaxed);
	if (unlikely(c + size > TB_CAP)) {
		emit_compact_slow(head, w1, w2);
		return;
	}
	uint64_t ns = b->last_ns;
	if (likely(b->reuse) &&
	    likely(atomic_load_explicit(&emit_clock, memory_order_acquire) == b->clock)) {
		b->reuse--;
	} else {
		uint64_t tsc = __rdtsc(), d = tsc - b->ref_tsc;
		if (unlikely(d >= atomic_load_explicit(&emit_tsc_resync, memory_order_relaxed))) {
			emit_compact_slow(head, w1, w2);
			return;
		}
		uint64_t mult = atomic_load_explicit(&emit_tsc_mult, memory_order_relaxed);
		uint64_t now = b->ref_ns + ((d * mult) >> 32);
		ns = now < ns ? ns : now; /* a thread's records never go back */
		emit_clock_after_read(b, tsc, ns);
	}
	uint64_t *r = (void *)(b->data + c);
	if (tiny && ns == b->last_cns) {
		r[0] = tiny;
		b->records++;
		atomic_store_explicit(&b->committed, c + 8, memory_order_release);
		return;
	}
	uint64_t dt = ns - b->base_ns;
	if (unlikely(dt > UINT32_MAX || !b->base_ns)) {
		emit_compact_slow(head, w1, w2);
		return;
	}
	b->last_ns = ns;
	b->last_cns = ns;
	r[0] = head | dt << 32;
	r[1] = w1;
	if (size > 16)
		r[2] = w2;
	b->records++;
	atomic_store_explicit(&b->committed, c + size, memory_order_release);
}

#endif
