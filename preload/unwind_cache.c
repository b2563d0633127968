/*
 * The per-thread stack cache: a loop that allocates asks for the same few
 * stacks again and again, and this answers them without libunwind.
 *
 * unw_step here costs about half a microsecond a frame (its register-state
 * cache misses and each step masks signals twice), unw_backtrace about
 * 50-70 ns a stack; neither tells what changed since the last call. Each
 * of a thread's CACHE_WAYS ways holds, for one stack learnt once with
 * unw_step, its ips and the stack words that prove it. A capture takes the
 * program's first frame (ip, sp, rbp) from our own frame-pointer chain
 * (the preload is built with frame pointers); for a way whose frame 0 it
 * is, it reads back what an unwinder would read: each return address at
 * CFA - 8, each saved rbp that a frame pushed, and the CFA slot of a
 * realigned (DRAP) frame. Same ip, sp and rbp and the same slots give the
 * same CFA rule results, so the same stack; any difference sends the
 * capture to the next way, then to unw_backtrace.
 *
 * Exactness rests on every CFA rule being rsp + c, rbp + 16 or gcc's DRAP
 * *(rbp - 8), which is what gcc and clang emit; a stack through a signal
 * frame is never cached. Learning is budgeted (a walk of 25 frames costs
 * what ~200 captures do): a thread learns a stack only when unw_backtrace
 * gave it again among its CACHE_RECENT latest misses, and at most
 * 8 + captures / 4096 times, so a program whose stacks never settle pays
 * at most a few percent for it.
 *
 * The cache is per thread (a block of a process-wide pool, taken when the
 * thread first learns; 48 bytes of TLS) and read only by its thread, with
 * t_unwinding set: a signal handler that interrupts a lookup
 * or a walk records no stack rather than seeing it half written. A fork
 * child keeps it: its stack is a copy, and it inherits the ids.
 */
#define UNW_LOCAL_ONLY
#include <errno.h>
#include <libunwind.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "fsk.h"
#include "scan.h"

#define CACHE_WAYS 4                    /* stacks per thread */
#define CACHE_RECENT 4                  /* missed stacks remembered */
#define CACHE_FRAMES 32
#define CACHE_CHECKS 48                 /* words read back per hit, at most */
#define BPLOC_FRAME0 1u                 /* rbp still in frame 0's register */

/* What a walk learns of frame i: sp is the CFA of frame i - 1, bploc
 * where the rbp of frame i was read. */
struct cache_walk {
	uint64_t sp[CACHE_FRAMES], bp[CACHE_FRAMES], bploc[CACHE_FRAMES];
};

/* One learnt stack. */
struct cache_way {
	uint64_t ip[CACHE_FRAMES];
	uint64_t sp0, bp0;              /* frame 0 */
	int needbp0;                    /* its rbp must match too */
	uint32_t n;                     /* frames; 0 = empty */
	uint32_t nchk;
	uint32_t id;                    /* its interned id */
	uint64_t used;                  /* captures count at its last hit */
	struct {
		uint64_t addr, val;     /* a stack word and what it must hold */
	} chk[CACHE_CHECKS];
};

/* A thread's ways, from a pool shared by the process: a thread takes a
 * block the first time it learns a stack, and a block whose thread is
 * gone (the kernel says so) goes to the next thread that needs one. No
 * thread-exit hook needed, and threads that never learn cost nothing. */
struct unwind_cache {
	_Atomic pid_t owner;            /* thread id; 0 = free */
	struct cache_way way[CACHE_WAYS];
};

/* What stays in TLS: small, so threads with small stacks keep them. */
struct cache_thread {
	struct unwind_cache *c;         /* NULL until the thread first learns */
	uint32_t recent[CACHE_RECENT];  /* ids of the latest missed stacks */
	uint32_t recent_pos;
	uint32_t claim_wait;            /* misses before trying the pool again */
	uint64_t captures, learnt;      /* for the learning budget */
};

#define CACHE_POOL 64                   /* blocks: threads caching at once */

static struct unwind_cache *_Atomic s_pool;
static __thread struct cache_thread t_cache;

static inline uint64_t peek(uint64_t addr)
{
	return *(const volatile uint64_t *)(uintptr_t)addr;
}

/* The program frame that called into us: the first return address on our
 * frame-pointer chain outside our text [lo, hi). When the cache holds the
 * stack from that frame up: its id; else 0. f is always set (f->ip 0: the
 * chain looked wrong, which it never should). */
