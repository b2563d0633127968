/*
 * Address-space scans: /proc/self/maps plus /proc/self/pagemap per region,
 * each region classified and counted, written as one SCAN, one REGION per
 * region and one SCAN_END in a single write() so a reader never sees half
 * a scan between another thread's records.
 *
 * COW accounting needs to remember the last fork: at START and at each
 * fork (both sides) a baseline keeps, per private region, two bits per page
 * (present, shared) and, where PFNs are visible, the frame of every shared
 * page. Later scans compare against it: unshared = shared then, exclusive
 * now; first_touch = absent then, present now; copied = shared then, a
 * different frame now (this process took the copy). A page is exclusive
 * again in the parent too once the child copied it (the old frame is then
 * mapped once), so only `copied` says who paid for the copy.
 *
 * Concurrency: one scan at a time (s_lock holds the scanner's tid; never
 * held across fork: the child resets it). A synchronous trigger that finds
 * the lock taken waits a bounded time, the flusher's triggers are left in
 * s_pending for the holder. Memory comes only from scan_map.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fsk.h"
#include "scan.h"

#define PM_BATCH 8192u                   /* pagemap entries per pread */
#define PMSCAN_MIN_PAGES 2048u           /* regions above 8 MiB use PAGEMAP_SCAN */
#define PM_GAP_MAX 64u                   /* unmapped pages one pread may read across */
#define RUNS_ONLY_MIN_PAGES 64u          /* counted_by_runs: regions above this */
#define BASE_MAX_BYTES (512ull << 20)    /* bitmaps + PFNs of one baseline */
#define LOCK_WAIT_NS (2000ull * 1000 * 1000)
/* A guard page below an anonymous mapping is what glibc's thread stacks
 * look like, but so does any guarded buffer: only mappings of a plausible
 * thread stack size count (glibc's default is RLIMIT_STACK, 8 MiB). */
#define THREAD_STACK_MIN (1ull << 20)
#define ARENA_HEAP_ALIGN (64ull << 20) /* glibc's HEAP_MAX_SIZE on 64-bit */
#define SCAN_PREFORK 0 /* baseline only, nothing written */

/* ---- our own memory ---- */

#define OWN_MAX (1280 + TB_SPARE_MAX) /* every thread buffer, its second ones, the rest */
struct own_range {
	_Atomic uint64_t start;
	_Atomic uint64_t end;
};
/* The saved environment (init.c) and the table of our ranges in one
 * page-aligned block: every image writes the head of each at its start,
 * and they share that page (they were two faults). */
static struct {
	char env[FSK_ENV_SAVED];
	struct own_range own[OWN_MAX];
} s_env_own FSK_COLD __attribute__((aligned(4096)));
_Static_assert(FSK_ENV_SAVED + 16 * sizeof(struct own_range) <= 4096, "the environment and 16 ranges share a page");
char *const init_env_saved = s_env_own.env;
static _Atomic uint32_t s_own_hw; /* slots in use are below this */

static void own_put(uint64_t start, uint64_t end)
{
	for (uint32_t i = 0; i < OWN_MAX; i++) {
		/* no load first: the first touch of the table is then a write,
		 * one page fault instead of a read fault and a copy */
		uint64_t zero = 0;
		if (!atomic_compare_exchange_strong(&s_env_own.own[i].start, &zero, start))
			continue;
		atomic_store(&s_env_own.own[i].end, end);
		uint32_t hw = atomic_load(&s_own_hw);
		while (hw < i + 1 && !atomic_compare_exchange_weak(&s_own_hw, &hw, i + 1))
			;
		return;
	}
}

/* A mapping the kernel already keeps out of core dumps (a perf ring:
 * perf_mmap sets VM_DONTDUMP): registered without the madvise call. */
void scan_own_add_nodump(void *p, size_t len)
{
	if (p && len)
		own_put((uint64_t)(uintptr_t)p, (uint64_t)(uintptr_t)p + len);
}

/* Our memory must never count as the program's: every buffer we map is
 * registered here. MADV_DONTDUMP also keeps the kernel from merging it
 * with a neighbouring mapping of the program's. */
void scan_own_add(void *p, size_t len)
{
	if (!p || !len)
		return;
	syscall(SYS_madvise, p, len, MADV_DONTDUMP);
	scan_own_add_nodump(p, len);
}

/* A mapping we did not map ourselves but use (the flusher's stack): the
 * region that holds p is ours. */
void scan_own_point(const void *p)
{
	own_put((uint64_t)(uintptr_t)p, (uint64_t)(uintptr_t)p + 1);
}

void scan_own_del(void *p)
{
	uint32_t hw = atomic_load(&s_own_hw);
	for (uint32_t i = 0; i < hw; i++)
		if (atomic_load(&s_env_own.own[i].start) == (uint64_t)(uintptr_t)p) {
			atomic_store(&s_env_own.own[i].end, 0);
			atomic_store(&s_env_own.own[i].start, 0);
			return;
		}
}

/* The scan arena (arena_init), ours for the image's life: one range that
 * needs no slot of s_own (most images never touch that table then). */
static uint64_t s_arena_lo, s_arena_hi;

static int own_overlaps(uint64_t start, uint64_t end)
{
	if (start < s_arena_hi && end > s_arena_lo)
		return 1;
	uint32_t hw = atomic_load(&s_own_hw);
	for (uint32_t i = 0; i < hw; i++) {
		uint64_t s = atomic_load(&s_env_own.own[i].start), e = atomic_load(&s_env_own.own[i].end);
		if (s && s < end && e > start)
			return 1;
	}
	return 0;
}

void *scan_map(size_t len)
{
	len = (len + 4095) & ~(size_t)4095;
	long r = syscall(SYS_mmap, 0, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r < 0 && r > -4096)
		return NULL;
	scan_own_add((void *)r, len);
	return (void *)r;
}

/* A buffer whose contents only matter within one scan: a fork child gets
 * it empty (MADV_WIPEONFORK, Linux 4.14), so the fork copies none of its
 * page tables and the parent's next writes to it take no COW fault. */
void *scan_map_scratch(size_t len)
{
	void *p = scan_map(len);
	if (p)
		syscall(SYS_madvise, p, (len + 4095) & ~(size_t)4095, MADV_WIPEONFORK);
	return p;
}

void scan_unmap(void *p, size_t len)
{
	if (!p)
		return;
	len = (len + 4095) & ~(size_t)4095;
	uint64_t a = (uint64_t)(uintptr_t)p;
	if (a >= s_arena_lo && a < s_arena_hi) {
		/* a part of the arena that outgrew its place: its pages go, its
		 * addresses stay ours (unmapped, the program could get them) */
		syscall(SYS_madvise, p, len, MADV_DONTNEED);
		return;
	}
	scan_own_del(p);
	syscall(SYS_munmap, p, len);
}

/*
 * The buffers every scan needs, mapped together by the first scan (the
 * START scan of every exec'd image): one mmap and one madvise instead of
 * one mmap and one or two madvise per buffer, and one VMA instead of six
 * (two after a fork). The madvise flags stay what each buffer had on its
 * own: all of it MADV_DONTDUMP (so no part merges with a mapping of the
 * program's), the scratch part MADV_WIPEONFORK from the first fork on
 * (arena_wipe). A part that outgrows its place is replaced by a mapping
 * of its own; its pages in the arena are dropped (scan_unmap).
 * Kept across fork: [maps entries][maps paths][first baseline]
 * Scratch:          [maps io, then the stream's runs and the pagemap batch][scan output]
 * The runs and the pagemap batch live in the maps io buffer: maps_read
 * is done with it before a scan walks or reads pagemap, which saves
 * their page faults (a small process's scan touches one page of it).
 */
#define ARENA_ENTS (256 * sizeof(struct maps_ent))
#define ARENA_POOL 4096u
#define ARENA_BASE (64u * 1024u)
#define ARENA_OUT (64u * 1024u)
#define ARENA_CANARY 4096u
#define ARENA_KEEP (ARENA_CANARY + ARENA_ENTS + ARENA_POOL + ARENA_BASE)
#define ARENA_LEN (ARENA_KEEP + MAPS_IO_CAP + ARENA_OUT)
_Static_assert(ARENA_ENTS % 4096 == 0 && MAPS_IO_CAP % 4096 == 0, "arena parts are whole pages");
#define STREAM_RUNS 64
#define ARENA_RUNS ((STREAM_RUNS * sizeof(struct pagemap_run) + 63) & ~(size_t)63)
_Static_assert(ARENA_RUNS + PM_BATCH * 8 <= MAPS_IO_CAP, "the runs and the pagemap batch fit the maps io buffer");
static char *s_arena_base; /* the arena's baseline part, until a baseline takes it */

/* ---- the baseline ---- */

struct base_ent {
	uint64_t start, end;
	uint64_t *present, *shared;   /* one bit per page each */
	uint64_t *pfn;                /* pairs (page index, frame), index order */
	uint64_t npfn;
	uint64_t shared_total;
	uint32_t cow_faults;          /* sampled COW faults taken here since */
};

struct baseline {
	char *mem;
	size_t len, used;
	struct base_ent *ents;
	size_t n, cap;
	uint64_t *pfn_pool;
	size_t pfn_used, pfn_cap;     /* pairs */
};

