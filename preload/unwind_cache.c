/*
 * The per-thread stack cache: a loop that allocates asks for the same few
 * stacks again and again, and this answers them without libunwind.
 *
 * unw_step here costs about half a microsecond a frame (its register-state
 * cache misses; a system libunwind.so also masks signals twice a step:
 * preload/libunwind.sh), unw_backtrace about
 * 50-70 ns a stack; neither tells what changed since the last call. Each
 * of a thread's CACHE_WAYS ways holds, for one stack learnt once (from the
 * walk by the rules that gave it, else with unw_step), its ips and the
 * stack words that prove it. A capture takes the
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
 * A stack no way holds is walked by the learnt rules of its return
 * addresses, reusing the thread's last walk (the second half of this
 * file); unw_backtrace is left for what the rules cannot walk.
 *
 * The cache is per thread (a block of a process-wide pool, taken when the
 * thread first learns; 88 bytes of TLS) and read only by its thread, with
 * t_unwinding set: a signal handler that interrupts a lookup
 * or a walk records no stack rather than seeing it half written. A fork
 * child keeps it: its stack is a copy, and it inherits the ids.
 */
#define UNW_LOCAL_ONLY
#include <errno.h>
#include <fcntl.h>
#include <libunwind.h>
#include <linux/magic.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
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
#define RULES_FRAMES 64                 /* deepest walk by the rules */

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
	struct {
		uint64_t addr, val;     /* a stack word and what it must hold */
	} chk[CACHE_CHECKS];
};

/* A thread's ways, from a pool shared by the process: a thread takes a
 * block the first time it learns a stack, and a block whose thread is
 * gone (the kernel says so) goes to the next thread that needs one. No
 * thread-exit hook needed, and threads that never learn cost nothing. */
/* The thread's last walk by the rules (unwind_rules_walk): the state of
 * each frame and what its rule read, so that a later walk that reaches
 * one of these frames in the same state takes the rest from here once
 * the stack words they read still hold what they held. */
struct rules_frame {
	uint64_t sp, bp;
	uint64_t ha, hb;                /* the hash chains (fsk.h) of frames i to n - 1 */
	uint32_t bsave;                 /* frame i saved its caller's rbp at CFA - bsave */
};
struct rules_last {
	uint32_t n;                     /* frames; 0 = none */
	uint32_t ended;                 /* the stack ended at frame n - 1 */
	uint64_t ip[RULES_FRAMES];      /* apart: the walk's result (unwind_rules_walk) */
	struct rules_frame f[RULES_FRAMES]; /* the rest of a frame together: a join
					 * moves it in one go */
};

/* The thread's memo of stacks it interned: a stack that misses the ways
 * and the last one is still mostly one the thread met before (cc1: 6 900
 * distinct in 286 000 captures), and the shared index gave its id only
 * after 1.4 probes and a compare on average, each a cache and TLB miss
 * (a fifth of a missed capture's time, when the index still compared
 * every frame in a 36 MiB mapping).
 * Direct-mapped by the stack's hash; an entry is trusted on 96 bits of
 * two hashes of its return addresses. Its ids are the stack group's, so
 * a block a new thread takes over keeps its memo. */
#define MEMO_SLOTS 4096                 /* 64 KiB a block */
/* A thread uses its memo from its MEMO_AFTER-th missed capture on: each
 * stack put there first touches a page of it, which a short-lived image
 * (a program making three allocations: 6 page faults more) never earns
 * back. A fork child reads its parent's, and puts stacks there once it
 * made MEMO_AFTER captures itself (a write copies the page). */
#define MEMO_AFTER 1024
struct memo_ent {
	uint64_t h1;
	uint32_t h2, id;
};

/* The thread's rules at hand: the stack group's table is 256 KiB, and a
 * rule looked up there took 2.6 probes on average in cc1 (1 M lookups in
 * 296 000 captures), each a likely cache miss. Direct-mapped by return
 * address; an entry is the table's (key and word, with its check bits),
 * and so exactly as good: a rule is a property of the code at its key.
 * Used as the memo is (from MEMO_AFTER captures on, written in a fork
 * child only once it made that many itself): its pages would cost a
 * short-lived image more faults than it saves. */
#define RC_BITS 10                      /* 16 KiB a block */
struct rc_ent {
	uint64_t key, w;
};

/* owner and last first, on one page: a fork child's first stack (its
 * exit's) writes both, and each page of the copied block it writes costs
 * it a copy (~12 us here); the ways, read there, come after them. */
struct unwind_cache {
	_Atomic pid_t owner;            /* thread id; 0 = free */
	struct rules_last last;
	struct cache_way way[CACHE_WAYS];
	struct rc_ent rc[1u << RC_BITS];
	struct memo_ent memo[MEMO_SLOTS];
} __attribute__((aligned(4096))); /* each block starts a page */
_Static_assert(sizeof(struct rules_last) + 8 <= 4096, "a block's owner and last walk share its first page");

/* What stays in TLS: small, so threads with small stacks keep them. */
struct cache_thread {
	struct unwind_cache *c;         /* NULL until the thread first learns */
	uint32_t recent[CACHE_RECENT];  /* ids of the latest missed stacks */
	uint32_t recent_pos;
	uint32_t claim_wait;            /* misses before trying the pool again */
	uint64_t captures, learnt;      /* for the learning budget */
	uint64_t memo_put_from;         /* captures before the memo takes stacks */
	int rc_mapped;                  /* the block's rc and memo mapped (cache_rc_map) */
	uint32_t dirty;                 /* pages of the block written since the last fork */
	/* each way's captures count at its last hit: kept here, not in the
	 * block, so that a hit writes no page of it (a process that forks
	 * copied the block's first page at each fork's stack, a fault of
	 * ~12 us here) */
	uint64_t used[CACHE_WAYS];
};

#define CACHE_POOL 64                   /* blocks: threads caching at once */

static struct unwind_cache *_Atomic s_pool;
/* Rules learnt (FORKSCOPE_UNWIND_CHECK's NOTE): all, and those libunwind
 * gave (rule_learn) */
static _Atomic uint64_t s_learnt, s_learnt_unw;
static _Atomic uint64_t s_group_puts;   /* rules put into the group's table (group_put) */
static _Atomic uint32_t s_xwin;         /* windows of the trace's rules mapped (xrule_map) */
static _Atomic uint64_t s_xpage[4];     /* its pages mapped alone, bit a page */
/* FORKSCOPE_UNWIND_CHECK=3 (rule_compare) */
static _Atomic uint64_t s_cfi_checked, s_cfi_differed, s_cfi_left;
static uint64_t s_cfi_first[5];         /* ip, table's rule, rule_step's, the step's
					 * result and CFA - sp */
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
	fsk_program_frame(f, lo, hi);
	if (!f->ip)
		return 0;
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
		t->used[w - c->way] = ++t->captures;
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

