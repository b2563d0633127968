/*
 * The per-thread stack cache: a loop that allocates asks for the same
 * stack again and again, and this answers it without libunwind.
 *
 * unw_step here costs about half a microsecond a frame (its register-state
 * cache misses and each step masks signals twice), unw_backtrace about
 * 50-70 ns a stack; neither tells what changed since the last call. The
 * cache holds, for each frame of the thread's last repeated stack, its ip,
 * its stack pointer (the callee's CFA), its rbp and where that rbp was
 * saved, learnt once with unw_step. A later capture takes the program's
 * first frame (ip, sp, rbp) from our own frame-pointer chain (the preload
 * is built with frame pointers), and when that frame is the cached frame 0
 * it proves the rest unchanged by reading back what an unwinder would
 * read: each return address at CFA - 8, each saved rbp that a frame
 * pushed, and the CFA slot of a realigned (DRAP) frame. Same ip, sp and
 * rbp and the same slots give the same CFA rule results, so the same
 * stack; any difference sends the capture to unw_backtrace.
 *
 * Exactness rests on every CFA rule being rsp + c, rbp + 16 or gcc's DRAP
 * *(rbp - 8), which is what gcc and clang emit; a stack through a signal
 * frame is never cached. Learning is budgeted (a walk of 25 frames costs
 * what ~200 captures do): a thread learns a stack only when unw_backtrace
 * gave it twice in a row, and at most 8 + hits / 256 times.
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <ucontext.h>

#include "fsk.h"

#define CACHE_FRAMES 32
#define BPLOC_FRAME0 1u                 /* rbp still in frame 0's register */
#define F_NEEDBP 1u                     /* its rbp must match to match it */
#define F_DRAP 2u                       /* its CFA is read at rbp - 8 */

struct unwind_cache {
	uint64_t ip[CACHE_FRAMES], sp[CACHE_FRAMES], bp[CACHE_FRAMES], bploc[CACHE_FRAMES];
	uint8_t flags[CACHE_FRAMES];
	uint32_t n;                     /* 0 = empty */
	uint32_t id, gen;               /* its interned id in generation gen */
	uint64_t hits, learnt;
};

static __thread struct unwind_cache t_cache;

/* The program frame that called into us: the first return address on our
 * frame-pointer chain that is outside our text [lo, hi). 0 when the chain
 * looks wrong (it never should). */
__attribute__((noinline)) int unwind_cache_first(struct unwind_frame *f, uint64_t lo, uint64_t hi)
{
	uint64_t *fp = __builtin_frame_address(0);
	if (!lo || lo >= hi)
		return 0;
	for (int i = 0; i < 16; i++) {
		uint64_t ret = fp[1];
		if (ret < lo || ret >= hi) {
			f->ip = ret;
			f->sp = (uint64_t)(uintptr_t)(fp + 2);
			f->bp = fp[0];
			return 1;
		}
		uint64_t *up = (uint64_t *)(uintptr_t)fp[0];
		if (up <= fp || ((uintptr_t)up & 7))
			return 0;
		fp = up;
	}
	return 0;
}

static inline uint64_t peek(uint64_t addr)
{
	return *(const volatile uint64_t *)(uintptr_t)addr;
}

/* The cached stack when the thread's stack from f up is still it: its ips
 * through *ips and its depth, else 0. */
uint32_t unwind_cache_hit(const struct unwind_frame *f, const uint64_t **ips)
{
	struct unwind_cache *c = &t_cache;
	uint32_t n = c->n;
	if (!n || f->ip != c->ip[0] || f->sp != c->sp[0] ||
	    ((c->flags[0] & F_NEEDBP) && f->bp != c->bp[0]))
		return 0;
	for (uint32_t m = 1; m < n; m++) {
		if (peek(c->sp[m] - 8) != c->ip[m])
			return 0;
		if (c->bploc[m] != c->bploc[m - 1] && peek(c->bploc[m]) != c->bp[m])
			return 0;
		if ((c->flags[m - 1] & F_DRAP) && peek(c->bp[m - 1] - 8) != c->sp[m])
			return 0;
	}
	c->hits++;
	*ips = c->ip;
	return n;
}

/* Its interned id when the cache was given one in generation gen, else 0. */
uint32_t unwind_cache_id(uint32_t gen)
{
	return t_cache.gen == gen ? t_cache.id : 0;
}

void unwind_cache_set_id(uint32_t id, uint32_t gen)
{
	t_cache.id = id;
	t_cache.gen = gen;
}

/* Flags of frame i from its caller's (i + 1) values; 0 = not cacheable. */
static int cache_flags(struct unwind_cache *c, uint32_t i)
{
	uint64_t cfa = c->sp[i + 1], loc = c->bploc[i + 1];
	int saved = loc != c->bploc[i];
	/* a pushed rbp lies in the pushing frame, between its sp and CFA */
	if (saved && (loc < c->sp[i] || loc + 8 > cfa))
		return 0;
	c->flags[i] = 0;
	/* Not rsp-based: rbp + 16 (a frame pointer), DRAP, or an rbp it
	 * passes on unchanged. Only rsp + c lets rbp differ. */
	if (!saved || cfa == c->bp[i] + 16 || loc == c->bp[i])
		c->flags[i] |= F_NEEDBP;
	if (saved && loc == c->bp[i] && cfa != c->bp[i] + 16) {
		if (c->bp[i] - 8 < c->sp[i] || c->bp[i] > cfa)
			return 0;
		c->flags[i] |= F_DRAP;
	}
	return 1;
}

/* Walks the stack from f with unw_step, recording what unwind_cache_hit
 * checks. The walk must give exactly ips[0..n) (what unw_backtrace gave),
 * ending there because the stack ends (n < depth) or because n == depth. */
static int cache_walk(struct unwind_cache *c, const struct unwind_frame *f, const uint64_t *ips,
		      uint32_t n, uint32_t depth)
{
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
	c->sp[0] = f->sp;
	c->bp[0] = f->bp;
	c->bploc[0] = BPLOC_FRAME0;
	for (uint32_t i = 0;; i++) {
		if (c->ip[i] != ips[i])
			return 0;
		if (i + 1 == n) {
			c->flags[i] = F_NEEDBP;
			if (n == depth)
				return 1;
			return unw_step(&cur) == 0;
		}
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
		if (ra.type != UNW_SLT_MEMORY || ra.u.addr != sp - 8 || sp <= c->sp[i] ||
		    bl.type != UNW_SLT_MEMORY)
			return 0;
		c->ip[i + 1] = ip;
		c->sp[i + 1] = sp;
		c->bp[i + 1] = bp;
		c->bploc[i + 1] = bl.u.addr == ctx_bp ? BPLOC_FRAME0 : bl.u.addr;
		if (!cache_flags(c, i))
			return 0;
	}
}

/* After unw_backtrace gave the same ips[0..n) twice in a row for the
 * frame f: learn that stack if the budget allows. 1 when the cache holds
 * it now. */
int unwind_cache_learn(const struct unwind_frame *f, const uint64_t *ips, uint32_t n, uint32_t depth)
{
	struct unwind_cache *c = &t_cache;
	if (n > CACHE_FRAMES || c->learnt >= 8 + c->hits / 256)
		return 0;
	c->learnt++;
	c->n = 0;
	c->id = 0;
	if (!cache_walk(c, f, ips, n, depth))
		return 0;
	c->n = n;
	return 1;
}