static struct baseline s_base;

/* The previous baseline's mapping, kept for the next one: a fork loop
 * would otherwise map, fault in and unmap (a TLB shootdown while the
 * flusher runs) a fresh one at every fork. */
static char *s_spare;
static size_t s_spare_len;
#define SPARE_ZERO_MAX (256u << 10)       /* bitmap bytes worth clearing */

static void base_free(struct baseline *b)
{
	if (b->mem && !s_spare) {
		s_spare = b->mem;
		s_spare_len = b->len;
	} else {
		scan_unmap(b->mem, b->len);
	}
	__builtin_memset(b, 0, sizeof(*b));
}

static int base_eligible(const struct maps_ent *e)
{
	return e->perms && e->kind != FSK_RK_FORKSCOPE && e->kind != FSK_RK_VVAR &&
	       !(e->perms & FSK_P_SHARED) && e->kind != FSK_RK_SHM;
}

static size_t words_of(const struct maps_ent *e, uint32_t ps)
{
	return (size_t)(((e->end - e->start) / ps + 63) / 64);
}

/* Sizes one mapping for the whole new baseline (untouched parts cost no
 * memory: it is MAP_NORESERVE). -ENOMEM leaves the scan without one. */
static int base_begin(struct baseline *b, const struct maps_buf *mb, int pfn_likely)
{
	__builtin_memset(b, 0, sizeof(*b));
	size_t ents = 0, bits = 0, pages = 0;
	for (size_t i = 0; i < mb->n; i++) {
		const struct maps_ent *e = &mb->ents[i];
		if (!base_eligible(e))
			continue;
		size_t w = words_of(e, G.page_size);
		if ((bits + 2 * w) * 8 > BASE_MAX_BYTES / 2)
			continue;
		ents++;
		bits += 2 * w;
		pages += (size_t)((e->end - e->start) / G.page_size);
	}
	size_t pfn_cap = pfn_likely ? pages : 0;
	if (pfn_cap * 16 > BASE_MAX_BYTES / 2)
		pfn_cap = BASE_MAX_BYTES / 32;
	size_t len = ents * sizeof(struct base_ent) + bits * 8 + pfn_cap * 16 + 64;
	if (s_spare && s_spare_len >= len && bits * 8 <= SPARE_ZERO_MAX) {
		b->mem = s_spare;
		b->len = s_spare_len;
		s_spare = NULL;
		__builtin_memset(b->mem + ents * sizeof(struct base_ent), 0, bits * 8);
	} else {
		scan_unmap(s_spare, s_spare_len); /* too small: the next one is kept */
		s_spare = NULL;
		if (s_arena_base && len <= ARENA_BASE) {
			b->mem = s_arena_base;
			b->len = ARENA_BASE;
			s_arena_base = NULL;
		} else {
			b->mem = scan_map(len);
			if (!b->mem)
				return -ENOMEM;
			b->len = len;
		}
	}
	b->ents = (void *)b->mem;
	b->cap = ents;
	b->used = ents * sizeof(struct base_ent);
	b->pfn_pool = (void *)(b->mem + b->used + bits * 8);
	b->pfn_cap = pfn_cap;
	return 0;
}

static struct base_ent *base_add(struct baseline *b, const struct maps_ent *e)
{
	if (!b->mem || !base_eligible(e) || b->n >= b->cap)
		return NULL;
	size_t w = words_of(e, G.page_size);
	if (b->used + 2 * w * 8 > (size_t)((char *)b->pfn_pool - b->mem))
		return NULL;
	struct base_ent *be = &b->ents[b->n++];
	be->start = e->start;
	be->end = e->end;
	be->present = (void *)(b->mem + b->used);
	be->shared = be->present + w;
	b->used += 2 * w * 8;
	be->pfn = b->pfn_pool + 2 * b->pfn_used;
	be->npfn = 0;
	be->shared_total = 0;
	be->cow_faults = 0;
	return be;
}