/* A way's frame 0 is f: what a walk learning it starts from. */
static void cache_start(struct cache_way *c, struct cache_walk *w, const struct unwind_frame *f)
{
	c->ip[0] = f->ip;
	c->sp0 = w->sp[0] = f->sp;
	c->bp0 = w->bp[0] = f->bp;
	c->needbp0 = 1;
	w->bploc[0] = BPLOC_FRAME0;
	c->nchk = 0;
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
	cache_start(c, &w, f);
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

/* What cache_walk learns, from the thread's last walk by the rules when
 * that walk gave this very stack (its frames' states are what unw_step
 * would find: tests/t_unwind_rules.py), so without libunwind. */
static int cache_from_rules(struct cache_way *c, const struct rules_last *l,
			    const struct unwind_frame *f, uint32_t n, uint32_t depth)
{
	struct cache_walk w;
	if (!n || n > CACHE_FRAMES || (n < depth && !l->ended) || l->ip[0] != f->ip ||
	    l->f[0].sp != f->sp || l->f[0].bp != f->bp)
		return 0;
	cache_start(c, &w, f);
	for (uint32_t i = 0; i + 1 < n; i++) {
		c->ip[i + 1] = l->ip[i + 1];
		w.sp[i + 1] = l->f[i + 1].sp;
		w.bp[i + 1] = l->f[i + 1].bp;
		/* where frame i + 1's rbp was read: where frame i saved it,
		 * else where frame i's own was */
		w.bploc[i + 1] = l->f[i].bsave ? l->f[i + 1].sp - l->f[i].bsave : w.bploc[i];
		if (!cache_frame(c, &w, i))
			return 0;
	}
	return 1;
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
		if (atomic_compare_exchange_strong(&s_pool, &none, m)) {
			pool = m;
			/* the block this thread is about to take: its owner,
			 * last walk and ways, in one go (sys_populate) */
			uint64_t pg[] = { (uint64_t)(uintptr_t)m, (uint64_t)(uintptr_t)m + 4096 };
			sys_populate(pg, 2);
		} else {
			scan_unmap(m, CACHE_POOL * sizeof(*m));
			pool = none;
		}
	}
	pid_t self = sys_gettid();
	/* a block never used (its owner is never reset to 0) is empty: taken
	 * with a write first, one page fault (a read first cost two, and
	 * emptying its ways a third) */
	for (struct unwind_cache *c = pool; c < pool + CACHE_POOL; c++) {
		pid_t o = 0;
		if (atomic_compare_exchange_strong(&c->owner, &o, self)) {
			if (c != pool) { /* the rest of its last walk and ways */
				uint64_t pg = (uint64_t)(uintptr_t)c + 4096;
				sys_populate(&pg, 1);
			}
			return c;
		}
	}
	for (struct unwind_cache *c = pool; c < pool + CACHE_POOL; c++) {
		pid_t o = atomic_load(&c->owner);
		if (!cache_gone(o) || !atomic_compare_exchange_strong(&c->owner, &o, self))
			continue;
		for (int i = 0; i < CACHE_WAYS; i++)
			c->way[i].n = 0;
		c->last.n = 0;
		return c;
	}
	return NULL;
}

/* Page p of the thread's block c, written: bit p of t->dirty. */
static inline void cache_dirty(struct cache_thread *t, const struct unwind_cache *c, const void *at)
{
	uint64_t p = ((uint64_t)(uintptr_t)at - (uint64_t)(uintptr_t)c) >> 12;
	if (p < 32)
		t->dirty |= 1u << p;
}

uint32_t unwind_memo_get(uint64_t h1, uint32_t h2)
{
	struct unwind_cache *c = t_cache.c;
	if (!c || t_cache.captures < MEMO_AFTER)
		return 0;
	const struct memo_ent *m = &c->memo[(h1 >> 17) & (MEMO_SLOTS - 1)];
	return m->h1 == h1 && m->h2 == h2 ? m->id : 0;
}

void unwind_memo_put(uint64_t h1, uint32_t h2, uint32_t id)
{
	struct unwind_cache *c = t_cache.c;
	if (!c || t_cache.captures < MEMO_AFTER || t_cache.captures < t_cache.memo_put_from)
		return;
	struct memo_ent *m = &c->memo[(h1 >> 17) & (MEMO_SLOTS - 1)];
	cache_dirty(&t_cache, c, m);
	m->h1 = h1;
	m->h2 = h2;
	m->id = id;
}

/* The pages of the calling thread's block it wrote since its last fork,
 * at most max (out: an address in each), forgotten: taken before a fork
 * for the parent's side of it (fork_populate). A process that forks in a loop writes the
 * same ones (its last walk, a rule cache slot two return addresses take
 * in turn) after each fork, and each first write copied a page the
 * child shared (a bash loop: 2 faults of ~12 us an iteration). */
int unwind_cache_dirty_pages(uint64_t *out, int max)
{
	struct unwind_cache *c = t_cache.c;
	uint32_t d = t_cache.dirty;
	int n = 0;
	if (d)
		t_cache.dirty = 0;
	for (uint32_t p = 0; c && d && n < max; p++, d >>= 1)
		if (d & 1)
			out[n++] = (uint64_t)(uintptr_t)c + 4096ull * p;
	return n;
}

/* The thread's block's first page, whose owner a fork child writes
 * (fork_populate). */
uint64_t unwind_cache_hot_page(void)
{
	return (uint64_t)(uintptr_t)t_cache.c;
}

/* In a fork child, on the thread that forked: its block is still its own
 * (the copy), under its new thread id; the blocks of the parent's other
 * threads are a dead thread's for the next claim. The parent's latest
 * misses are forgotten: its fork's stack is among them, and the child's
 * FORK record has the same one, which the child would then learn at once
 * with unw_step (a table search for each frame it has not met), every
 * child, mostly to exit soon after. A child learns what it misses twice
 * itself. */