__attribute__((noinline)) uint32_t unwind_cache_lookup(struct unwind_frame *f, uint64_t lo,
						       uint64_t hi)
{
	uint64_t *fp = __builtin_frame_address(0);
	f->ip = 0;
	if (!lo || lo >= hi)
		return 0;
	for (int i = 0;; i++) {
		uint64_t ret = fp[1];
#if defined(__x86_64__)
		/* the vfork stub keeps no frame: the rbp above it is the
		 * program's, which may be anything */
		if (ret >= (uint64_t)(uintptr_t)fsk_vfork_lo && ret < (uint64_t)(uintptr_t)fsk_vfork_hi)
			return 0;
#endif
		if (ret < lo || ret >= hi) {
			f->ip = ret;
			f->sp = (uint64_t)(uintptr_t)(fp + 2);
			f->bp = fp[0];
			break;
		}
		uint64_t *up = (uint64_t *)(uintptr_t)fp[0];
		if (i == 16 || up <= fp || ((uintptr_t)up & 7))
			return 0;
		fp = up;
	}
	struct cache_thread *t = &t_cache;
	struct unwind_cache *c = t->c;
	if (!c)
		return 0;
	for (struct cache_way *w = c->way; w < c->way + CACHE_WAYS; w++) {
		if (!w->n || f->ip != w->ip[0] || f->sp != w->sp0 || (w->needbp0 && f->bp != w->bp0))
			continue;
		uint64_t diff = 0;
		for (uint32_t k = 0; k < w->nchk; k++)
			diff |= peek(w->chk[k].addr) ^ w->chk[k].val;
		if (diff)
			continue; /* another way may hold the same frame 0 */
		w->used = ++t->captures;
		return w->id;
	}
	return 0;
}

static int cache_check(struct cache_way *c, uint64_t addr, uint64_t val)
{
	if (c->nchk == CACHE_CHECKS)
		return 0;
	c->chk[c->nchk].addr = addr;
	c->chk[c->nchk].val = val;
	c->nchk++;
	return 1;
}

/* What proves the CFA of frame i (from its caller's values in w) and the
 * caller's ip and rbp: 0 when frame i is not cacheable. Same ip, sp and
 * (where it counts) rbp give the same CFA under the rules gcc and clang
 * emit: rsp + c, rbp + 16 (a frame pointer), *(rbp - 8) (DRAP). */
static int cache_frame(struct cache_way *c, const struct cache_walk *w, uint32_t i)
{
	uint64_t cfa = w->sp[i + 1], loc = w->bploc[i + 1], bp = w->bp[i];
	int saved = loc != w->bploc[i];
	/* a pushed rbp lies in the pushing frame, between its sp and CFA */
	if (saved && (loc < w->sp[i] || loc + 8 > cfa))
		return 0;
	/* Only an rsp-based frame that saved the rbp it got may have another
	 * rbp: frame 0's is compared at the lookup, the others' are read
	 * back where they were saved (or are frame i - 1's, unchanged). */
	if (i == 0)
		c->needbp0 = !saved || cfa == bp + 16 || loc == bp;
	if (saved && loc == bp && cfa != bp + 16) {
		/* DRAP: the CFA was read at rbp - 8 */
		if (bp - 8 < w->sp[i] || bp > cfa || !cache_check(c, bp - 8, cfa))
			return 0;
	}
	/* the caller's return address (at CFA - 8, checked by the walk) and
	 * its rbp when frame i saved it */
	return cache_check(c, cfa - 8, c->ip[i + 1]) && (!saved || cache_check(c, loc, w->bp[i + 1]));
}

/* Walks the stack from f with unw_step, recording what
 * unwind_cache_lookup checks. The walk must give exactly ips[0..n) (what
 * unw_backtrace gave), ending there because the stack ends (n < depth) or
 * because n == depth. */
static int cache_walk(struct cache_way *c, const struct unwind_frame *f, const uint64_t *ips,
		      uint32_t n, uint32_t depth)
{
	struct cache_walk w;
	unw_context_t uc;
	unw_cursor_t cur;
	if (unw_getcontext(&uc) < 0)
		return 0;
	/* as if captured in frame 0 at its call: unw_init_local treats the
	 * ip as a return address. Other registers do not take part in the
	 * CFA rules the cache accepts. */
	uc.uc_mcontext.gregs[REG_RIP] = (greg_t)f->ip;
	uc.uc_mcontext.gregs[REG_RSP] = (greg_t)f->sp;
	uc.uc_mcontext.gregs[REG_RBP] = (greg_t)f->bp;
	uint64_t ctx_bp = (uint64_t)(uintptr_t)&uc.uc_mcontext.gregs[REG_RBP];
	if (unw_init_local(&cur, &uc) < 0)
		return 0;
	c->ip[0] = f->ip;
	c->sp0 = w.sp[0] = f->sp;
	c->bp0 = w.bp[0] = f->bp;
	c->needbp0 = 1;
	w.bploc[0] = BPLOC_FRAME0;
	c->nchk = 0;
	for (uint32_t i = 0;; i++) {
		if (c->ip[i] != ips[i])
			return 0;
		if (i + 1 == n)
			return n == depth || unw_step(&cur) == 0;
		if (unw_step(&cur) <= 0 || unw_is_signal_frame(&cur) > 0)
			return 0;
		unw_word_t ip, sp, bp;
		unw_save_loc_t ra, bl;
		if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || unw_get_reg(&cur, UNW_REG_SP, &sp) < 0 ||
		    unw_get_reg(&cur, UNW_X86_64_RBP, &bp) < 0 ||
		    unw_get_save_loc(&cur, UNW_X86_64_RIP, &ra) < 0 ||
		    unw_get_save_loc(&cur, UNW_X86_64_RBP, &bl) < 0)
			return 0;
		/* return address at CFA - 8, rbp from memory (or frame 0's) */
		if (ra.type != UNW_SLT_MEMORY || ra.u.addr != sp - 8 || sp <= w.sp[i] ||
		    bl.type != UNW_SLT_MEMORY)
			return 0;
		c->ip[i + 1] = ip;
		w.sp[i + 1] = sp;
		w.bp[i + 1] = bp;
		w.bploc[i + 1] = bl.u.addr == ctx_bp ? BPLOC_FRAME0 : bl.u.addr;
		if (!cache_frame(c, &w, i))
			return 0;
	}
}