/* First baseline entry that ends above addr (entries are in address order). */
static size_t base_find(const struct baseline *b, uint64_t addr)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (b->ents[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The mask of the bits [from, to) that lie in the word of bit `from`;
 * in *next, the first bit after them (to, or the next word's first):
 * bitmaps of pages go a word at a time, not a bit at a time. */
static inline uint64_t bits_head(uint64_t from, uint64_t to, uint64_t *next)
{
	uint64_t lo = from & 63, end = (from | 63) + 1;
	uint64_t hi = to < end ? to & 63 : 64;
	*next = to < end ? to : end;
	return (hi == 64 ? ~0ull : (1ull << hi) - 1) & ~((1ull << lo) - 1);
}

/* Sets bits [from, to). */
static void bits_fill(uint64_t *w, uint64_t from, uint64_t to)
{
	while (from < to) {
		uint64_t next, m = bits_head(from, to, &next);
		w[from / 64] |= m;
		from = next;
	}
}

/* How many of bits [from, to) are set. */
static uint64_t bits_count(const uint64_t *w, uint64_t from, uint64_t to)
{
	uint64_t n = 0;
	while (from < to) {
		uint64_t next, m = bits_head(from, to, &next);
		n += (uint64_t)__builtin_popcountll(w[from / 64] & m);
		from = next;
	}
	return n;
}

/* Pages of [start, end) whose bit is set in the baseline's shared (or
 * present) bitmaps, from its entry i on: the first that ends above start
 * (base_find, or an acct's cursor). A bitmap word at a time: a 256 MiB
 * region is 65536 pages. */
static uint64_t base_bits_in(size_t i, uint64_t start, uint64_t end, int shared)
{
	uint64_t n = 0, ps = G.page_size;
	for (; i < s_base.n && s_base.ents[i].start < end; i++) {
		const struct base_ent *be = &s_base.ents[i];
		uint64_t s = start > be->start ? start : be->start;
		uint64_t e = end < be->end ? end : be->end;
		if (shared && s == be->start && e == be->end)
			n += be->shared_total;
		else
			n += bits_count(shared ? be->shared : be->present, (s - be->start) / ps,
					(e - be->start) / ps);
	}
	return n;
}

/* Pages of [start, end) that were shared at the baseline. */
static uint32_t base_shared_in(uint64_t start, uint64_t end)
{
	return (uint32_t)base_bits_in(base_find(&s_base, start), start, end, 1);
}

uint64_t scan_base_shared(void)
{
	uint64_t n = 0;
	for (size_t i = 0; i < s_base.n; i++)
		n += s_base.ents[i].shared_total;
	return n;
}

/* ---- scan state ---- */

static _Atomic int32_t s_lock;      /* tid of the scanning thread, 0 = free */
static _Atomic uint32_t s_pending;  /* triggers that found the lock taken */
static _Atomic uint32_t s_dirty;    /* MMAP/BRK changes since the last scan */
static _Atomic uint64_t s_events;   /* hook-side changes, for the signature */
static uint32_t s_scan_id;
static uint64_t s_last_ns, s_last_sig;

/*
 * /proc/self/maps and /proc/self/pagemap stay open between the scans of a
 * process: opening and closing the two cost a scan ~20 us, a fifth of a
 * small process's fork path (open is a path walk through /proc and an mm
 * lookup, each ~8 us here). They are kept high and close-on-exec, like the
 * stream. Before each use fstat says the number still holds the file we
 * opened: a program that closed it, or put a file of its own on the
 * number, gets ours forgotten (never closed: the number is the program's
 * then) and the file opened again. A scan that is the image's last (exit,
 * exec) keeps nothing: moving the fds high would cost it two calls more.
 * Both fds name the mm of the process that opened them, so a fork child
 * closes the ones it inherited (scan_reset_child): its scans need its own,
 * and a child that drops privileges must not keep a way into its
 * parent's memory map (pagemap opened by root even shows frame numbers).
 */
struct kept_fd {
	int fd;                     /* -1: none */
	uint64_t dev, ino;
};
static struct kept_fd s_kmaps = { -1, 0, 0 }, s_kpm = { -1, 0, 0 };

/* An fd of path for this scan: the kept one, or a new one, kept when
 * `keep`. The caller closes it only when it is not k->fd. -errno. */
static int kept_open(struct kept_fd *k, const char *path, int keep)
{
	struct stat st;
	if (k->fd >= 0) {
		if (sys_fstat(k->fd, &st) == 0 && st.st_dev == k->dev && st.st_ino == k->ino)
			return k->fd;
		k->fd = -1;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (keep && sys_fstat(fd, &st) == 0) {
		int hi = emit_fd_high(fd);
		if (hi >= 100) { /* too low a limit for a high number: not kept */
			k->fd = hi;
			k->dev = st.st_dev;
			k->ino = st.st_ino;
		}
		return hi;
	}
	return fd;
}

static void kept_close(const struct kept_fd *k, int fd)
{
	if (fd >= 0 && fd != k->fd)
		close(fd);
}

/* Closes k's fd if the number still holds our file (the program may have
 * put one of its own there since: that one stays), and forgets it. */
static void kept_drop(struct kept_fd *k)
{
	struct stat st;
	if (k->fd >= 0 && sys_fstat(k->fd, &st) == 0 && st.st_dev == k->dev && st.st_ino == k->ino)
		close(k->fd);
	k->fd = -1;
}

static _Atomic int s_related;       /* this image forked or was forked (set
				     * before the fork itself) */
/* A page of ours (the scan arena's first) written once, at the first
 * scan, and never again: a fork that did not go through our hook
 * (daemon(), a raw clone) leaves it shared with the child, which tells the
 * scans this image has a relative. */
static char *s_canary;
static int s_canary_set;            /* the canary page was written */
static uint64_t s_last_cost;        /* the last scan's, ns */
static int s_pfn_visible = -1;      /* -1 not known yet */
static int s_no_pmscan;             /* PAGEMAP_SCAN missing: read every page */

/* FORKSCOPE_PMSCAN=0: counts as a kernel without PAGEMAP_SCAN (Linux
 * before 6.7, Debian 12's own) does, to check that path here. */
void scan_no_pmscan(void)
{
	s_no_pmscan = 1;
}

/*
 * Without PAGEMAP_SCAN nothing marks the zero page, which a pagemap entry
 * shows as a page shared after a fork (present, no file's, not
 * exclusive), except its frame where frames are visible (root): learnt
 * once from a page of ours only ever read. (The huge zero page of a
 * region read with transparent huge pages on has another frame: it stays
 * counted as a shared page there.)
 */
static char s_zero_probe[4096] __attribute__((aligned(4096))) FSK_COLD;
static uint64_t s_zero_pfn;         /* 0: not known */

static void zero_pfn_learn(int fd)
{
	static int tried;
	if (tried || !s_no_pmscan || !s_pfn_visible)
		return;
	tried = 1;
	uint64_t v;
	(void)*(volatile char *)s_zero_probe;
	if (pagemap_read(fd, (uint64_t)(uintptr_t)s_zero_probe / G.page_size, &v, 1) == 0 &&
	    (v & PM_PRESENT) && !(v & (PM_FILE | PM_EXCLUSIVE)))
		s_zero_pfn = v & PM_PFN_MASK;
}
static int s_self_known;
static uint64_t s_self_ino;
static uint32_t s_self_dev;
static struct maps_buf s_mb;
static uint64_t *s_pm;              /* PM_BATCH pagemap entries */
static uint64_t s_win_vpn, s_win_n; /* the pages s_pm holds in this scan */
struct obuf {
	char *p;
	size_t len, cap;
};
static struct obuf s_out;           /* the scan being built */
/* s_out still holds the prefork scan: the parent writes its fork scan
 * from there. s_out is a scratch mapping (MADV_WIPEONFORK), so fork does
 * not write-protect it, while patching s_fork_out, which the child reads,
 * would copy its pages while the child lives. */
static int s_out_forked;
static struct obuf s_wout;          /* a deferred WAIT scan built with a prefork one */
static _Atomic int s_wait_due;      /* a child was reaped since the last compare scan */

struct counts {
	uint32_t resident, swapped, shared, unshared, first_touch, shared_at_fork, copied, cow_faults;
};

/* Sampled COW faults counted against the baseline inside [start, end). */
static uint32_t base_cow_in(uint64_t start, uint64_t end)
{
	uint32_t n = 0;
	for (size_t i = base_find(&s_base, start); i < s_base.n && s_base.ents[i].start < end; i++)
		n += s_base.ents[i].cow_faults;
	return n;
}

char *scan_drain_buf(size_t *cap)
{
	if (!s_pm)
		return NULL;
	*cap = s_mb.io_cap < 4096 ? s_mb.io_cap : 4096;
	return s_mb.io;
}

/*
 * faults.c, with the scan lock held: what a sampled fault at addr was.
 * A fault on a page shared at the baseline is a COW break taken by this
 * process (counted against its region); on a page absent then, or in a
 * region mapped since, a first touch. *kind is the region's kind.
 */
int scan_fault_classify(uint64_t addr, uint16_t *kind)
{
	*kind = 0;
	size_t lo = 0, hi = s_mb.n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s_mb.ents[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < s_mb.n && s_mb.ents[lo].start <= addr)
		*kind = s_mb.ents[lo].kind;
	if (*kind == FSK_RK_FORKSCOPE)
		return FSK_FAULT_OTHER;
	size_t i = base_find(&s_base, addr);
	if (i >= s_base.n || s_base.ents[i].start > addr)
		return *kind ? FSK_FAULT_FIRST_TOUCH : FSK_FAULT_OTHER;
	struct base_ent *be = &s_base.ents[i];
	uint64_t idx = (addr - be->start) / G.page_size;
	if ((be->shared[idx / 64] >> (idx & 63)) & 1) {
		be->cow_faults++;
		return FSK_FAULT_COW;
	}
	if (!((be->present[idx / 64] >> (idx & 63)) & 1))
		return FSK_FAULT_FIRST_TOUCH;
	return FSK_FAULT_OTHER;
}

/* The arena's scratch part until its first fork makes it MADV_WIPEONFORK:
 * most images never fork, and the flag splits the mapping in two (one
 * more line in every read of /proc/self/maps). A fork child inherits the
 * flag (execve clears it); a fork our hook does not see copies the
 * scratch part as any page, which only costs the pages. */
static char *s_arena_scratch;

static void arena_wipe(void)
{
	if (s_arena_scratch) {
		syscall(SYS_madvise, s_arena_scratch, ARENA_LEN - ARENA_KEEP, MADV_WIPEONFORK);
		s_arena_scratch = NULL;
	}
}

/* At the first scan of an image (a fork child inherits the arena). */
static int arena_init(void)
{
	long r = syscall(SYS_mmap, 0, ARENA_LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r < 0 && r > -4096)
		return -ENOMEM;
	char *a = (char *)r;
	syscall(SYS_madvise, a, ARENA_LEN, MADV_DONTDUMP);
	s_arena_lo = (uint64_t)r;
	s_arena_hi = (uint64_t)r + ARENA_LEN;
	s_arena_scratch = a + ARENA_KEEP; /* MADV_WIPEONFORK at the first fork (arena_wipe) */
	s_canary = a;
	char *k = a + ARENA_CANARY; /* kept across fork, as the canary */
	s_mb.ents = (void *)k;
	s_mb.cap = 256;
	s_mb.pool = k + ARENA_ENTS;
	s_mb.pool_cap = ARENA_POOL;
	s_arena_base = k + ARENA_ENTS + ARENA_POOL;
	s_mb.io = a + ARENA_KEEP;
	s_mb.io_cap = MAPS_IO_CAP;
	s_pm = (uint64_t *)(void *)(s_mb.io + ARENA_RUNS);
	s_out.p = a + ARENA_KEEP + MAPS_IO_CAP;
	s_out.cap = ARENA_OUT;
	/* the first page of each part, which every scan writes: in one go
	 * (sys_populate: here ~5 us a page instead of an 11 us fault each) */
	uint64_t pg[] = { (uint64_t)r, (uint64_t)(uintptr_t)k, (uint64_t)(uintptr_t)s_mb.pool,
			  (uint64_t)(uintptr_t)s_arena_base, (uint64_t)(uintptr_t)s_mb.io,
			  (uint64_t)(uintptr_t)s_out.p };
	sys_populate(pg, sizeof(pg) / sizeof(pg[0]));
	return 0;
}

static int out_need(struct obuf *o, size_t more)
{
	if (o->len + more <= o->cap)
		return 0;
	size_t ncap = o->cap ? o->cap : 64 * 1024;
	while (ncap < o->len + more)
		ncap *= 2;
	char *n = scan_map_scratch(ncap);
	if (!n)
		return -ENOMEM;
	if (o->p) {
		__builtin_memcpy(n, o->p, o->len);
		scan_unmap(o->p, o->cap);
	}
	o->p = n;
	o->cap = ncap;
	return 0;
}

/* ---- classification ---- */

static int starts(const char *s, const char *prefix)
{
	return sys_strncmp(s, prefix, sys_strlen(prefix)) == 0;
}

static int streq(const char *a, const char *b)
{
	return sys_strlen(a) == sys_strlen(b) && starts(a, b);
}

/* A shared object: ".so" ends the base name or is followed by a version. */
static int is_lib_path(const char *p)
{
	const char *base = p;
	for (const char *s = p; *s; s++)
		if (*s == '/')
			base = s + 1;
	for (const char *s = base; *s; s++)
		if (s[0] == '.' && s[1] == 's' && s[2] == 'o' && (s[3] == 0 || s[3] == '.' || s[3] == ' '))
			return 1;
	return 0;
}

static void self_find(const struct maps_buf *mb)
{
	uint64_t me = (uint64_t)(uintptr_t)&self_find;
	for (size_t i = 0; i < mb->n; i++)
		if (mb->ents[i].start <= me && me < mb->ents[i].end && mb->ents[i].inode) {
			s_self_ino = mb->ents[i].inode;
			s_self_dev = mb->ents[i].dev;
			s_self_known = 1;
		}
}

/* Whether mb->ents[i] is laid out as a glibc malloc arena's heap: 64 MiB
 * aligned, its reservation's PROT_NONE rest right above it up to the next
 * 64 MiB (none once it grew to all of it). A thread stack may start
 * aligned too (the kernel aligns mappings of whole 2 MiB units, and a
 * stack right below one starts aligned one time in 32): an alignment
 * alone made such a stack "anon" (samples/regions, 1 run in 30). */
static int arena_heap(const struct maps_buf *mb, size_t i)
{
	const struct maps_ent *e = &mb->ents[i];
	if (e->start & (ARENA_HEAP_ALIGN - 1))
		return 0;
	uint64_t end = e->end;
	for (size_t j = i + 1; j < mb->n && mb->ents[j].start == end && !mb->ents[j].perms &&
			       !mb->ents[j].inode; j++)
		end = mb->ents[j].end;
	return end == e->start + ARENA_HEAP_ALIGN;
}

static uint16_t classify_one(const struct maps_buf *mb, size_t i)
{
	const struct maps_ent *e = &mb->ents[i];
	const struct maps_ent *prev = i ? &mb->ents[i - 1] : NULL;
	const char *path = maps_path(mb, e);
	int adjacent = prev && prev->end == e->start;
	int file = e->inode != 0 || path[0] == '/';

	if (own_overlaps(e->start, e->end))
		return FSK_RK_FORKSCOPE;
	if (file && s_self_known && e->inode == s_self_ino && e->dev == s_self_dev)
		return FSK_RK_FORKSCOPE;
	if (path[0] == '[') {
		if (streq(path, "[vdso]"))
			return FSK_RK_VDSO;
		if (starts(path, "[vvar") || streq(path, "[vsyscall]"))
			return FSK_RK_VVAR;
		if (streq(path, "[heap]"))
			return FSK_RK_HEAP;
		if (streq(path, "[stack]"))
			return FSK_RK_STACK;
		if (starts(path, "[anon_shmem:"))
			return FSK_RK_SHM;
	}
	if (e->perms & FSK_P_SHARED)
		return FSK_RK_SHM;
	if (file) {
		if (starts(path, "/memfd:") || starts(path, "/dev/shm/") || starts(path, "/SYSV"))
			return FSK_RK_SHM;
		if (G.exe[0] && streq(path, G.exe)) {
			if (e->perms & FSK_P_EXEC)
				return FSK_RK_TEXT;
			return (e->perms & FSK_P_WRITE) ? FSK_RK_DATA : FSK_RK_RODATA;
		}
		if (is_lib_path(path) || (e->perms & FSK_P_EXEC))
			return FSK_RK_LIB;
		return FSK_RK_FILE;
	}
	/* Anonymous. Right after an object's file mappings (a real file, not
	 * an anon inode such as our perf rings) it is that object's bss; below
	 * it a PROT_NONE guard marks a thread stack (glibc maps the guard at
	 * the low end). Not a malloc arena's heap (arena_heap), often right
	 * above another arena's PROT_NONE rest, which is no guard either: a
	 * guard is no bigger than its stack. */
	if (adjacent && prev->inode && maps_path(mb, prev)[0] == '/' && (e->perms & FSK_P_WRITE)) {
		switch (prev->kind) {
		case FSK_RK_TEXT: case FSK_RK_RODATA: case FSK_RK_DATA:
			return FSK_RK_BSS;
		case FSK_RK_LIB: case FSK_RK_FORKSCOPE:
			return prev->kind;
		}
	}
	uint64_t sp = (uint64_t)(uintptr_t)__builtin_frame_address(0);
	if ((e->start <= sp && sp < e->end) ||
	    (adjacent && !prev->perms && !prev->inode && (e->perms & FSK_P_WRITE) &&
	     e->end - e->start >= THREAD_STACK_MIN && !arena_heap(mb, i) &&
	     prev->end - prev->start <= e->end - e->start))
		return FSK_RK_THREAD_STACK;
	return FSK_RK_ANON;
}

/* The executable's path, from the mapping that holds its program headers
 * (AT_PHDR): the file /proc/self/exe names, without a readlink through
 * /proc at every image's start. Not where the dynamic linker is the
 * program (run by hand: no AT_BASE), whose AT_PHDR may be the program it
 * loaded; init_exe_path reads the link then. */
static void exe_from_maps(const struct maps_buf *mb)
{
	uint64_t ph = getauxval(AT_PHDR);
	if (!ph || !getauxval(AT_BASE))
		return;
	for (size_t i = 0; i < mb->n; i++) {
		const struct maps_ent *e = &mb->ents[i];
		if (e->start <= ph && ph < e->end) {
			const char *path = maps_path(mb, e);
			if (e->inode && path[0] == '/')
				sys_stpcpy(G.exe, path, G.exe + sizeof(G.exe));
			return;
		}
	}
}

static void classify(struct maps_buf *mb)
{
	if (!G.exe[0])
		exe_from_maps(mb);
	if (!s_self_known)
		self_find(mb);
	for (size_t i = 0; i < mb->n; i++) {
		uint16_t k = classify_one(mb, i);
		if (mb->ents[i].kind != k)
			mb->ents[i].kind = k; /* unchanged: not written (maps.c) */
	}
}

/* ---- counting ---- */

static void set_bit(uint64_t *w, uint64_t i)
{
	w[i / 64] |= 1ull << (i & 63);
}

static int get_bit(const uint64_t *w, uint64_t i)
{
	return (int)((w[i / 64] >> (i & 63)) & 1);
}

struct acct {
	const struct maps_ent *e;
	struct counts *c;
	struct counts *cw;         /* a deferred WAIT scan's counts too, or NULL */
	struct base_ent *nb;       /* baseline being built, or NULL */
	struct baseline *pb;       /* new baseline owning nb */
	size_t bi;                 /* cursor into s_base */
	int compare;               /* count against s_base (into cw when set) */
	int prefork;               /* baseline for a fork about to happen */
	int pfn_seen;
	int read_any;              /* a present page's entry was read */
	const struct base_ent *pbe; /* baseline entry pcur walks */
	uint64_t pcur;             /* its first PFN pair not behind the page */
};

/* The frame of page idx of be at the baseline, if it was shared then.
 * Pages are visited in increasing order: a cursor into the (index, frame)
 * pairs instead of a binary search per page (1 GiB has 262144 pages). */
static int acct_pfn(struct acct *a, const struct base_ent *be, uint64_t idx, uint64_t *pfn)
{
	if (a->pbe != be || (a->pcur < be->npfn && be->pfn[2 * a->pcur] > idx)) {
		a->pbe = be;
		a->pcur = 0;
	}
	while (a->pcur < be->npfn && be->pfn[2 * a->pcur] < idx)
		a->pcur++;
	if (a->pcur < be->npfn && be->pfn[2 * a->pcur] == idx) {
		*pfn = be->pfn[2 * a->pcur + 1];
		return 1;
	}
	return 0;
}

/* Pagemap entries [vpn, vpn + n), n <= PM_BATCH: from the window the
 * scan loop read ahead when it covers them, else read now. */
static int pm_has(uint64_t vpn, uint64_t end)
{
	return vpn >= s_win_vpn && end <= s_win_vpn + s_win_n;
}

static const uint64_t *pm_get(int fd, uint64_t vpn, uint64_t n)
{
	if (pm_has(vpn, vpn + n))
		return s_pm + (vpn - s_win_vpn);
	s_win_n = 0;
	if (pagemap_read(fd, vpn, s_pm, (size_t)n) < 0)
		return NULL;
	s_win_vpn = vpn;
	s_win_n = n;
	return s_pm;
}

/* Reads [lo, hi) into the window ahead of its users, when that is more
 * than their first piece [lo, first). On failure (a region unmapped
 * meanwhile, [vsyscall]) each piece reads its own as before. */
static void pm_ahead(int fd, uint64_t lo, uint64_t first, uint64_t hi)
{
	if (hi <= first)
		return;
	s_win_n = 0;
	if (pagemap_read(fd, lo, s_pm, (size_t)(hi - lo)) == 0) {
		s_win_vpn = lo;
		s_win_n = hi - lo;
	}
}

/*
 * Regions whose pages can only be counted, never be COW copies: shared
 * mappings (files, shared memory: what a page holds is the object's),
 * and private file mappings nobody can write (text, rodata: the file's
 * pages, and while read-only none can become a copy). PAGEMAP_SCAN's
 * runs of present pages then say everything counted of them (resident,
 * first touched) without reading each page's pagemap entry, which costs
 * the kernel a look at the page's struct page (its mapcount): a cache
 * miss a page, ~0.1 us. A compiler's 13 MiB of text took ~0.3 ms of each
 * of its exit scans so, and a prefork server's shared memory every scan.
 * An anonymous page in a read-only private mapping (an mprotect'd write
 * before) is counted as resident but not as shared after a fork; it
 * cannot be COW broken while the mapping stays read-only. Small regions
 * are read with their neighbours, as before: one ioctl would cost more.
 *
 * And every region, in an image that has no relative to share a page
 * with: no fork since its exec, on either side (related()). Its private
 * pages are all its own (a compiler, a script, a long job's big heap:
 * 1.5 GiB of python's took 25 ms a scan page by page), except the zero
 * page (a run of its own) and pages KSM merged (counted as not shared
 * then). A fork makes the prefork scan and every later one read each
 * page again, for the COW accounting.
 */
static int s_runs_any; /* this scan counts every region by runs (do_scan) */

/*
 * And the anonymous regions of a prefork scan that reads no frames (not
 * root: PFNs hidden) and makes no deferred WAIT scan: right after the
 * fork every present page of a private anonymous mapping is shared with
 * the child, the zero page aside (a run of its own), so the runs say
 * all the baseline needs. The prefork scan stalls every fork: a 256 MiB
 * heap took ~5 ms of it page by page, ~1 ms by runs. Where frames are
 * visible, each shared page's frame is kept for the later scans (copied),
 * which only its entry gives; a private file mapping's page may be the
 * file's (not shared) or a copy (shared), which only its entry tells.
 */
static int s_prefork_runs;

/* Private anonymous memory, where the zero page can be mapped (a private
 * mapping of /dev/zero is anonymous too; [vdso]'s pages are the kernel's). */
static int anon_private(const struct maps_ent *e)
{
	const char *p = s_mb.pool + e->path_off;
	return !(e->perms & FSK_P_SHARED) && e->kind != FSK_RK_VDSO &&
	       (!e->inode || (e->path_len == 9 && !__builtin_memcmp(p, "/dev/zero", 9)));
}

/* Whether the image may share private pages with a relative: a fork
 * seen by our hook, or the canary page shared. */
static int related(int fd)
{
	uint64_t v;
	if (atomic_load(&s_related))
		return 1;
	if (!s_canary)
		return 1; /* no arena: cannot tell */
	if (!s_canary_set) {
		/* the first scan: nobody forked before our constructor (a write
		 * without a read first: one page fault, not a zero-page map and
		 * a copy) */
		s_canary[0] = 1;
		s_canary_set = 1;
		return 0;
	}
	if (pagemap_read(fd, (uint64_t)(uintptr_t)s_canary / G.page_size, &v, 1) < 0 ||
	    ((v & PM_PRESENT) && !(v & PM_FILE) && !(v & PM_EXCLUSIVE)))
		atomic_store(&s_related, 1);
	return atomic_load(&s_related);
}

/* A read-only private file mapping holds the file's pages, but one of
 * /dev/zero is anonymous memory: where the kernel maps no zero page its
 * pages read before a fork are shared with the relative, which only
 * their entries tell. */
static int counted_by_runs(const struct maps_ent *e)
{
	return !s_no_pmscan &&
	       (s_runs_any || (e->perms & FSK_P_SHARED) ||
		(e->inode && !(e->perms & FSK_P_WRITE) && !anon_private(e)) ||
		(s_prefork_runs && anon_private(e))) &&
	       (e->end - e->start) / G.page_size > RUNS_ONLY_MIN_PAGES;
}

/* A pread per small piece would cost more in system calls than in
 * entries: a process has dozens of small regions, mostly packed together
 * (the objects, their bss, our own), and sparse memory makes PAGEMAP_SCAN
 * return many short runs. So one pread fills s_pm for a piece and the
 * pieces after it, up to PM_BATCH pages across holes of at most
 * PM_GAP_MAX pages (a hole reads as zeros). Before small region i: */
static void pm_window(int fd, const struct maps_buf *mb, size_t i)
{
	uint64_t ps = G.page_size, lo = mb->ents[i].start / ps, hi = mb->ents[i].end / ps;
	uint64_t first = hi;
	if (hi - lo > PMSCAN_MIN_PAGES || pm_has(lo, hi) || counted_by_runs(&mb->ents[i]))
		return;
	for (size_t j = i + 1; j < mb->n; j++) {
		const struct maps_ent *e = &mb->ents[j];
		uint64_t s = e->start / ps, t = e->end / ps;
		/* not read: a guard or reservation, whatever its size; and
		 * our own regions, which nothing counts: as holes, read across
		 * only when small (our library's text and bss, ~280 pages,
		 * were read in every fork path and exit scan) */
		if (!e->perms || e->kind == FSK_RK_FORKSCOPE)
			continue;
		if (counted_by_runs(e))
			break; /* counted by its runs alone */
		/* [vvar] reads as a hole (a PFN mapping), so the window runs on
		 * across it to the dynamic linker after [vdso]; the gate area
		 * above user space ([vsyscall]) is no part of pagemap */
		if (e->start >> 63 || t - s > PMSCAN_MIN_PAGES || s - hi > PM_GAP_MAX ||
		    t - lo > PM_BATCH)
			break;
		hi = t;
	}
	pm_ahead(fd, lo, first, hi);
}

static void acct_swapped(struct acct *a, uint32_t n)
{
	a->c->swapped += n;
	if (a->cw)
		a->cw->swapped += n;
}

/* The baseline's entry holding addr, or NULL; addresses come in rising
 * order (a->bi only moves on). */
static inline const struct base_ent *base_at(struct acct *a, uint64_t addr)
{
	while (a->bi < s_base.n && s_base.ents[a->bi].end <= addr)
		a->bi++;
	return a->bi < s_base.n && s_base.ents[a->bi].start <= addr ? &s_base.ents[a->bi] : NULL;
}

/* Counts the pages [vpn, vpn + n) of one region, by their pagemap entries. */
static int acct_pages(struct acct *a, int fd, uint64_t vpn, uint64_t n)
{
	uint64_t ps = G.page_size;
	int priv = !(a->e->perms & FSK_P_SHARED);
	while (n) {
		uint64_t k = n < PM_BATCH ? n : PM_BATCH;
		const uint64_t *pm = pm_get(fd, vpn, k);
		if (!pm)
			return -EIO;
		for (uint64_t j = 0; j < k; j++) {
			uint64_t v = pm[j], addr = (vpn + j) * ps;
			if (!(v & PM_PRESENT)) {
				if (v & PM_SWAPPED)
					acct_swapped(a, 1);
				continue;
			}
			/* In a process with no relative (s_runs_any), a private page
			 * neither a file's nor exclusive can only be the zero page
			 * (read before written: bss, a fresh heap) or one KSM merged:
			 * pagemap cannot tell the zero page from a page shared after
			 * a fork, and a relative's scans still count it as shared. */
			if (s_runs_any && priv && !(v & (PM_FILE | PM_EXCLUSIVE)))
				continue;
			uint64_t pfn = v & PM_PFN_MASK;
			if (pfn && pfn == s_zero_pfn)
				continue; /* the zero page, by its frame (root, no PAGEMAP_SCAN) */
			a->read_any = 1;
			if (pfn)
				a->pfn_seen = 1;
			/* Before fork every private anonymous page is about to
			 * be shared, exclusive as it is now: the prefork scan
			 * counts the state at the instant after the fork. */
			int shared_now = priv && !(v & PM_FILE) && !(v & PM_EXCLUSIVE);
			int shared = shared_now || (priv && !(v & PM_FILE) && a->prefork);
			struct counts *cc = a->c;
			a->c->resident++;
			a->c->shared += shared;
			if (a->cw) {
				cc = a->cw;
				cc->resident++;
				cc->shared += shared_now;
			}
			if (a->nb) {
				uint64_t idx = (addr - a->nb->start) / ps;
				set_bit(a->nb->present, idx);
				if (shared) {
					set_bit(a->nb->shared, idx);
					a->nb->shared_total++;
					if (pfn && a->pb->pfn_used < a->pb->pfn_cap) {
						a->nb->pfn[2 * a->nb->npfn] = idx;
						a->nb->pfn[2 * a->nb->npfn + 1] = pfn;
						a->nb->npfn++;
						a->pb->pfn_used++;
					}
				}
			}
			if (!a->compare)
				continue;
			const struct base_ent *be = base_at(a, addr);
			uint64_t idx = be ? (addr - be->start) / ps : 0;
			if (!be || !get_bit(be->present, idx)) {
				cc->first_touch++;
				continue;
			}
			if (!get_bit(be->shared, idx))
				continue;
			if (!(v & PM_EXCLUSIVE))
				continue;
			cc->unshared++;
			/* a copy is exclusive: a frame that changed while still shared
			 * was moved (migration, compaction), not copied */
			uint64_t old;
			if (pfn && acct_pfn(a, be, idx, &old) && old != pfn)
				cc->copied++;
		}
		vpn += k;
		n -= k;
	}
	return 0;
}

/* Pages [vpn, vpn + n) of a counted_by_runs region, all present: what
 * acct_pages counts of such a page. */
static void acct_present(struct acct *a, uint64_t vpn, uint64_t n)
{
	uint64_t ps = G.page_size;
	struct counts *cc = a->cw ? a->cw : a->c;
	a->c->resident += n;
	if (a->cw)
		a->cw->resident += n;
	/* a prefork scan's anonymous region (s_prefork_runs): all shared
	 * the instant after the fork, as acct_pages counts them */
	int shared = a->prefork && anon_private(a->e);
	if (shared)
		a->c->shared += n;
	if (a->nb) {
		uint64_t i = vpn - a->nb->start / ps;
		bits_fill(a->nb->present, i, i + n);
		if (shared) {
			bits_fill(a->nb->shared, i, i + n);
			a->nb->shared_total += n;
		}
	}
	if (a->compare) {
		base_at(a, vpn * ps); /* the cursor to the first entry ending above the run */
		cc->first_touch += (uint32_t)(n - base_bits_in(a->bi, vpn * ps, (vpn + n) * ps, 0));
	}
}

/*
 * Every scan walks the regions that need it (stream_counted) with
 * PAGEMAP_SCAN, a stretch of neighbouring ones at a time (never our own
 * regions and [vvar]: walking them too, the shared stack table (36 MiB
 * then) among them, cost a fork scan ~13 us more), and reads the runs in
 * address order as the regions are counted. A scan of an image with no relative walks every
 * region: a small process's START or exit scan made ~7 system calls of
 * pagemap (a pread per window of small regions, an ioctl per large one),
 * and makes one or two. A run may span neighbouring regions (the kernel
 * merges across them): each region takes its part. Regions counted by
 * runs need nothing more; the others read the entries of their present
 * runs (read ahead across runs close together), and know from the runs
 * which pages are the zero page: read page by page, it looks like a page
 * shared after a fork (present, no file's, not exclusive), and a first
 * write there, a first touch, counted as a COW break.
 */
/* Absent pages a read-ahead reads across: an absent page's entry costs
 * the kernel a few ns, a pread more ~1.2 us. 512 MiB resident, a page in
 * 128 over 64 GiB: 444 -> 259 ms a GiB, a pread per page before. */
#define STREAM_GAP_MAX 256u
static struct {
	int on;                       /* the stream serves this scan */
	int fd, n, i;
	uint64_t at;                  /* where the walk goes on */
	struct pagemap_run *runs;     /* STREAM_RUNS, in the maps io buffer (arena_init) */
} s_rs;

/* A region the stream counts: every region do_scan counts in a scan of
 * an image with no relative ([vsyscall] lies above user space); else
 * those counted by runs, large ones and those the zero page can be in
 * (the others read their pages in windows, as before: a walk over all
 * of a small process's pages cost each of its scans ~10 us more). */
static int stream_counted(const struct maps_ent *e)
{
	if (!e->perms || e->kind == FSK_RK_VVAR || e->kind == FSK_RK_FORKSCOPE || e->start >> 63)
		return 0;
	return s_runs_any || counted_by_runs(e) || (e->end - e->start) / G.page_size > PMSCAN_MIN_PAGES ||
	       anon_private(e);
}

/* Where the stretch of stream regions from s_mb.ents[i] on ends. A walk
 * that went on across the small file regions between them (passing over
 * their runs) cost a bash's fork scans ~15 us more than an ioctl per
 * stretch: walking a present page costs about what reading its entry
 * does. */
static uint64_t stream_stretch(size_t i)
{
	uint64_t end = s_mb.ents[i].end;
	for (; i < s_mb.n && stream_counted(&s_mb.ents[i]); i++)
		end = s_mb.ents[i].end;
	return end;
}

static void stream_begin(int fd)
{
	s_rs.on = 0;
	if (s_no_pmscan)
		return;
	if (s_pfn_visible < 0 && s_runs_any) {
		/* no entry is read now to learn it from: one of a page that
		 * is surely present, this frame's */
		volatile char here = 0;
		uint64_t v;
		if (pagemap_read(fd, (uint64_t)(uintptr_t)&here / G.page_size, &v, 1) == 0 &&
		    (v & PM_PRESENT))
			s_pfn_visible = (v & PM_PFN_MASK) != 0;
	}
	s_rs.runs = (struct pagemap_run *)(void *)s_mb.io; /* STREAM_RUNS (ARENA_RUNS) */
	s_rs.fd = fd;
	s_rs.n = s_rs.i = 0;
	s_rs.at = 0;
	s_rs.on = 1;
}

/* Reads ahead the entries of [lo, first), the piece of the current run a
 * region counts, of the rest of that run (it may go on into the next
 * regions) and of the runs after it close enough for one pread. */
static void stream_window(int fd, uint64_t lo, uint64_t first)
{
	uint64_t ps = G.page_size, hi = s_rs.runs[s_rs.i].end / ps;
	lo /= ps;
	first /= ps;
	if (pm_has(lo, first))
		return;
	if (hi - lo > PM_BATCH)
		hi = lo + PM_BATCH;
	for (int j = s_rs.i + 1; j < s_rs.n; j++) {
		uint64_t s = s_rs.runs[j].start / ps, t = s_rs.runs[j].end / ps;
		if (s - hi > STREAM_GAP_MAX || t - lo > PM_BATCH)
			break;
		hi = t;
	}
	pm_ahead(fd, lo, first, hi);
}

/* Counts a->e from the stream: 0, -errno (its pages could not be read:
 * the region went meanwhile), or 1 when the walk failed before any of
 * the region was counted (the caller counts it on its own then). */
static int stream_region(struct acct *a, int fd)
{
	uint64_t ps = G.page_size, start = a->e->start, end = a->e->end;
	int by_runs = s_runs_any || counted_by_runs(a->e), any = 0;
	for (;;) {
		while (s_rs.i < s_rs.n && s_rs.runs[s_rs.i].end <= start)
			s_rs.i++;
		if (s_rs.i == s_rs.n) {
			if (s_rs.at < start)
				s_rs.at = start; /* past a hole or regions not counted */
			if (s_rs.at >= end)
				return 0; /* nothing more below end */
			uint64_t stop = stream_stretch((size_t)(a->e - s_mb.ents)), next = stop;
			int n = pagemap_runs(s_rs.fd, s_rs.at, stop, s_rs.runs, STREAM_RUNS, &next);
			if (n < 0) {
				if (n == -ENOTTY || n == -EINVAL)
					s_no_pmscan = 1;
				s_rs.on = 0;
				return any ? n : 1;
			}
			s_rs.n = n;
			s_rs.i = 0;
			s_rs.at = next > s_rs.at ? next : stop;
			continue;
		}
		const struct pagemap_run *r = &s_rs.runs[s_rs.i];
		if (r->start >= end)
			return 0;
		uint64_t lo = r->start > start ? r->start : start;
		uint64_t hi = r->end < end ? r->end : end;
		any = 1;
		if (!r->present) {
			acct_swapped(a, (uint32_t)((hi - lo) / ps));
		} else if (r->zero) {
			/* the zero page: not resident (smaps agrees), never shared */
		} else if (by_runs) {
			acct_present(a, lo / ps, (hi - lo) / ps);
		} else {
			stream_window(fd, lo, hi);
			int err = acct_pages(a, fd, lo / ps, (hi - lo) / ps);
			if (err < 0)
				return err;
		}
		if (r->end > end)
			return 0; /* the rest is the next region's */
		s_rs.i++;
	}
}

static int acct_region(struct acct *a, int fd)
{
	uint64_t ps = G.page_size, start = a->e->start, end = a->e->end;
	if (a->compare)
		a->bi = base_find(&s_base, start);
	if (s_rs.on && stream_counted(a->e)) {
		int r = stream_region(a, fd);
		if (r <= 0)
			return r;
	}
	/* no walk (PAGEMAP_SCAN missing or failing): every page's entry */
	return acct_pages(a, fd, start / ps, (end - start) / ps);
}

/* ---- records ---- */

static void out_region(struct obuf *o, const struct maps_buf *mb, const struct maps_ent *e,
		       const struct counts *c, uint64_t ts)
{
	const char *path = maps_path(mb, e);
	uint32_t size = (uint32_t)(sizeof(struct fsk_rec) + sizeof(struct fsk_region) + 4 + e->path_len);
	size = (size + 7) & ~7u;
	if (size > FSK_REC_MAX || out_need(o, size) < 0)
		return;
	char *p = o->p + o->len;
	__builtin_memset(p, 0, size);
	fsk_rec_init((void *)p, FSK_REC_REGION, size, ts);
	struct fsk_region *r = (void *)(p + sizeof(struct fsk_rec));
	r->start = e->start;
	r->end = e->end;
	r->offset = e->offset;
	r->inode = e->inode;
	r->dev = e->dev;
	r->kind = e->kind;
	r->perms = e->perms;
	r->resident = c->resident;
	r->swapped = c->swapped;
	r->shared = c->shared;
	r->unshared = c->unshared;
	r->first_touch = c->first_touch;
	r->shared_at_fork = c->shared_at_fork;
	r->cow_faults = c->cow_faults;
	r->copied = c->copied;
	emit_put_strn((char *)(r + 1), path, e->path_len, p + size); /* the parse measured it */
	o->len += size;
}

/* The SCAN record that starts o; 0 or -ENOMEM. */
static int out_begin(struct obuf *o, uint64_t ts)
{
	o->len = 0;
	if (out_need(o, sizeof(struct fsk_rec) + sizeof(struct fsk_scan)) < 0)
		return -ENOMEM;
	fsk_rec_init((void *)o->p, FSK_REC_SCAN, sizeof(struct fsk_rec) + sizeof(struct fsk_scan), ts);
	o->len = sizeof(struct fsk_rec) + sizeof(struct fsk_scan);
	return 0;
}

/* Fills in the SCAN record and appends SCAN_END; 0 or -ENOMEM. */
static int out_end(struct obuf *o, uint32_t id, uint16_t trigger, uint32_t regions, uint64_t t0)
{
	if (out_need(o, sizeof(struct fsk_rec) + sizeof(struct fsk_scan_end)) < 0)
		return -ENOMEM;
	struct fsk_scan *sc = (void *)(o->p + sizeof(struct fsk_rec));
	sc->id = id;
	sc->trigger = trigger;
	sc->flags = (uint16_t)((s_pfn_visible > 0 ? FSK_HF_PFN_VISIBLE : 0) |
			       (faults_active() ? FSK_HF_PERF_FAULTS : 0));
	uint64_t t1 = sys_now_ns();
	struct fsk_rec *eh = (void *)(o->p + o->len);
	fsk_rec_init(eh, FSK_REC_SCAN_END, sizeof(struct fsk_rec) + sizeof(struct fsk_scan_end), t1);
	struct fsk_scan_end *se = (void *)(eh + 1);
	se->id = id;
	se->regions = regions;
	se->cost_ns = t1 - t0;
	o->len += sizeof(struct fsk_rec) + sizeof(struct fsk_scan_end);
	return 0;
}

/* The fork baseline is taken just before fork (scan_prefork), so both
 * sides inherit the same one: a page the relative copies in the moment
 * between fork and our first scan still counts as shared at fork. */
static int is_rebase(uint16_t trigger)
{
	return trigger == FSK_SCAN_START || trigger == SCAN_PREFORK;
}

static uint64_t signature(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (uint64_t)ru.ru_minflt * 3 + (uint64_t)ru.ru_majflt * 7 +
	       atomic_load(&s_events) * 11;
}

static int fork_keep(void);
static int lock_take(int32_t me, int wait);

static int s_exit_ends; /* the exit scan's process ends right after it */

static void do_scan(uint16_t trigger)
{
	if (s_wait_due && (trigger == FSK_SCAN_TIMER || trigger == FSK_SCAN_MMAP || trigger == FSK_SCAN_BRK))
		trigger = FSK_SCAN_WAIT;
	/* against the baseline they happened under; the last drain of an
	 * exit or exec scan */
	faults_drain(trigger == FSK_SCAN_EXIT || trigger == FSK_SCAN_EXEC);
	if (trigger == FSK_SCAN_EXIT)
		faults_stop(s_exit_ends); /* nothing drains them after the exit scan */
	uint64_t t0 = sys_now_ns();
	if (!s_pm && arena_init() < 0)
		return;
	int keep = trigger != FSK_SCAN_EXIT && trigger != FSK_SCAN_EXEC;
	int mfd = kept_open(&s_kmaps, "/proc/self/maps", keep);
	if (mfd < 0)
		return;
	int err = maps_read(&s_mb, mfd);
	kept_close(&s_kmaps, mfd);
	if (err < 0)
		return;
	classify(&s_mb);
	int fd = kept_open(&s_kpm, "/proc/self/pagemap", keep);
	if (fd < 0)
		return;
	int rebase = is_rebase(trigger);
	struct baseline nb;
	__builtin_memset(&nb, 0, sizeof(nb));
	/* Whether frames are visible is learnt from the first scan's own
	 * pages (its stack page is always present): until then the baseline
	 * makes room for them (MAP_NORESERVE: room costs no memory). */
	if (rebase && base_begin(&nb, &s_mb, s_pfn_visible != 0) < 0)
		__builtin_memset(&nb, 0, sizeof(nb));

	/* A prefork scan right after a wait also makes the WAIT scan the
	 * wait deferred (scan_wait_due): the same pages, counted both ways. */
	int dual = trigger == SCAN_PREFORK && s_wait_due && s_base.mem && out_begin(&s_wout, t0) == 0;
	uint32_t wid = dual ? ++s_scan_id : 0;
	uint32_t id = ++s_scan_id;
	s_out_forked = 0;
	if (out_begin(&s_out, t0) < 0) {
		kept_close(&s_kpm, fd);
		base_free(&nb);
		return;
	}

	int pfn_seen = 0, read_any = 0;
	uint32_t regions = 0;
	s_win_n = 0;
	s_runs_any = trigger != SCAN_PREFORK && !dual && !related(fd);
	s_prefork_runs = trigger == SCAN_PREFORK && !dual && s_pfn_visible == 0;
	stream_begin(fd);
	zero_pfn_learn(fd);
	for (size_t i = 0; i < s_mb.n; i++) {
		const struct maps_ent *e = &s_mb.ents[i];
		if (!e->perms)
			continue; /* PROT_NONE: guard pages and reservations */
		struct counts c = { 0 }, cw = { 0 };
		/* Our own regions are listed but not counted: every report
		 * leaves them out, and reading their pages cost each fork
		 * path scan ~15% more (they are a third of a small process's
		 * mappings). */
		if (e->kind != FSK_RK_VVAR && e->kind != FSK_RK_FORKSCOPE) {
			struct acct a = { .e = e, .c = &c, .cw = dual ? &cw : NULL, .pb = &nb,
					  .compare = (!rebase || dual) && base_eligible(e),
					  .prefork = trigger == SCAN_PREFORK };
			a.nb = rebase ? base_add(&nb, e) : NULL;
			if (!s_rs.on || !stream_counted(e))
				pm_window(fd, &s_mb, i);
			if (acct_region(&a, fd) < 0)
				c = cw = (struct counts){ 0 }; /* gone meanwhile (munmap) */
			pfn_seen |= a.pfn_seen;
			read_any |= a.read_any;
		}
		if (base_eligible(e) && (!rebase || dual)) {
			cw.cow_faults = base_cow_in(e->start, e->end);
			cw.shared_at_fork = base_shared_in(e->start, e->end);
		}
		if (dual)
			out_region(&s_wout, &s_mb, e, &cw, t0);
		if (rebase) {
			c.shared_at_fork = c.shared;
		} else {
			c.cow_faults = cw.cow_faults;
			c.shared_at_fork = cw.shared_at_fork;
		}
		out_region(&s_out, &s_mb, e, &c, t0);
		regions++;
	}
	kept_close(&s_kpm, fd);
	s_runs_any = s_prefork_runs = s_rs.on = 0;
	/* learnt from a page whose entry was read (runs give no frames) */
	if (pfn_seen)
		s_pfn_visible = 1;
	else if (s_pfn_visible < 0 && read_any)
		s_pfn_visible = 0;
	if (rebase) {
		base_free(&s_base);
		s_base = nb;
		/* The fresh baseline's memory was written before we unmapped
		 * the old one: a scan never sees a half-built baseline. */
	}
	if (dual && out_end(&s_wout, wid, FSK_SCAN_WAIT, regions, t0) == 0)
		emit_block(s_wout.p, s_wout.len);
	if (!rebase || dual)
		s_wait_due = 0;
	if (out_end(&s_out, id, trigger, regions, t0) < 0)
		return;
	if (trigger != SCAN_PREFORK)
		emit_block(s_out.p, s_out.len);
	else
		s_out_forked = fork_keep();
	s_last_ns = sys_now_ns();
	s_last_cost = s_last_ns - t0;
	/* the flusher's "anything changed?" (scan_tick); an image that ends
	 * or execs has no next tick (a failed exec gets one extra scan) */
	if (!(trigger == FSK_SCAN_EXIT && s_exit_ends) && trigger != FSK_SCAN_EXEC)
		/* a getrusage (~5 us here) only a flusher ever compares: its
		 * first tick scans when none was taken (most images end first) */
		s_last_sig = init_flusher_running() ? signature() : 0;
}

/* ---- the scan both sides of a fork report ---- */

/* The prefork scan, kept: both sides of the fork report it as their
 * FORK_PARENT / FORK_CHILD scan instead of scanning again right after the
 * fork (nothing can differ yet but what a relative copied meanwhile). */
static char *s_fork_out;
static size_t s_fork_len, s_fork_cap;

static int fork_keep(void)
{
	s_fork_len = 0;
	if (s_out.len > s_fork_cap) {
		size_t cap = (s_out.len + 65535) & ~(size_t)65535;
		char *n = scan_map(cap);
		if (!n)
			return 0;
		scan_unmap(s_fork_out, s_fork_cap);
		s_fork_out = n;
		s_fork_cap = cap;
	}
	__builtin_memcpy(s_fork_out, s_out.p, s_out.len);
	s_fork_len = s_out.len;
	return 1;
}

/* After fork, on each side (the child after scan_reset_child): writes
 * the kept prefork scan as this side's fork scan, under a new id. */
void scan_fork_emit(uint16_t trigger)
{
	if (!G.active || t_vfork_child)
		return;
	int saved = errno, guard = t_guard;
	t_guard = 1;
	if (lock_take(emit_tid(), 1)) {
		if (s_fork_len) {
			char *buf = trigger == FSK_SCAN_FORK_PARENT && s_out_forked ? s_out.p : s_fork_out;
			/* Stamping the kept copy in place would copy its pages in
			 * a child (the parent's are shared with it): the child
			 * stamps a copy in its scan output instead, whose pages its
			 * exit or exec scan needs anyway (the arena's are fresh
			 * zero pages after the fork, MADV_WIPEONFORK). */
			if (trigger == FSK_SCAN_FORK_CHILD && s_out.p && s_out.cap >= s_fork_len) {
				__builtin_memcpy(s_out.p, s_fork_out, s_fork_len);
				buf = s_out.p;
			}
			uint64_t ts = sys_now_ns();
			uint32_t id = ++s_scan_id;
			for (size_t off = 0; off + sizeof(struct fsk_rec) <= s_fork_len;) {
				struct fsk_rec *h = (void *)(buf + off);
				h->ts_ns = ts;
				if (h->type == FSK_REC_SCAN) {
					struct fsk_scan *sc = (void *)(h + 1);
					sc->id = id;
					sc->trigger = trigger;
				} else if (h->type == FSK_REC_SCAN_END) {
					((struct fsk_scan_end *)(void *)(h + 1))->id = id;
				}
				off += h->size;
			}
			emit_block(buf, s_fork_len);
			s_last_ns = ts;
		}
		atomic_store(&s_lock, 0);
	}
	t_guard = guard;
	errno = saved;
}

/* ---- triggers ---- */

static int lock_take(int32_t me, int wait)
{
	int32_t expect = 0;
	if (atomic_compare_exchange_strong(&s_lock, &expect, me))
		return 1;
	if (!wait || expect == me)
		return 0; /* a signal handler interrupted our own scan */
	uint64_t deadline = sys_now_ns() + LOCK_WAIT_NS;
	while (sys_now_ns() < deadline) {
		sched_yield();
		expect = 0;
		if (atomic_compare_exchange_strong(&s_lock, &expect, me))
			return 1;
	}
	return 0;
}

static uint16_t pending_pick(uint32_t p)
{
	static const uint16_t order[] = { FSK_SCAN_FORK_CHILD, FSK_SCAN_FORK_PARENT, FSK_SCAN_START,
					  FSK_SCAN_EXIT, FSK_SCAN_EXEC, FSK_SCAN_WAIT,
					  FSK_SCAN_MMAP, FSK_SCAN_BRK, FSK_SCAN_TIMER };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (p & (1u << order[i]))
			return order[i];
	return FSK_SCAN_TIMER;
}

void scan_run_exit(int ends_now)
{
	s_exit_ends = ends_now;
	scan_run(FSK_SCAN_EXIT);
}

void scan_run(uint16_t trigger)
{
	if (!G.active || t_vfork_child)
		return;
	int saved = errno, guard = t_guard;
	t_guard = 1;
	int sync = trigger != FSK_SCAN_TIMER && trigger != FSK_SCAN_MMAP && trigger != FSK_SCAN_BRK;
	if (lock_take(emit_tid(), sync)) {
		do_scan(trigger);
		/* Triggers that came while we scanned; a rebase wins so no fork
		 * baseline is lost, the rest fold into one scan. */
		for (int i = 0; i < 4; i++) {
			uint32_t p = atomic_exchange(&s_pending, 0);
			if (!p)
				break;
			do_scan(pending_pick(p));
		}
		atomic_store(&s_lock, 0);
	} else {
		atomic_fetch_or(&s_pending, 1u << trigger);
	}
	t_guard = guard;
	errno = saved;
}

/*
 * A child was reaped: its pages we shared are ours alone now, which only a
 * scan shows. Where the flusher runs, not on the wait path: the next scan
 * makes it, whichever comes first of the flusher's next tick, exit, exec,
 * or the next fork's prefork scan, which counts each page both against
 * the old baseline (the WAIT scan) and for the new one. Without a flusher
 * (none is started here: wait may run in a SIGCHLD handler), at once: so
 * also in a process that forks without one (init_fork_quiet), where the
 * next fork's scan would have made it no cheaper (fork_bench 2.17x either
 * way), and where nothing else would make it soon once the forks stop.
 */
void scan_wait_due(void)
{
	if (!G.active || t_vfork_child)
		return;
	if (!init_flusher_running()) {
		scan_run(FSK_SCAN_WAIT);
		return;
	}
	atomic_store(&s_wait_due, 1);
}

void scan_mark(uint16_t trigger)
{
	atomic_fetch_or_explicit(&s_dirty, 1u << trigger, memory_order_relaxed);
	atomic_fetch_add_explicit(&s_events, 1, memory_order_relaxed);
}

/* The flusher thread, every loop. Mapping changes are scanned at most once
 * per interval; the timer scans only when the fault counters or the hooks
 * say something changed, and, in a process with a relative (whose COW
 * copies change our pages' sharing silently), at least every 20 intervals. */
void scan_tick(void)
{
	if (!G.active)
		return;
	if (faults_active()) {
		int saved = errno, guard = t_guard;
		t_guard = 1;
		if (lock_take(emit_tid(), 0)) {
			faults_drain(0);
			atomic_store(&s_lock, 0);
		}
		t_guard = guard;
		errno = saved;
	}
	if (atomic_load(&s_wait_due)) {
		/* not waiting for the lock: its holder may be making it */
		int saved = errno, guard = t_guard;
		t_guard = 1;
		if (lock_take(emit_tid(), 0)) {
			if (atomic_load(&s_wait_due))
				do_scan(FSK_SCAN_WAIT);
			atomic_store(&s_lock, 0);
		}
		t_guard = guard;
		errno = saved;
		return;
	}
	uint64_t now = sys_now_ns();
	uint64_t iv = (uint64_t)(G.scan_ms ? G.scan_ms : 50) * 1000000ull;
	/* a scan costs the flusher's CPU, and a big process's costs more: at
	 * most a twentieth of the time goes to them */
	if (iv < 20 * s_last_cost)
		iv = 20 * s_last_cost;
	if (now - s_last_ns < iv)
		return;
	uint32_t d = atomic_exchange(&s_dirty, 0);
	if (d) {
		scan_run((d & (1u << FSK_SCAN_MMAP)) ? FSK_SCAN_MMAP : FSK_SCAN_BRK);
		return;
	}
	if (!G.scan_ms)
		return;
	if (signature() == s_last_sig && !(atomic_load(&s_related) && now - s_last_ns >= 20 * iv))
		return;
	scan_run(FSK_SCAN_TIMER);
}

/* In fork(), just before the real call: the COW baseline both sides will
 * inherit. The lock is released before fork: no lock crosses it. */
void scan_prefork(void)
{
	if (!G.active || t_vfork_child)
		return;
	atomic_store(&s_related, 1); /* whether or not the scan gets the lock */
	int saved = errno, guard = t_guard;
	t_guard = 1;
	if (lock_take(emit_tid(), 1)) {
		do_scan(SCAN_PREFORK);
		arena_wipe(); /* still before the fork */
		s_scan_id--; /* nothing was written under that id */
		atomic_store(&s_lock, 0);
	}
	t_guard = guard;
	errno = saved;
}

/* The pages of the scanner's state a fork's side writes at each fork
 * (fork_populate), SCAN_HOT_MAX at most: the parent's next prefork scan
 * rewrites its copy of the scan (its first SCAN_HOT_FORK_OUT pages) and a
 * baseline, the child's first scan its maps entries. */
#define SCAN_HOT_FORK_OUT 4
_Static_assert(2 + SCAN_HOT_FORK_OUT + 1 <= SCAN_HOT_MAX && 2 + 5 + 1 <= SCAN_HOT_MAX, "scan_hot_pages' room");
int scan_hot_pages(uint64_t *out, int child)
{
	int n = 0;
	out[n++] = (uint64_t)(uintptr_t)&s_lock;
	out[n++] = (uint64_t)(uintptr_t)s_base.mem; /* COW faults counted there */
	if (!child) {
		for (size_t at = 0; s_fork_out && at < s_fork_len && at < SCAN_HOT_FORK_OUT * 4096; at += 4096)
			out[n++] = (uint64_t)(uintptr_t)(s_fork_out + at);
		if (s_spare)
			out[n++] = (uint64_t)(uintptr_t)s_spare;
		return n;
	}
	if (s_mb.n) {
		out[n++] = (uint64_t)(uintptr_t)s_mb.ents;
		out[n++] = (uint64_t)(uintptr_t)s_mb.pool;
		/* its scratch, empty in the child (MADV_WIPEONFORK): the maps
		 * read, and the first pages of the scan's records */
		out[n++] = (uint64_t)(uintptr_t)s_mb.io;
		out[n++] = (uint64_t)(uintptr_t)s_out.p;
		out[n++] = s_out.p ? (uint64_t)(uintptr_t)s_out.p + 4096 : 0;
	}
	out[n++] = (uint64_t)(uintptr_t)&s_env_own.own[0];
	return n;
}

/* Fork child, before anything else: the parent's scanner (maybe the
 * flusher, which did not come along) may have held the lock. */
void scan_reset_child(void)
{
	/* the parent's maps and pagemap: its mm, not ours */
	kept_drop(&s_kmaps);
	kept_drop(&s_kpm);
	s_out_forked = 0;
	atomic_store(&s_lock, 0);
	atomic_store(&s_pending, 0);
	atomic_store(&s_dirty, 0);
	atomic_store(&s_wait_due, 0);
	s_scan_id = 0;
	atomic_store(&s_related, 1);
}