void unwind_cache_fork_child(void)
{
	atomic_store(&s_cfi_checked, 0);
	atomic_store(&s_cfi_differed, 0);
	atomic_store(&s_cfi_left, 0);
	atomic_store(&s_learnt, 0);
	atomic_store(&s_learnt_unw, 0);
	atomic_store(&s_group_puts, 0);
	atomic_store(&s_xwin, 0);
	for (uint32_t i = 0; i < sizeof(s_xpage) / sizeof(s_xpage[0]); i++)
		atomic_store(&s_xpage[i], 0);
	if (t_cache.c)
		atomic_store(&t_cache.c->owner, emit_tid()); /* set by emit_reset_child, no system call */
	for (uint32_t i = 0; i < CACHE_RECENT; i++)
		t_cache.recent[i] = 0;
	t_cache.recent_pos = 0;
	t_cache.dirty = 0;
	/* the parent's memo answers, but a page of it written here would be
	 * copied: a child takes stacks into it only once it earned that */
	t_cache.memo_put_from = t_cache.captures + MEMO_AFTER;
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
	uint32_t lru = 0;
	for (uint32_t v = 1; v < CACHE_WAYS; v++)
		if (t->used[v] < t->used[lru])
			lru = v;
	struct cache_way *w = &c->way[lru];
	int ok;
	if (ips == c->last.ip && n == c->last.n) {
		t->learnt++;
		w->n = 0;
		ok = cache_from_rules(w, &c->last, f, n, depth);
	} else {
		if (!unw_enter())
			return;
		t->learnt++;
		w->n = 0;
		t_cache_walking = 1;
		ok = cache_walk(w, f, ips, n, depth);
		t_cache_walking = 0;
		unw_leave();
	}
	cache_dirty(t, c, w);
	cache_dirty(t, c, (const char *)(w + 1) - 1);
	if (!ok)
		return;
	w->n = n;
	w->id = id;
	t->used[lru] = t->captures;
}

/* ---- the rules of return addresses, and walks by them ---- */

/*
 * A stack that misses every way mostly differs from the thread's previous
 * one only in its top few frames (cc1: 2 to 5 of 32), yet unw_backtrace
 * walks all of them, one lookup in its trace cache each. Here each return
 * address gets the rule of its frame once: where the CFA is (rsp + off,
 * or rbp + 16) and where the frame saved its caller's rbp (CFA - bsave, or
 * not at all), read from the object's unwind table (cfi.c), or where that
 * says something the reader does not follow, from one unw_step taken in a
 * cursor set to that frame's state. The rules are a property of the
 * code, so they live in one table for the stack group (a process image
 * and its fork children), in shared memory, each keyed by its return
 * address and the code before it.
 *
 * A walk steps by the rules from the program's first frame, and at each
 * frame looks whether the thread's last walk had a frame with the same ip,
 * sp and rbp: the frames above it are then the same ones, provided the
 * stack words the last walk read from there on (each return address at
 * CFA - 8, each saved rbp) still hold the values it read, which it checks.
 * So a walk reads a rule for each changed frame and one or two words for
 * each unchanged one.
 *
 * Exactness rests on what the ways' rests on: gcc and clang give every
 * frame a CFA of rsp + c or rbp + 16 (or DRAP's *(rbp - 8), which makes a
 * rule "not cacheable", as do signal frames and anything else odd). A rule
 * from a step that was seen to hold both ways (a table's is exact) is used
 * only while both give the same CFA; when they differ the frame is looked
 * at again and the rule keeps only what held both times. A frame with no
 * unwind information (libunwind then
 * guesses from rbp, reading each word only after checking it is mapped),
 * anything else not cacheable, and a full table leave the stack to
 * unw_backtrace. FORKSCOPE_UNWIND_CHECK=1 compares every walk with
 * unw_backtrace (tests/t_unwind_rules.py).
 */
#define RULE_BITS 14                    /* 16384 return addresses */
#define RULE_PAGE_BITS 8                /* 256 entries of 16 bytes a page */
#define RULE_PROBES 64
#define RULE_BUSY 1ull                  /* a slot being filled */
#define RULE_IP_BITS 47                 /* user addresses */
/* A rule: RULE_OFF, RULE_BSAVE / 8 and RF_* in the low 42 bits. */
#define RULE_OFF_MAX 0xffffffull
#define RULE_OFF(w) ((w) & RULE_OFF_MAX)
#define RULE_BSAVE_MASK (0x1fffull << 24)
#define RULE_BSAVE(w) ((((w) >> 24) & 0x1fffull) * 8)
#define RF_RSP (1ull << 37)             /* CFA = rsp + off held */
#define RF_RBP (1ull << 38)             /* CFA = rbp + 16 held */
#define RF_END (1ull << 39)             /* the outermost frame */
#define RF_NO (1ull << 40)              /* not cacheable */
#define RF_SEEN2 (1ull << 41)           /* looked at again once already */
#define RULE_BITS_MASK ((1ull << 42) - 1)

/* An entry: the return address with 17 bits of a hash of the code word
 * before it, and the rule with 22 more. */
struct rule {
	_Atomic uint64_t key;           /* ip | hash >> 47 << 47; 0 free, RULE_BUSY while filled */
	_Atomic uint64_t w;             /* rule | (hash & 0x3fffff) << 42 */
};

/* The table is in the stack table's shared mapping (unwind.c): a fork
 * child's rules are its parent's and its siblings' too, and learning one
 * copies no page. Each 64 KiB of code has its rules in one page of the
 * table while there is room (rule_home), so a small program's rules take
 * a few pages, not all of them. */
static struct rule *s_rules;
_Static_assert(sizeof(struct rule) << RULE_BITS == FSK_RULES_BYTES, "rules table size");
/* The pages of the table that hold a rule, bit p for page p, in the
 * stack table's first page (shared too): a rule is looked for only in a
 * page that holds one. The table's pages are made by the first touch,
 * even a read: a cc1 whose few rules of its own (narrowed ones, RF_NO)
 * sent its later look-ups here read ~30 empty pages of it, each a page
 * fault of ~12 us. A bit is set before its page's first slot is claimed. */
static _Atomic uint64_t *s_rule_pages;
_Static_assert((1u << (RULE_BITS - RULE_PAGE_BITS)) == 64, "a bit a page of the table");

void unwind_rules_attach(void *mem, _Atomic uint64_t *pages)
{
	s_rules = mem;
	s_rule_pages = pages;
}

/* Whether the page of slot h may hold a rule. When not, slot h is free,
 * so a probe from h would stop there. */
static inline int rule_page_used(uint64_t h)
{
	return atomic_load_explicit(s_rule_pages, memory_order_relaxed) >> (h >> RULE_PAGE_BITS & 63) & 1;
}

static struct rule *rules_table(void)
{
	return s_rules;
}

/* A hash of the aligned word holding the last byte of the call before
 * return address ip, which is mapped since the call ran from there. A
 * rule is the rule of (ip, code): a library loaded where another was
 * (dlclose and dlopen, or in another process of the group) has other
 * code there, so it gets a rule of its own and never the other's (39
 * bits of the hash must match). */
static inline uint64_t rule_code(uint64_t ip)
{
	uint64_t x = peek((ip - 1) & ~7ull) * 0x9e3779b97f4a7c15ull;
	return x ^ x >> 29;
}

/* Where the rules of ip are looked for: first near the other rules of its
 * 64 KiB of code, in the first half of the table (home 0), then, when
 * those RULE_PROBES slots are all taken, anywhere in the second half
 * (home 1: dense code, such as cc1's, fills pages of the first). */