/* Was id among the latest missed stacks? Remembers it. */
static int cache_recent(struct cache_thread *t, uint32_t id)
{
	for (uint32_t i = 0; i < CACHE_RECENT; i++)
		if (t->recent[i] == id)
			return 1;
	t->recent[t->recent_pos++ % CACHE_RECENT] = id;
	return 0;
}

/* Is thread tid of this process gone? errno is the hook's: kept. */
static int cache_gone(pid_t tid)
{
	int e = errno;
	int gone = syscall(SYS_tgkill, (pid_t)G.pid, tid, 0) < 0 && errno == ESRCH;
	errno = e;
	return gone;
}

/* A free block of the pool for this thread (a dead thread's when none is
 * free), emptied; NULL when every block is in use. */
static struct unwind_cache *cache_claim(void)
{
	struct unwind_cache *pool = atomic_load(&s_pool);
	if (!pool) {
		struct unwind_cache *m = scan_map(CACHE_POOL * sizeof(*m)), *none = NULL;
		if (!m)
			return NULL;
		if (atomic_compare_exchange_strong(&s_pool, &none, m))
			pool = m;
		else {
			scan_unmap(m, CACHE_POOL * sizeof(*m));
			pool = none;
		}
	}
	pid_t self = sys_gettid();
	for (int pass = 0; pass < 2; pass++) {
		for (struct unwind_cache *c = pool; c < pool + CACHE_POOL; c++) {
			pid_t o = atomic_load(&c->owner);
			if ((o && (!pass || !cache_gone(o))) || !atomic_compare_exchange_strong(&c->owner, &o, self))
				continue;
			for (int i = 0; i < CACHE_WAYS; i++) {
				c->way[i].n = 0;
				c->way[i].used = 0;
			}
			return c;
		}
	}
	return NULL;
}

/* In a fork child, on the thread that forked: its block is still its own
 * (the copy), under its new thread id; the blocks of the parent's other
 * threads are a dead thread's for the next claim. The parent's latest
 * misses are forgotten: its fork's stack is among them, and the child's
 * FORK record has the same one, which the child would then learn at once
 * with unw_step (two sigprocmask calls a frame), every child, mostly to
 * exit soon after. A child learns what it misses twice itself. */
void unwind_cache_fork_child(void)
{
	if (t_cache.c)
		atomic_store(&t_cache.c->owner, sys_gettid());
	for (uint32_t i = 0; i < CACHE_RECENT; i++)
		t_cache.recent[i] = 0;
	t_cache.recent_pos = 0;
}

/* After unw_backtrace gave ips[0..n), interned as id, for the frame f: learn that stack into the least recently used way when
 * it was among the latest missed ones and the budget allows. */
void unwind_cache_missed(const struct unwind_frame *f, const uint64_t *ips, uint32_t n,
			 uint32_t depth, uint32_t id)
{
	struct cache_thread *t = &t_cache;
	t->captures++;
	if (!id || !f->ip || !cache_recent(t, id) || n > CACHE_FRAMES ||
	    t->learnt >= 8 + t->captures / 4096)
		return;
	if (!t->c) {
		/* a full pool is tried again only now and then */
		if (t->claim_wait) {
			t->claim_wait--;
			return;
		}
		t->c = cache_claim();
		if (!t->c) {
			t->claim_wait = 64;
			return;
		}
	}
	struct unwind_cache *c = t->c;
	struct cache_way *w = c->way;
	for (struct cache_way *v = c->way; v < c->way + CACHE_WAYS; v++)
		if (v->used < w->used)
			w = v;
	t->learnt++;
	w->n = 0;
	if (!cache_walk(w, f, ips, n, depth))
		return;
	w->n = n;
	w->id = id;
	w->used = t->captures;
}