static inline uint64_t rule_home(uint64_t ip, int which)
{
	const unsigned half = RULE_BITS - 1;
	if (which)
		return 1u << half | (ip * 0xd6e8feb86659fd93ull) >> (64 - half);
	uint64_t page = ((ip >> 16) * 0xc2b2ae3d27d4eb4full) >> (64 - (half - RULE_PAGE_BITS));
	return page << RULE_PAGE_BITS | (ip * 0x9e3779b97f4a7c15ull) >> (64 - RULE_PAGE_BITS);
}

/* The rule under key among the RULE_PROBES slots of table t (mask: its
 * slots - 1) from slot h whose check bits match `code`, else 0; *stop set
 * when a free slot ended the search (slots are never freed, so the rule
 * is nowhere further). */
static inline __attribute__((always_inline)) uint64_t probe_get(const struct rule *t, uint32_t mask,
								 uint64_t h, uint64_t key, uint64_t code,
								 int *stop)
{
	for (uint32_t i = 0; i < RULE_PROBES; i++) {
		const struct rule *r = &t[(h + i) & mask];
		uint64_t k = atomic_load_explicit(&r->key, memory_order_acquire);
		if (k == key) {
			uint64_t w = atomic_load_explicit(&r->w, memory_order_relaxed);
			if (w >> 42 == (code & 0x3fffff))
				return w & RULE_BITS_MASK;
		} else if (!k) {
			*stop = 1;
			return 0;
		}
	}
	return 0;
}

/* Sets the rule under key (w with its check bits) among the RULE_PROBES
 * slots of t from h; 0 when they are all another's. An entry's key never
 * changes once published, its rule only as a whole word. */
static inline int probe_put(struct rule *t, uint32_t mask, uint64_t h, uint64_t key, uint64_t w,
			    _Atomic uint64_t *pages)
{
	for (uint32_t i = 0; i < RULE_PROBES; i++) {
		struct rule *r = &t[(h + i) & mask];
		uint64_t k = atomic_load_explicit(&r->key, memory_order_acquire);
		if (k == key && atomic_load_explicit(&r->w, memory_order_relaxed) >> 42 == w >> 42) {
			atomic_store_explicit(&r->w, w, memory_order_relaxed);
			return 1;
		}
		if (k)
			continue; /* another's, or one being filled in */
		if (pages)
			atomic_fetch_or_explicit(pages, 1ull << (((h + i) & mask) >> RULE_PAGE_BITS & 63),
						 memory_order_relaxed);
		if (!atomic_compare_exchange_strong(&r->key, &k, RULE_BUSY))
			continue;
		atomic_store_explicit(&r->w, w, memory_order_relaxed);
		atomic_store_explicit(&r->key, key, memory_order_release);
		return 1;
	}
	return 0;
}

/* An entry's key: the return address with 17 bits of its code hash. */
static inline uint64_t rule_key(uint64_t ip, uint64_t code)
{
	return ip | code >> RULE_IP_BITS << RULE_IP_BITS;
}

/* The 22 more bits of the code hash an entry's word holds. */
static inline uint64_t rule_check(uint64_t code)
{
	return (code & 0x3fffff) << 42;
}

/* The rule of return address ip with code hash `code`, 0 when none is
 * known. */
static inline uint64_t rule_get(const struct rule *t, uint64_t ip, uint64_t code)
{
	uint64_t key = rule_key(ip, code), h = rule_home(ip, 0);
	int stop = 0;
	if (!rule_page_used(h))
		return 0;
	uint64_t w = probe_get(t, (1u << RULE_BITS) - 1, h, key, code, &stop);
	if (w || stop || !rule_page_used(h = rule_home(ip, 1)))
		return w;
	return probe_get(t, (1u << RULE_BITS) - 1, h, key, code, &stop);
}

/* Sets the rule of (ip, code); full neighbourhoods keep it out (the walks
 * that need it go to unw_backtrace). */
static void rule_put(struct rule *t, uint64_t ip, uint64_t code, uint64_t rule)
{
	uint64_t key = rule_key(ip, code), w = rule | rule_check(code);
	for (int which = 0; which < 2; which++)
		if (probe_put(t, (1u << RULE_BITS) - 1, rule_home(ip, which), key, w, s_rule_pages))
			return;
}

/* Whether the frame of context uc has an unwind table entry (cur is
 * reused). */
static int rule_has_entry(unw_cursor_t *cur, unw_context_t *uc)
{
	unw_proc_info_t pi;
	return unw_init_local(cur, uc) >= 0 && unw_get_proc_info(cur, &pi) >= 0 &&
	       (pi.format == UNW_INFO_FORMAT_TABLE || pi.format == UNW_INFO_FORMAT_REMOTE_TABLE) &&
	       pi.unwind_info_size;
}

/* One unw_step from a frame in state (ip, sp, bp): its rule, as seen this
 * time. Only rsp and rbp take part in the rules accepted (as in
 * cache_walk), so the other registers of the cursor do not matter. */
/* What one unw_step from a frame found (rule_step), for the comparison
 * with the unwind tables' rule (FORKSCOPE_UNWIND_CHECK=3). */
struct rule_obs {
	int r;                          /* unw_step's result; -1 also when it could not run */
	unw_word_t nsp;                 /* the CFA */
	int bl_mem;                     /* the caller's rbp was found in memory */
	uint64_t bl_addr;               /* there (the frame's own rbp: ctx_bp) */
	uint64_t ctx_bp;
};

static __attribute__((noinline)) uint64_t rule_step(uint64_t ip, uint64_t sp, uint64_t bp,
						    struct rule_obs *o)
{
	unw_context_t uc;
	unw_cursor_t cur;
	o->r = -1;
	if (unw_getcontext(&uc) < 0)
		return RF_NO;
	uc.uc_mcontext.gregs[REG_RIP] = (greg_t)ip;
	uc.uc_mcontext.gregs[REG_RSP] = (greg_t)sp;
	uc.uc_mcontext.gregs[REG_RBP] = (greg_t)bp;
	uint64_t ctx_bp = (uint64_t)(uintptr_t)&uc.uc_mcontext.gregs[REG_RBP];
	if (unw_init_local(&cur, &uc) < 0)
		return RF_NO;
	int r = unw_step(&cur);
	o->r = r;
	if (r == 0) /* the outermost frame, unless libunwind guessed (below) */
		return rule_has_entry(&cur, &uc) ? RF_END : RF_NO;
	unw_word_t nip, nsp, nbp;
	unw_save_loc_t ra, bl;
	if (r < 0 || unw_is_signal_frame(&cur) > 0 || unw_get_reg(&cur, UNW_REG_IP, &nip) < 0 ||
	    unw_get_reg(&cur, UNW_REG_SP, &nsp) < 0 || unw_get_reg(&cur, UNW_X86_64_RBP, &nbp) < 0 ||
	    unw_get_save_loc(&cur, UNW_X86_64_RIP, &ra) < 0 ||
	    unw_get_save_loc(&cur, UNW_X86_64_RBP, &bl) < 0) {
		o->r = -1;
		return RF_NO;
	}
	o->nsp = nsp;
	o->bl_mem = bl.type == UNW_SLT_MEMORY;
	o->bl_addr = bl.u.addr;
	o->ctx_bp = ctx_bp;
	if (ra.type != UNW_SLT_MEMORY || ra.u.addr != nsp - 8)
		o->r = -1;
	/* the return address at CFA - 8, the CFA above the frame */
	if (ra.type != UNW_SLT_MEMORY || ra.u.addr != nsp - 8 || nsp <= sp || (nsp & 7) ||
	    nsp - sp > RULE_OFF_MAX || peek(nsp - 8) != nip)
		return RF_NO;
	uint64_t w = (nsp - sp) | RF_RSP | (nsp == bp + 16 ? RF_RBP : 0);
	/* Where ip has no unwind table entry, libunwind guesses the caller
	 * from rbp (CFA rbp + 16, or the end at rbp 0), checking each word it
	 * reads; a walk that went on from such a guess would not. A frame
	 * that looks like that must have an entry (libunwind makes up a
	 * one-byte one when there is none). Asked only then: the question is
	 * a second search of the tables, and most code keeps no frame
	 * pointer. */
	if ((w & RF_RBP) && !rule_has_entry(&cur, &uc))
		return RF_NO;
	if (bl.type != UNW_SLT_MEMORY)
		return RF_NO;
	if (bl.u.addr == ctx_bp) {
		if (nbp != bp)
			return RF_NO; /* rbp untouched, as it must be then */
		return w;
	}
	/* a pushed rbp lies in the frame; at rbp itself with no rbp + 16
	 * CFA it is gcc's DRAP (the CFA read at rbp - 8) */
	if (bl.u.addr < sp || bl.u.addr + 8 > nsp || (bl.u.addr == bp && nsp != bp + 16) ||
	    ((nsp - bl.u.addr) & 7) || nsp - bl.u.addr > 0x1fff * 8 || peek(bl.u.addr) != nbp)
		return RF_NO;
	return w | (nsp - bl.u.addr) / 8 << 24;
}

/*
 * The trace's rules: a table in a memfd of `forkscope run` (trace.h,
 * FSK_RULES_FILE_BYTES, every page allocated), mapped shared by every
 * process of the trace that learns a rule, so that what one image learnt
 * is every later image's of the same object. Each of make's compilers
 * (cc1, as, the gcc driver) learnt its several thousand rules afresh,
 * about a microsecond each, most of its stacks' cost in a build. A rule
 * here is keyed by its object's build-id (a hash of it) and the return
 * address in the object's own terms, so a library loaded elsewhere finds
 * it; 22 bits of the code word before the return address are checked
 * too, as in the stack group's table (rule_code). Only rules that walk
 * (or end a stack) go here: a frame found not cacheable is left to each
 * group to find again. An object with no build-id has its rules in its
 * group only. Nothing is shared without the file (the library preloaded
 * without the runner, a runner gone, /proc/RUNNER/fd not ours to open), or
 * with one that is not ours, not tmpfs, of another size, not wholly
 * allocated (a write through the mapping that needed a page the file
 * system cannot give would be a SIGBUS in the program) or without the
 * runner's magic in its first slot (which no rule takes: its key is
 * another's).
 */
#define XRULE_BITS 16
_Static_assert(16ul << XRULE_BITS == FSK_RULES_FILE_BYTES, "trace rules file size");
static struct rule *s_xrules;
static _Atomic int s_xstate;            /* 0 not tried, 1 being mapped, 2 mapped, -1 none */

static struct rule *xrules(void)
{
	int st = atomic_load_explicit(&s_xstate, memory_order_acquire);
	if (likely(st == 2))
		return s_xrules;
	int expect = 0;
	if (st != 0 || !atomic_compare_exchange_strong(&s_xstate, &expect, 1))
		return NULL; /* none, or another thread is mapping it: not awaited */
	long r = -1;
	int fd = G.rules_path[0] ? open(G.rules_path, O_RDWR | O_CLOEXEC) : -1;
	struct stat sb;
	struct statfs fs;
	if (fd >= 0 && sys_fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_uid == geteuid() &&
	    (uint64_t)sb.st_size == FSK_RULES_FILE_BYTES &&
	    (uint64_t)sb.st_blocks * 512 >= FSK_RULES_FILE_BYTES && fstatfs(fd, &fs) == 0 &&
	    fs.f_type == TMPFS_MAGIC) {
		/* the magic read with pread: through the mapping, its page
		 * would cost a page fault, which most images take no rule from */
		uint64_t magic = 0;
		if (pread(fd, &magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) && magic == FSK_RULES_MAGIC) {
			r = syscall(SYS_mmap, 0, FSK_RULES_FILE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (r < 0 && r > -4096)
				r = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	if (r != -1) {
		scan_own_add((void *)r, FSK_RULES_FILE_BYTES);
		s_xrules = (struct rule *)r;
	}
	atomic_store_explicit(&s_xstate, r != -1 ? 2 : -1, memory_order_release);
	return s_xrules;
}

/* The 64 KiB windows of the trace's table this process has mapped, bit w
 * for window w. Its pages exist (the runner made them all), but each
 * process maps them a fault at a time: a read maps the 16 pages of its
 * window read-only, and each page written then faults again. A cc1 that
 * learnt its rules first took 107 faults here (~12 us each), one that
 * ran beside it 44. A window is mapped writable in one call (~8 us) once
 * the process used XRULE_PAGES_FIRST pages of it, each mapped alone
 * before (~2 us): a short-lived image reads a rule or two in each of
 * the 4 to 6 windows its code has rules in (a program making three
 * allocations mapped 64 pages of them: 43 us of its start, 19 now). A fork
 * child maps them again (fork copies no page table of a shared mapping). */
#define XRULE_WIN_SLOTS (65536 / sizeof(struct rule))
#define XRULE_PAGE_SLOTS (4096 / sizeof(struct rule))
#define XRULE_PAGES ((1u << XRULE_BITS) / XRULE_PAGE_SLOTS)
#define XRULE_PAGES_FIRST 2
_Static_assert((1u << XRULE_BITS) / XRULE_WIN_SLOTS <= 32, "a bit a window");
_Static_assert(RULE_PROBES <= XRULE_PAGE_SLOTS, "a probe spans two pages at most");
_Static_assert(sizeof(s_xpage) * 8 == XRULE_PAGES, "a bit a page");
_Static_assert(64 % (XRULE_WIN_SLOTS / XRULE_PAGE_SLOTS) == 0, "a window's page bits in one word");

/* Whether page pg of the trace's table is mapped: alone or with its window. */
static inline int xrule_page_mapped(uint64_t pg)
{
	return (atomic_load_explicit(&s_xwin, memory_order_relaxed) >> (pg * XRULE_PAGE_SLOTS / XRULE_WIN_SLOTS) & 1) ||
	       (atomic_load_explicit(&s_xpage[pg / 64], memory_order_relaxed) >> (pg & 63) & 1);
}

static __attribute__((noinline)) void xrule_map_more(struct rule *t, uint64_t p1, uint64_t p2)
{
	for (uint64_t pg = p1;; pg = p2) {
		uint64_t w = pg * XRULE_PAGE_SLOTS / XRULE_WIN_SLOTS, per = XRULE_WIN_SLOTS / XRULE_PAGE_SLOTS;
		uint64_t alone = atomic_load_explicit(&s_xpage[pg / 64], memory_order_relaxed) >>
				 (w * per % 64) & ((1ull << per) - 1);
		if (!xrule_page_mapped(pg)) {
			if (__builtin_popcountll(alone) < XRULE_PAGES_FIRST) {
				atomic_fetch_or_explicit(&s_xpage[pg / 64], 1ull << (pg & 63), memory_order_relaxed);
				sys_populate_range((uint64_t)(uintptr_t)(t + pg * XRULE_PAGE_SLOTS), 4096);
			} else {
				atomic_fetch_or_explicit(&s_xwin, 1u << w, memory_order_relaxed);
				sys_populate_range((uint64_t)(uintptr_t)(t + w * XRULE_WIN_SLOTS), 65536);
			}
		}
		if (pg == p2)
			return;
	}
}

/* The pages of the RULE_PROBES slots from h, mapped. */
static inline void xrule_map(struct rule *t, uint64_t h)
{
	uint64_t p1 = h / XRULE_PAGE_SLOTS,
		 p2 = ((h + RULE_PROBES - 1) & ((1u << XRULE_BITS) - 1)) / XRULE_PAGE_SLOTS;
	if (unlikely(!xrule_page_mapped(p1) || !xrule_page_mapped(p2)))
		xrule_map_more(t, p1, p2);
}

/* The key of ip in the trace's table and its home slot; 0 when ip has no
 * place there. As in the group's table (rule_home), the rules of 64 KiB of
 * an object's code start in one page of the table: a small program
 * touches a few pages of it, not all 256. */
static inline uint64_t xrule_key(uint64_t ip, uint64_t *home)
{
	uint64_t off, mod = unwind_mod_key(ip, &off);
	if (!mod)
		return 0;
	uint64_t k = (mod ^ off * 0x9e3779b97f4a7c15ull) * 0xc2b2ae3d27d4eb4full;
	k ^= k >> 31;
	/* an object's 64 KiB windows of code at consecutive pages from its
	 * own first one: the kernel maps a read fault's 16 neighbours too,
	 * so rules already there cost a fault per MiB of code, not one per
	 * window (a page once written is read so by every later image) */
	uint64_t page = ((mod * 0xd6e8feb86659fd93ull >> (64 - (XRULE_BITS - RULE_PAGE_BITS))) + (off >> 16)) &
			((1u << (XRULE_BITS - RULE_PAGE_BITS)) - 1);
	*home = page << RULE_PAGE_BITS | k >> (64 - RULE_PAGE_BITS);
	return k > RULE_BUSY ? k : k + 2;
}

static uint64_t xrule_get(uint64_t ip, uint64_t code)
{
	uint64_t home, key = xrule_key(ip, &home);
	struct rule *t = key ? xrules() : NULL;
	int stop = 0;
	if (!t)
		return 0;
	xrule_map(t, home);
	return probe_get(t, (1u << XRULE_BITS) - 1, home, key, code, &stop);
}

/* Whether the rule went into the trace's table. */
static int xrule_put(uint64_t ip, uint64_t code, uint64_t rule)
{
	uint64_t home, key = xrule_key(ip, &home);
	struct rule *t = key && !(rule & RF_NO) ? xrules() : NULL;
	if (t)
		xrule_map(t, home);
	return t && probe_put(t, (1u << XRULE_BITS) - 1, home, key, rule | rule_check(code), NULL);
}

/*
 * Where the trace's table is mapped, a rule found or learnt there is not
 * copied into the group's table as well, and the group's is not searched
 * until this process has put a rule into it: one the trace's table could
 * not take (no build-id, RF_NO, a full neighbourhood) or a rule narrowed
 * after a walk (rule_apply), which must then shadow the trace's. The
 * group's rules sit far from its stacks in the shared mapping, one page
 * per 64 KiB of code: a small program's first stacks paid ~6 page faults
 * there (a new page table among them) for rules it had just found in the
 * trace's table. A process of the group that did not put one itself
 * misses such a rule and learns it again, which only costs the time.
 */
static _Atomic int s_group_put;

static void group_put(struct rule *t, uint64_t ip, uint64_t code, uint64_t rule)
{
	rule_put(t, ip, code, rule);
	atomic_fetch_add_explicit(&s_group_puts, 1, memory_order_relaxed);
	if (!atomic_load_explicit(&s_group_put, memory_order_relaxed))
		atomic_store_explicit(&s_group_put, 1, memory_order_relaxed);
}

/* The rule of return address ip for a frame in state (sp, bp) as its
 * object's unwind table says it (cfi.c), held to what rule_step would
 * accept; 0 when the table says something else or nothing, for
 * libunwind to decide. Exact where rule_step can only observe: CFA =
 * rbp + 16 is RF_RBP alone, never the rsp + c that held this once. */
static uint64_t rule_cfi(uint64_t ip, uint64_t sp, uint64_t bp)
{
	struct cfi_row r;
	if (!cfi_row(ip, &r))
		return 0;
	if (r.end)
		return RF_END;
	uint64_t w, cfa;
	if (r.cfa_rbp) {
		if (r.cfa_off != 16)
			return 0;
		w = RF_RBP;
		cfa = bp + 16;
	} else {
		if (r.cfa_off < 8 || (r.cfa_off & 7) || (uint64_t)r.cfa_off > RULE_OFF_MAX)
			return 0;
		w = (uint64_t)r.cfa_off | RF_RSP;
		cfa = sp + (uint64_t)r.cfa_off;
	}
	if (cfa <= sp || (cfa & 7) || cfa - sp > RULE_OFF_MAX)
		return 0;
	if (r.rbp_saved) {
		/* in the frame, below its CFA */
		if (r.rbp_off > -8 || (r.rbp_off & 7) || r.rbp_off < -0x1fff * 8 ||
		    cfa - (uint64_t)-r.rbp_off < sp)
			return 0;
		w |= (uint64_t)-r.rbp_off / 8 << 24;
	}
	return w;
}

static uint64_t rule_cfa(uint64_t w, uint64_t sp, uint64_t bp)
{
	return w & RF_RSP ? sp + RULE_OFF(w) : bp + 16;
}

/* FORKSCOPE_UNWIND_CHECK=3: each rule read from a table is compared with
 * what one unw_step finds for the same frame (its CFA, where the caller's
 * rbp is, or that the stack ends), counted for the exit NOTE
 * (unwind_check_report). Against what the step itself found, not against rule_step's verdict:
 * that also judges by the registers' values at hand (a frame whose rbp
 * happens to equal its CFA - 16 or its rbp's save slot looks like
 * another kind), which the table's rule does not need to. */
static void rule_compare(uint64_t ip, uint64_t sp, uint64_t bp, uint64_t w, uint64_t v,
			 const struct rule_obs *o)
{
	int same;
	if (w & RF_END) {
		same = o->r == 0;
	} else {
		uint64_t cfa = rule_cfa(w, sp, bp), bs = RULE_BSAVE(w);
		same = o->r > 0 && o->nsp == cfa && o->bl_mem &&
		       o->bl_addr == (bs ? cfa - bs : o->ctx_bp);
	}
	atomic_fetch_add(&s_cfi_checked, 1);
	if (!same && atomic_fetch_add(&s_cfi_differed, 1) == 0) {
		s_cfi_first[0] = ip;
		s_cfi_first[1] = w;
		s_cfi_first[2] = v;
		s_cfi_first[3] = (uint64_t)(int64_t)o->r;
		s_cfi_first[4] = o->r > 0 ? o->nsp - sp : 0;
	}
}

char *unwind_learnt_report(char *p, const char *end)
{
	p = sys_utoa(p, atomic_load(&s_learnt), end);
	p = sys_stpcpy(p, " rules learnt (", end);
	p = sys_utoa(p, atomic_load(&s_learnt_unw), end);
	p = sys_stpcpy(p, " of them by libunwind's step), ", end);
	p = sys_utoa(p, atomic_load(&s_group_puts), end);
	return sys_stpcpy(p, " put in the group's table", end);
}

void unwind_cfi_report(char *p, const char *end)
{
	p = sys_stpcpy(p, "unwind check: ", end);
	p = sys_utoa(p, atomic_load(&s_cfi_checked), end);
	p = sys_stpcpy(p, " rules from the unwind tables compared with libunwind's step, ", end);
	p = sys_utoa(p, atomic_load(&s_cfi_differed), end);
	p = sys_stpcpy(p, " differed, ", end);
	p = sys_utoa(p, atomic_load(&s_cfi_left), end);
	p = sys_stpcpy(p, " left to libunwind", end);
	if (atomic_load(&s_cfi_differed)) {
		p = sys_stpcpy(p, " (first: ip ", end);
		p = sys_utoa(p, s_cfi_first[0], end);
		p = sys_stpcpy(p, ", rule ", end);
		p = sys_utoa(p, s_cfi_first[1], end);
		p = sys_stpcpy(p, " against ", end);
		p = sys_utoa(p, s_cfi_first[2], end);
		p = sys_stpcpy(p, ", step ", end);
		p = sys_utoa(p, s_cfi_first[3], end);
		p = sys_stpcpy(p, " CFA sp+", end);
		p = sys_utoa(p, s_cfi_first[4], end);
		sys_stpcpy(p, ")", end);
	}
}

/* The rule of a frame: from its unwind table, else from one unw_step
 * (inside unw_enter/unw_leave); 0 (nothing learnt, nothing to keep)
 * where neither gives one and this process must not enter libunwind. */
static uint64_t rule_learn(uint64_t ip, uint64_t sp, uint64_t bp)
{
	uint64_t w = rule_cfi(ip, sp, bp);
	atomic_fetch_add_explicit(&s_learnt, 1, memory_order_relaxed);
	if (w && likely(G.unwind_check != 3))
		return w;
	if (!unw_enter())
		return w;
	struct rule_obs o;
	uint64_t v = rule_step(ip, sp, bp, &o);
	unw_leave();
	if (!w) {
		atomic_fetch_add_explicit(&s_learnt_unw, 1, memory_order_relaxed);
		if (G.unwind_check == 3)
			atomic_fetch_add(&s_cfi_left, 1);
		return v;
	}
	rule_compare(ip, sp, bp, w, v, &o);
	return w;
}

/* The rule of ip for a frame in state (sp, bp) and the CFA it gives; 0
 * when the walk must stop (RF_NO, the table full), RF_END at the last
 * frame. */
static uint64_t rule_apply(struct rc_ent *rc, int rc_put, struct rule *t, uint64_t ip,
			   uint64_t sp, uint64_t bp, uint64_t *cfa)
{
	if (unlikely(ip >> RULE_IP_BITS || ip < 4096))
		return 0; /* no room in a key (and no code there) */
	uint64_t code = rule_code(ip), check = rule_check(code), key = rule_key(ip, code), w;
	struct rc_ent *e = rc ? &rc[(ip * 0x9e3779b97f4a7c15ull) >> (64 - RC_BITS)] : NULL;
	if (e && e->key == key && (e->w & ~RULE_BITS_MASK) == check) {
		w = e->w & RULE_BITS_MASK;
	} else {
		int group = !xrules() || atomic_load_explicit(&s_group_put, memory_order_relaxed);
		w = group ? rule_get(t, ip, code) : 0;
		if (unlikely(!w)) {
			w = xrule_get(ip, code);
			if (!w) {
				w = rule_learn(ip, sp, bp);
				if (!w)
					return 0;
				if (!xrule_put(ip, code, w))
					group_put(t, ip, code, w);
			}
		}
		if (e && rc_put) {
			cache_dirty(&t_cache, t_cache.c, e);
			e->key = key;
			e->w = w | check;
		}
	}
	if (!rc_put)
		e = NULL; /* a fork child's copy, not written yet */
	for (;;) {
		if (w & (RF_NO | RF_END))
			return w & RF_NO ? 0 : w;
		uint64_t a = sp + RULE_OFF(w), b = bp + 16;
		if (!(w & RF_RBP)) {
			*cfa = a;
			return w;
		}
		if (!(w & RF_RSP) || a == b) {
			*cfa = b;
			return w;
		}
		/* the two ways disagree: look again, keep what held both times */
		uint64_t v = rule_learn(ip, sp, bp);
		if (!v)
			return 0;
		uint64_t keep = RF_SEEN2 | (w & v & RF_RBP);
		if ((w & v & RF_RSP) && RULE_OFF(w) == RULE_OFF(v))
			keep |= RF_RSP | RULE_OFF(w);
		if ((v & RF_NO) || (w & RF_SEEN2) || RULE_BSAVE(w) != RULE_BSAVE(v) ||
		    !(keep & (RF_RSP | RF_RBP)))
			keep = RF_NO;
		else
			keep |= w & RULE_BSAVE_MASK;
		group_put(t, ip, code, keep);
		if (e) {
			cache_dirty(&t_cache, t_cache.c, e);
			e->w = keep | check;
		}
		w = keep;
	}
}

/* Whether the stack words the last walk read from frame j up still hold
 * what they held: 0 when they do, else the lowest frame of the last walk
 * a later join may still use (the frames up to the one whose state was
 * read wrong are no longer the stack's). */
static uint32_t rules_changed(const struct rules_last *l, uint32_t j)
{
	for (uint32_t i = l->n - 1; i-- > j;) {
		uint64_t cfa = l->f[i + 1].sp;
		if (peek(cfa - 8) != l->ip[i + 1] ||
		    (l->f[i].bsave && peek(cfa - l->f[i].bsave) != l->f[i + 1].bp))
			return i + 2;
	}
	return 0;
}

/* The thread's block of the pool, claimed if it has none (NULL when the
 * pool is full: tried again only now and then). */
static struct unwind_cache *cache_block(struct cache_thread *t)
{
	if (likely(t->c))
		return t->c;
	if (t->claim_wait) {
		t->claim_wait--;
		return NULL;
	}
	t->c = cache_claim();
	if (!t->c)
		t->claim_wait = 64;
	return t->c;
}

/* The block's rc and memo, mapped in one call when the thread starts to
 * fill them: their entries are used all over them, and each page of the
 * 80 KiB was a read fault (the zero page) and then a write fault (cc1s of
 * a make -j2: ~20 each, ~12 us a fault here). A fork child does not: its
 * block is a copy of its parent's, and a page populated would be copied
 * whether the child writes it or not. */
static __attribute__((noinline)) void cache_rc_map(struct cache_thread *t, struct unwind_cache *c)
{
	t->rc_mapped = 1;
	sys_populate_range((uint64_t)(uintptr_t)c->rc, sizeof(c->rc) + sizeof(c->memo));
}

/* The stack from program frame f by the rules: at most depth frames, at
 * *ips (the walk's own array, good until the thread's next walk: not
 * copied); 0 when libunwind must do it. The walk is kept as the thread's last
 * in place: frames above a join point move at most once (not at all when
 * the changed part has as many frames as before). */
uint32_t unwind_rules_walk(const struct unwind_frame *f, const uint64_t **ips, uint32_t depth,
			   uint64_t *key, uint32_t *h2)
{
	struct rule *t = rules_table();
	struct unwind_cache *c = cache_block(&t_cache);
	if (!t || !c || !f->ip || depth > RULES_FRAMES)
		return 0;
	struct rules_last *l = &c->last;
	struct rc_ent *rc = t_cache.captures >= MEMO_AFTER ? c->rc : NULL;
	/* rc from MEMO_AFTER captures on, and written (mapped) once the
	 * thread may put stacks in its memo: not in a short-lived image */
	int rc_put = rc && t_cache.captures >= t_cache.memo_put_from;
	if (unlikely(rc_put && !t_cache.rc_mapped))
		cache_rc_map(&t_cache, c);
	uint64_t ip = f->ip, sp = f->sp, bp = f->bp;
	/* the frames before the join point, and all of them when none */
	uint64_t wip[RULES_FRAMES], wsp[RULES_FRAMES], wbp[RULES_FRAMES];
	uint32_t wbs[RULES_FRAMES];
	uint32_t n = 0, j = 0, from = 0, k = 0;
	int joined = 0, ended = 0, whole = 0;
	while (n < depth) {
		if (!joined) {
			while (j < l->n && l->f[j].sp < sp)
				j++;
			if (j < l->n && j >= from && l->f[j].sp == sp && l->ip[j] == ip && l->f[j].bp == bp &&
			    !(from = rules_changed(l, j))) {
				/* the rest as the last walk had it: l[j..] becomes
				 * l[n..], under the n new frames */
				uint32_t keep = l->n - j < depth - n ? l->n - j : depth - n;
				if (j != n) {
					__builtin_memmove(&l->ip[n], &l->ip[j], keep * sizeof(l->ip[0]));
					__builtin_memmove(&l->f[n], &l->f[j], keep * sizeof(l->f[0]));
				}
				/* all of the last walk's frames from j on: their
				 * hash chains hold (unless the walk goes on) */
				whole = keep == l->n - j;
				ended = whole && l->ended;
				joined = 1;
				k = n;
				n += keep;
				if (n == depth || ended)
					break;
				whole = 0;
				/* go on from its last frame */
				n--;
				ip = l->ip[n];
				sp = l->f[n].sp;
				bp = l->f[n].bp;
			}
		}
		uint64_t cfa = 0, w = rule_apply(rc, rc_put, t, ip, sp, bp, &cfa);
		if (!w) {
			l->n = 0; /* may have moved */
			return 0;
		}
		uint32_t bs = (uint32_t)RULE_BSAVE(w);
		if (joined) {
			l->ip[n] = ip;
			l->f[n].sp = sp;
			l->f[n].bp = bp;
			l->f[n].bsave = bs;
		} else {
			wip[n] = ip;
			wsp[n] = sp;
			wbp[n] = bp;
			wbs[n] = bs;
		}
		n++;
		if (w & RF_END) {
			ended = 1;
			break;
		}
		if (cfa <= sp || (cfa & 7) || cfa - sp > (64ull << 20)) {
			l->n = 0;
			return 0;
		}
		uint64_t ret = peek(cfa - 8);
		if (!ret) {
			l->n = 0;
			return 0; /* let libunwind say where such a stack ends */
		}
		bp = bs ? peek(cfa - bs) : bp;
		ip = ret;
		sp = cfa;
	}
	if (!joined)
		k = n;
	for (uint32_t i = 0; i < k; i++) {
		l->ip[i] = wip[i];
		l->f[i].sp = wsp[i];
		l->f[i].bp = wbp[i];
		l->f[i].bsave = wbs[i];
	}
	l->n = n;
	l->ended = (uint32_t)ended;
	cache_dirty(&t_cache, c, l); /* all in the block's first page */
	/* the hash chains of the frames below the kept ones, or of all */
	uint32_t i = whole ? k : n;
	uint64_t a = i < n ? l->f[i].ha : FSK_SH_A0, b = i < n ? l->f[i].hb : FSK_SH_B0;
	while (i-- > 0) {
		fsk_sh_step(&a, &b, l->ip[i]);
		l->f[i].ha = a;
		l->f[i].hb = b;
	}
	*key = fsk_sh_key(a, b, n, h2);
	*ips = l->ip;
	return n;
}
