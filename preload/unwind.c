/*
 * Call stacks: the thread's last repeated stack from unwind_cache.c when it
 * is still the stack, else walked there by the learnt rules of its return
 * addresses, else captured with libunwind's unw_backtrace (its fast path,
 * with a per-thread cache); interned per stack group (an image and the
 * processes forked from it), written as a STACK record once and as an id
 * afterwards.
 *
 * The intern table lives in our own mappings and is lock-free. A stack
 * takes the next id, and its entry is the id's: the stack's two hashes
 * (fsk_sh_key, 96 bits, which the thread's memo trusts too) and its
 * depth. The return addresses themselves are kept nowhere: at 16 bytes
 * an entry instead of 8 and 8 more a frame (cc1 on a small file: 3 049
 * stacks of 14.5 frames on average), the table takes a page where it
 * took nearly eight, and each first touch of a page of shared memory was
 * a page fault of ~10 us (make -j2 of a small project: 660 in the
 * interning). Two stacks with
 * the same 96 bits and depth would share an id: at a million stacks,
 * about once in 10^17 processes. Entries are dense, so they take pages
 * as stacks come. The index to them is a series of open-addressing
 * tables, each twice the size of the one before, the next one used once
 * the last is 3/4 full; entries never move. A slot holds the hash's top
 * half and the id, and one CAS both claims and publishes it after the
 * entry is filled, so a reader never meets a half-made entry (nor a fork
 * child one a parent's thread was making). A lookup probes every table
 * in use, the newest first; two threads interning one new stack at once
 * may give it two ids, which is harmless. The thread that interns a
 * stack writes its STACK record.
 *
 * The table is shared memory: a fork child shares it with its parent (and
 * its siblings), so a stack one of them interned is the others' too, and
 * the viewer finds its STACK record in the stream of the process that
 * interned it (stack_table in the header, see trace.h). A bash's children
 * then intern the stacks of their common path between fork and exec once,
 * not once each, and no write to the table ever copies a page.
 *
 * MODULE records (path, build-id, load bias) for the viewer's symbolizer
 * go out with the first STACK of a process (a fork child has its
 * parent's), and again when a new stack holds an address outside every
 * known module after a dlopen.
 */
#define UNW_LOCAL_ONLY
#include <elf.h>
#include <errno.h>
#include <libunwind.h>
#include <link.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fsk.h"
#include "scan.h"

#define UNWIND_SLOTS0 (1u << 8)         /* slots of the first index table */
#define UNWIND_LEVELS 10                /* tables of 2^8 .. 2^17 slots */
#define UNWIND_INDEX (UNWIND_SLOTS0 * ((1u << UNWIND_LEVELS) - 1)) /* all slots */
#define UNWIND_IDS (UNWIND_INDEX / 4 * 3) /* stacks at most */
#define UNWIND_SKIP 8                   /* our own frames at most */
#define UNWIND_MODS 512
#define UNWIND_PATHS (64u * 1024u)

struct unwind_entry {                   /* of id i (unwind_entry()) */
	uint64_t key;                   /* the stack's hashes (fsk_sh_key) */
	uint32_t h2;
	uint32_t depth;
};

struct unwind_mod {
	uint64_t lo, hi;                /* extent of its PT_LOAD segments */
	uint64_t bias;
	uint8_t build_id[20];
	uint32_t build_id_len;
	uint32_t path_off;              /* into s_paths */
	uint64_t key;                   /* a hash of the build-id, 0 without one */
	_Atomic uint32_t written;       /* its MODULE record is out (here or in
					   an ancestor's stream) */
};

/* The counters of the shared table, in its first page. */
struct unwind_shared {
	_Atomic uint32_t level;         /* the newest index table in use */
	_Atomic uint32_t level_taken[UNWIND_LEVELS]; /* slots claimed */
	_Atomic uint32_t ids_used;      /* the last id given */
	_Atomic uint64_t rule_pages;    /* pages of the rules that hold one (unwind_cache.c) */
	_Atomic uint64_t found_page;    /* the page of entries a look-up last read, or 0 */
};

/* One shared mapping. Its first page holds what an image with few
 * stacks needs: the counters, index table 0 and the entries of the first
 * UNWIND_E0 ids; a program making a few allocations then interns its
 * stacks in one page of shared memory, where it took three or four
 * (counters, table 0's 8 KiB, the entries), each a page fault of 10 to
 * 30 us here. Then the other index tables, the other entries, and the
 * rules (unwind_cache.c) from a page boundary. Index table k > 0:
 * UNWIND_SLOTS0 << k slots at s_index + UNWIND_SLOTS0 * (2^k - 2); a
 * slot is hash >> 32 << 32 | id, 0 when free. */
#define UNWIND_PAGE0_HEAD 64
#define UNWIND_E0 ((4096 - UNWIND_PAGE0_HEAD - UNWIND_SLOTS0 * 8) / sizeof(struct unwind_entry))
#define UNWIND_ENTRIES_OFF (4096 + (UNWIND_INDEX - UNWIND_SLOTS0) * 8ul)
#define UNWIND_RULES_OFF ((UNWIND_ENTRIES_OFF + (UNWIND_IDS - UNWIND_E0) * sizeof(struct unwind_entry) + \
			   4095) & ~4095ul)
#define UNWIND_MAP (UNWIND_RULES_OFF + FSK_RULES_BYTES)
_Static_assert(sizeof(struct unwind_shared) <= UNWIND_PAGE0_HEAD, "the counters before table 0");
_Static_assert(UNWIND_E0 >= 64, "room for the first entries in the first page");
static struct unwind_shared *s_sh;
static _Atomic uint64_t *s_index0;      /* table 0, in the first page */
static _Atomic uint64_t *s_index;       /* tables 1 on */
static struct unwind_entry *s_entries0; /* ids 1 .. UNWIND_E0, in the first page */
static struct unwind_entry *s_entries;  /* the ids above */
static uint32_t s_inherited;            /* a fork child sharing its parent's table */
static _Atomic int s_full_noted;

/* The stack table's first page: a fork child's first stack reads and
 * writes it, through page tables fork did not copy (a shared mapping) */
uint64_t unwind_hot_page(void)
{
	return (uint64_t)(uintptr_t)s_sh;
}

/* The page of entries a look-up of the group last read (unwind_same),
 * for the fork child's populate: a shell's children look up the stacks
 * of their way from fork to exec, which an earlier child interned and
 * their parent never meets, and each child took a fault to read that
 * page (a bash loop: one an iteration). 0 for none. */
uint64_t unwind_found_page(void)
{
	return s_sh ? atomic_load_explicit(&s_sh->found_page, memory_order_relaxed) : 0;
}

static struct unwind_mod *s_mods;      /* UNWIND_MODS */
static char *s_paths;                   /* UNWIND_PATHS bytes */
static uint32_t s_paths_used;
static _Atomic uint32_t s_nmods;
static _Atomic uint32_t s_mods_done;    /* the first s_mods_done modules are written */
static _Atomic int s_mods_lock;
static unsigned long long s_mods_adds;  /* dlpi_adds at the last scan */
__thread int t_unwinding;

void *unwind_mmap(void *(*fn)(void *, size_t, int, int, int, off_t), void *addr, size_t len, int prot,
		  int flags, int fd, off_t off)
{
	void *r = fn(addr, len, prot, flags, fd, off);
	if (r != MAP_FAILED && fd < 0)
		scan_own_add(r, len);
	return r;
}

/* libunwind's test of whether it may read the word at addr, in place of
 * its write of a byte from there into a pipe of its own (patched in by
 * preload/libunwind.sh): a read of that byte from our own memory through
 * the kernel, which says EFAULT where a load would fault. 1 readable, -1
 * not (also where a seccomp filter forbids the call: a frame libunwind
 * then does not guess is better than a fault in the program). */
FSK_HIDDEN int fsk_unw_readable(void *addr);
int fsk_unw_readable(void *addr)
{
	char c;
	struct iovec local = { &c, 1 }, remote = { addr, 1 };
	return syscall(SYS_process_vm_readv, (long)getpid(), &local, 1L, &remote, 1L, 0L) == 1 ? 1 : -1;
}

/* ---- modules ---- */

static int unwind_has_mod(uint64_t lo)
{
	uint32_t n = atomic_load(&s_nmods);
	for (uint32_t i = 0; i < n; i++)
		if (s_mods[i].lo == lo)
			return 1;
	return 0;
}

/* The GNU build-id note of a loaded object, read from its mapped PT_NOTE. */
static void unwind_build_id(const struct dl_phdr_info *info, struct unwind_mod *m)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
		const char *end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const void *)p;
			const char *name = p + sizeof(*nh);
			const char *desc = name + ((nh->n_namesz + 3) & ~3u);
			const char *next = desc + ((nh->n_descsz + 3) & ~3u);
			if (next > end)
				break;
			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    !sys_strncmp(name, "GNU", 4)) {
				uint32_t n = nh->n_descsz < 20 ? nh->n_descsz : 20;
				for (uint32_t k = 0; k < n; k++)
					m->build_id[k] = (uint8_t)desc[k];
				m->build_id_len = n;
				return;
			}
			p = next;
		}
	}
}

/* dl_iterate_phdr callback (it does not allocate): appends new objects.
 * Runs under s_mods_lock; entries are published by bumping s_nmods. */
static int unwind_mod_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	s_mods_adds = info->dlpi_adds;
	uint64_t lo = UINT64_MAX, hi = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uint64_t a = info->dlpi_addr + ph->p_vaddr;
		if (a < lo)
			lo = a;
		if (a + ph->p_memsz > hi)
			hi = a + ph->p_memsz;
	}
	uint32_t n = atomic_load(&s_nmods);
	if (lo >= hi || n >= UNWIND_MODS || unwind_has_mod(lo))
		return 0;
	const char *path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : G.exe;
	uint32_t len = (uint32_t)sys_strlen(path);
	if (s_paths_used + len + 1 > UNWIND_PATHS)
		return 0;
	struct unwind_mod *m = &s_mods[n];
	m->lo = lo & ~(uint64_t)(G.page_size - 1);
	m->hi = hi;
	m->bias = info->dlpi_addr;
	m->build_id_len = 0;
	unwind_build_id(info, m);
	m->key = 0;
	if (m->build_id_len >= 8) {
		uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
		for (uint32_t i = 0; i < m->build_id_len; i++)
			h = (h ^ m->build_id[i]) * 0x100000001b3ull;
		m->key = h | 1;
	}
	m->path_off = s_paths_used;
	__builtin_memcpy(s_paths + s_paths_used, path, len + 1);
	s_paths_used += len + 1;
	atomic_store(&m->written, 0);
	atomic_store(&s_nmods, n + 1);
	return 0;
}

/* dl_iterate_phdr with another callback than ours is libunwind searching
 * the unwind tables for a return address it has not met: the costly part
 * of learning a rule. The library is linked with
 * -Wl,--wrap=dl_iterate_phdr, so the calls of the libunwind archive linked
 * into it come here and are counted for FORKSCOPE_UNWIND_CHECK (those of a
 * system libunwind.so do not: FSK_LIBUNWIND_STATIC is then unset). */
static _Atomic uint64_t s_searches, s_searches_cache;
__thread int t_cache_walking;
static int unwind_adds_cb(struct dl_phdr_info *info, size_t size, void *arg);
int __real_dl_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *arg);
FSK_HIDDEN int __wrap_dl_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *arg);

int __wrap_dl_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *arg)
{
	if (cb != unwind_mod_cb && cb != unwind_adds_cb)
		atomic_fetch_add_explicit(t_cache_walking ? &s_searches_cache : &s_searches, 1,
					  memory_order_relaxed);
	return __real_dl_iterate_phdr(cb, arg);
}

/* Rescans the loaded objects unless another thread is doing it. */
static void unwind_mods_scan(void)
{
	int expect = 0;
	if (!atomic_compare_exchange_strong(&s_mods_lock, &expect, 1))
		return;
	dl_iterate_phdr(unwind_mod_cb, NULL);
	atomic_store(&s_mods_lock, 0);
}

/* The module holding ip as the last scan found it, or NULL. */
static const struct unwind_mod *unwind_mod_of(uint64_t ip)
{
	uint32_t n = atomic_load(&s_nmods);
	for (uint32_t i = 0; i < n; i++)
		if (ip >= s_mods[i].lo && ip < s_mods[i].hi)
			return &s_mods[i];
	return NULL;
}

/* The same, after scanning again when none holds ip and dl_iterate_phdr
 * says an object was loaded since the last scan (dlopen: python's
 * extension modules). */
static const struct unwind_mod *unwind_mod_find(uint64_t ip)
{
	const struct unwind_mod *m = unwind_mod_of(ip);
	if (m)
		return m;
	unsigned long long adds = 0;
	dl_iterate_phdr(unwind_adds_cb, &adds);
	if (adds == s_mods_adds)
		return NULL;
	unwind_mods_scan();
	return unwind_mod_of(ip);
}

/* The module of ip for the trace's rules (unwind_cache.c): its build-id's
 * hash, and ip's address in its ELF file's terms in *off; 0 when ip is
 * in no module known, or one without a build-id. */
uint64_t unwind_mod_key(uint64_t ip, uint64_t *off)
{
	const struct unwind_mod *m = unwind_mod_of(ip);
	if (!m)
		return 0;
	*off = ip - m->bias;
	return m->key;
}

int unwind_mod_extent(uint64_t ip, uint64_t *lo, uint64_t *hi)
{
	const struct unwind_mod *m = unwind_mod_find(ip);
	if (!m)
		return 0;
	*lo = m->lo;
	*hi = m->hi;
	return 1;
}

/* One callback to learn whether anything was loaded since the last scan. */
static int unwind_adds_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	*(unsigned long long *)arg = info->dlpi_adds;
	return 1;
}

static void unwind_put(void *rec, uint32_t size, int direct)
{
	if (direct) {
		emit_direct(rec, size);
		return;
	}
	void *r = emit_reserve(((struct fsk_rec *)rec)->type, size, ((struct fsk_rec *)rec)->ts_ns);
	if (!r)
		return;
	__builtin_memcpy((char *)r + sizeof(struct fsk_rec), (char *)rec + sizeof(struct fsk_rec),
			 size - sizeof(struct fsk_rec));
	emit_commit();
}

/* Writes the MODULE records not written yet. Not inlined, like
 * unwind_emit_stack: their record buffers (4 KiB here) would otherwise be
 * in the frame of every stack capture that misses the cache, below the
 * program's own frames: a page of its stack that a fork child or its
 * parent copies only because we wrote it. */
static __attribute__((noinline)) void unwind_mods_emit_new(int direct, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct unwind_mod *m = &s_mods[i];
		uint32_t w = 0;
		if (atomic_load(&m->written) || !atomic_compare_exchange_strong(&m->written, &w, 1))
			continue;
		char buf[sizeof(struct fsk_rec) + sizeof(struct fsk_module) + 4 + 4096 + 8];
		struct fsk_rec *h = (void *)buf;
		struct fsk_module *md = (void *)(h + 1);
		char *p = emit_put_str((char *)(md + 1), s_paths + m->path_off, buf + sizeof(buf) - 8);
		while ((uintptr_t)(p - buf) & 7)
			*p++ = 0;
		fsk_rec_init(h, FSK_REC_MODULE, (uint32_t)(p - buf), sys_now_ns());
		md->base = m->lo;
		md->bias = m->bias;
		__builtin_memcpy(md->build_id, m->build_id, sizeof(md->build_id));
		md->build_id_len = m->build_id_len;
		unwind_put(buf, (uint32_t)(p - buf), direct);
	}
	atomic_store_explicit(&s_mods_done, n, memory_order_relaxed);
}

static inline void unwind_mods_emit(int direct)
{
	uint32_t n = atomic_load(&s_nmods);
	if (atomic_load_explicit(&s_mods_done, memory_order_relaxed) == n)
		return; /* the common case: one load instead of a walk */
	unwind_mods_emit_new(direct, n);
}

/* The table, libunwind's cache and the objects loaded so far, made by the
 * first stack an image wants, not by the constructor: an image that never
 * records one (a shell loop's /bin/true) then maps no table, never starts
 * libunwind (its init takes a dozen page faults and a pipe) and walks no
 * modules. The caller holds t_guard and t_unwinding, so libunwind's own
 * mmaps are registered as ours. Returns 1 when stacks can be taken. */
static _Atomic int s_state; /* 0 not made, 1 being made, 2 made, -1 off,
			     * -2 off by a fork in the middle, not said yet */

static int mapped(long r)
{
	return !(r < 0 && r > -4096);
}

/* The table's mapping with a private mapping of ours right above it:
 * right below the modules' (`above`, just mapped where the kernel put
 * it: top-down, the room under it is mostly free), one mmap; else a
 * private reservation of the table and a page that the table then
 * replaces (its split and unmap cost an image's first stack ~10 us
 * more). Not below a page mapped for the purpose: that page went into
 * the hole the loader's cache leaves among the libraries (11 pages),
 * where the table never fits. The address, or -errno. */
static long table_map(uint64_t above)
{
	if (above > UNWIND_MAP) {
		long r = (long)(above - UNWIND_MAP);
		long t = syscall(SYS_mmap, r, UNWIND_MAP, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
		if (t == r)
			return r;
		if (mapped(t)) /* a kernel before 4.17 took the address as a hint */
			syscall(SYS_munmap, t, UNWIND_MAP);
	}
	long r = syscall(SYS_mmap, 0, UNWIND_MAP + 4096, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mapped(r) && syscall(SYS_mmap, r, UNWIND_MAP, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) != r) {
		syscall(SYS_munmap, r, UNWIND_MAP + 4096);
		r = -ENOMEM;
	}
	return r;
}

static int unwind_make(void)
{
	/* registered as ours: scans leave them out. The table is shared
	 * with the fork children to come (see the top), with a private
	 * mapping of ours above it (the modules', or a page of its own): a
	 * shared anonymous mapping shows as a file (/dev/zero), and scans
	 * take an anonymous mapping right above a file's for its bss. */
	s_mods = scan_map(UNWIND_MODS * sizeof(*s_mods) + UNWIND_PATHS);
	long r = s_mods ? table_map((uint64_t)(uintptr_t)s_mods) : -ENOMEM;
	if (r < 0 && r > -4096) {
		scan_unmap(s_mods, UNWIND_MODS * sizeof(*s_mods) + UNWIND_PATHS);
		s_mods = NULL;
		emit_note(FSK_NOTE_WARN, "no memory for the stack table: call stacks are off");
		return 0;
	}
	scan_own_add((void *)r, UNWIND_MAP + 4096);
	s_sh = (void *)r;
	s_index0 = (void *)(r + UNWIND_PAGE0_HEAD);
	s_entries0 = (void *)(s_index0 + UNWIND_SLOTS0);
	s_index = (void *)(r + 4096);
	s_entries = (void *)(r + UNWIND_ENTRIES_OFF);
	unwind_rules_attach((void *)(r + UNWIND_RULES_OFF), &s_sh->rule_pages);
	s_paths = (char *)(s_mods + UNWIND_MODS);
	/* what the first stack writes: the modules, their paths and the
	 * table's first page, in one go (sys_populate) */
	uint64_t pg[] = { (uint64_t)(uintptr_t)s_mods, (uint64_t)(uintptr_t)s_paths, (uint64_t)r };
	sys_populate(pg, 3);
	unwind_mods_scan();
	return 1;
}

static int unwind_ready(void)
{
	int st = atomic_load_explicit(&s_state, memory_order_acquire);
	if (likely(st == 2))
		return 1;
	int expect = 0;
	if (st == 0 && atomic_compare_exchange_strong(&s_state, &expect, 1)) {
		atomic_store_explicit(&s_state, unwind_make() ? 2 : -1, memory_order_release);
		return atomic_load(&s_state) == 2;
	}
	expect = -2;
	if (st == -2 && atomic_compare_exchange_strong(&s_state, &expect, -1))
		emit_note(FSK_NOTE_WARN, "forked while call stacks were being set up: this process records none");
	/* another thread is making it: a few microseconds */
	while ((st = atomic_load_explicit(&s_state, memory_order_acquire)) == 1)
		sched_yield();
	return st == 2;
}

/* ---- interning ---- */

/* The stack's hash (fsk.h) from scratch: a stack libunwind gave, or one
 * the check changed. */
static uint64_t unwind_hash(const uint64_t *ips, uint32_t n, uint32_t *h2)
{
	uint64_t a = FSK_SH_A0, b = FSK_SH_B0;
	for (uint32_t i = n; i-- > 0;)
		fsk_sh_step(&a, &b, ips[i]);
	return fsk_sh_key(a, b, n, h2);
}

static inline struct unwind_entry *unwind_entry(uint32_t id)
{
	return id <= UNWIND_E0 ? &s_entries0[id - 1] : &s_entries[id - 1 - UNWIND_E0];
}

static int unwind_same(uint32_t id, uint64_t key, uint32_t h2, uint32_t n)
{
	const struct unwind_entry *e = unwind_entry(id);
	if (e->key != key || e->h2 != h2 || e->depth != n)
		return 0;
	uint64_t pg = id > UNWIND_E0 ? (uint64_t)(uintptr_t)e & ~4095ull : 0;
	if (atomic_load_explicit(&s_sh->found_page, memory_order_relaxed) != pg)
		atomic_store_explicit(&s_sh->found_page, pg, memory_order_relaxed);
	return 1;
}

static _Atomic uint64_t *unwind_table(uint32_t k)
{
	return k ? s_index + UNWIND_SLOTS0 * ((1u << k) - 2) : s_index0;
}

/*
 * What of the table this process has mapped: index tables 1 on (bit k),
 * and the entries below an address. A page of shared memory is mapped a
 * fault at a time, ~12 us each here, where one MADV_POPULATE_WRITE maps
 * a run for ~3 us a page: a cc1 of a make -j2 took 15 faults in its index
 * tables and 13 in its entries. An index table's slots are used all over
 * it, so all of it is mapped at its first use; the entries, which are
 * dense, a few pages ahead. A fork child maps them again (fork copies no
 * page table of a shared mapping).
 */
static _Atomic uint32_t s_levels_mapped;
static _Atomic uint64_t s_entries_mapped;
static _Atomic uint32_t s_entries_ahead; /* pages mapped ahead next: 2, 4, then 8 */

static __attribute__((noinline)) void unwind_levels_map_more(uint32_t want)
{
	atomic_fetch_or_explicit(&s_levels_mapped, want, memory_order_relaxed);
	/* the tables are contiguous: one run from the lowest to the highest */
	uint32_t lo = (uint32_t)__builtin_ctz(want), hi = 31 - (uint32_t)__builtin_clz(want);
	uint64_t a = (uint64_t)(uintptr_t)unwind_table(lo);
	uint64_t b = (uint64_t)(uintptr_t)(unwind_table(hi) + (UNWIND_SLOTS0 << hi));
	sys_populate_range(a, b - a);
}

/* Index tables 1 to top, mapped (table 0 is in the first page). */
static inline void unwind_levels_map(uint32_t top)
{
	uint32_t want = ((2u << top) - 1) & ~1u;
	want &= ~atomic_load_explicit(&s_levels_mapped, memory_order_relaxed);
	if (unlikely(want))
		unwind_levels_map_more(want);
}

/* The page of entry e, mapped, with a few after it. */
static inline void unwind_entry_map(const struct unwind_entry *e)
{
	uint64_t a = (uint64_t)(uintptr_t)(e + 1);
	if (likely(a <= atomic_load_explicit(&s_entries_mapped, memory_order_relaxed)))
		return;
	uint32_t ahead = atomic_load_explicit(&s_entries_ahead, memory_order_relaxed);
	ahead = ahead < 2 ? 2 : ahead;
	atomic_store_explicit(&s_entries_ahead, ahead < 8 ? ahead * 2 : 8, memory_order_relaxed);
	uint64_t lo = (uint64_t)(uintptr_t)e & ~4095ull, hi = lo + 4096ull * ahead;
	uint64_t end = (uint64_t)(uintptr_t)(s_entries + (UNWIND_IDS - UNWIND_E0));
	hi = hi < end ? hi : end;
	atomic_store_explicit(&s_entries_mapped, hi, memory_order_relaxed);
	sys_populate_range(lo, hi - lo);
}

/* The id of the stack of n frames with hashes key, h2 in index table k,
 * or 0. */
static uint32_t unwind_find(uint32_t k, uint64_t key, uint32_t h2, uint32_t n)
{
	_Atomic uint64_t *t = unwind_table(k);
	uint32_t mask = (UNWIND_SLOTS0 << k) - 1;
	for (uint32_t i = (uint32_t)key & mask;; i = (i + 1) & mask) {
		uint64_t v = atomic_load_explicit(&t[i], memory_order_acquire);
		if (!v)
			return 0; /* a table is never full: the probe ends */
		if (v >> 32 == key >> 32 && unwind_same((uint32_t)v, key, h2, n))
			return (uint32_t)v;
	}
}

/* Puts id (filled) in index table k unless another thread put the same
 * stack there first: id, that thread's id, or 0 when table k has no slot
 * to spare. */
static uint32_t unwind_index_add(uint32_t k, uint64_t key, uint32_t h2, uint32_t id, uint32_t n)
{
	/* at most 3/4 of a table is ever claimed, so probes end */
	if (atomic_fetch_add(&s_sh->level_taken[k], 1) >= (UNWIND_SLOTS0 << k) / 4 * 3)
		return 0;
	_Atomic uint64_t *t = unwind_table(k);
	uint32_t mask = (UNWIND_SLOTS0 << k) - 1;
	uint64_t slot = key >> 32 << 32 | id;
	for (uint32_t i = (uint32_t)key & mask;; i = (i + 1) & mask) {
		uint64_t v = 0;
		if (atomic_compare_exchange_strong_explicit(&t[i], &v, slot, memory_order_release,
							    memory_order_acquire))
			return id;
		if (v >> 32 == key >> 32 && unwind_same((uint32_t)v, key, h2, n))
			return (uint32_t)v;
	}
}

/* The id of the stack of n frames with hashes key, h2, a new one, or 0
 * when the table is full. *fresh = 1 when this call interned it. */
static uint32_t unwind_intern(uint32_t n, uint64_t key, uint32_t h2, int *fresh)
{
	uint32_t top = atomic_load_explicit(&s_sh->level, memory_order_acquire), id;
	*fresh = 0;
	unwind_levels_map(top);
	for (uint32_t k = top + 1; k-- > 0;)
		if ((id = unwind_find(k, key, h2, n)))
			return id;
	id = atomic_fetch_add(&s_sh->ids_used, 1) + 1;
	if (id > UNWIND_IDS)
		return 0;
	struct unwind_entry *e = unwind_entry(id);
	if (id > UNWIND_E0)
		unwind_entry_map(e);
	e->key = key;
	e->h2 = h2;
	e->depth = n;
	for (uint32_t k = top; k < UNWIND_LEVELS; k++) {
		unwind_levels_map(k);
		uint32_t got = unwind_index_add(k, key, h2, id, n);
		if (got) {
			*fresh = got == id;
			return got;
		}
		/* table k is full: on to the next one */
		uint32_t expect = k;
		if (k + 1 < UNWIND_LEVELS)
			atomic_compare_exchange_strong(&s_sh->level, &expect, k + 1);
	}
	return 0;
}

static __attribute__((noinline)) void unwind_emit_stack(uint32_t id, const uint64_t *ips, uint32_t n,
							 int direct)
{
	char buf[sizeof(struct fsk_rec) + sizeof(struct fsk_stack) + 8 * FSK_STACK_MAX];
	struct fsk_rec *h = (void *)buf;
	struct fsk_stack *st = (void *)(h + 1);
	uint64_t *out = (void *)(st + 1);
	uint32_t size = (uint32_t)(sizeof(*h) + sizeof(*st) + 8 * n);
	fsk_rec_init(h, FSK_REC_STACK, size, sys_now_ns());
	st->id = id;
	st->depth = n;
	for (uint32_t i = 0; i < n; i++)
		out[i] = ips[i];
	unwind_put(buf, size, direct);
}

/* The thread's last stack, by its hash: a loop that allocates repeats
 * it, and one compare then stands for the memo's look-up. */
static __thread uint64_t t_last_key;
static __thread uint32_t t_last_h2, t_last_n, t_last_id;

/* ips[0..n) (hash key, h2) as an id: interned, with its STACK record (and
 * MODULE records not written yet) written first when it is new. 0 when
 * the table is full. */
static uint32_t unwind_id(const uint64_t *ips, uint32_t n, int direct, uint64_t key, uint32_t h2)
{
	int fresh;
	uint32_t id = unwind_memo_get(key, h2);
	if (id)
		return id;
	id = unwind_intern(n, key, h2, &fresh);
	if (id)
		unwind_memo_put(key, h2, id);
	if (!id) {
		if (!atomic_exchange(&s_full_noted, 1))
			emit_note(FSK_NOTE_WARN, "stack table full: later new call stacks are recorded as id 0");
		return 0;
	}
	if (!fresh)
		return id;
	/* A new stack: objects loaded since the last scan (dlopen) join the
	 * module list before the viewer needs them. */
	for (uint32_t i = 0; i < n; i++)
		if (!unwind_mod_of(ips[i])) {
			unwind_mod_find(ips[i]);
			break;
		}
	unwind_mods_emit(direct);
	unwind_emit_stack(id, ips, n, direct);
	return id;
}

/*
 * unw_backtrace as if called by the program frame f: libunwind learns the
 * rule of each return address the first time a thread meets it (a search
 * of the unwind tables; a system libunwind.so also masks signals around
 * its locks, ~15 sigprocmask calls each), and every call site of a hook
 * of ours is one: the child side of fork and exec, _exit's, a fork
 * child's first malloc.
 * A fork child learns them again each time, for its parent never runs
 * those paths, nor does any exec'd image before its first stacks. So the
 * stub below hides our frames: it points rbp at the frame record our hook
 * built on entry (gcc's frame pointer: [caller's rbp, return address],
 * just under the caller's stack pointer at the call) and says in its CFI
 * that its caller's frame is found from rbp as a frame-pointer function's
 * is. libunwind then steps from unw_backtrace to the stub (one return
 * address, learnt once per image and inherited by fork children) and on
 * to the program's frame with its registers as they were at the call.
 */
#if defined(__x86_64__)
int fsk_backtrace_from(void **buf, int size, const void *record);
__asm__(".text\n"
	".globl fsk_backtrace_from\n"
	".hidden fsk_backtrace_from\n"
	".type fsk_backtrace_from,@function\n"
	"fsk_backtrace_from:\n"
	"	.cfi_startproc\n"
	"	push %rbp\n"
	"	.cfi_def_cfa_offset 16\n"
	"	.cfi_offset %rbp, -16\n"
	"	mov %rdx, %rbp\n"
	"	.cfi_def_cfa_register %rbp\n"    /* CFA = record + 16: the caller's sp */
	"	call unw_backtrace@PLT\n"
	"	pop %rbp\n"
	"	.cfi_def_cfa %rsp, 8\n"
	"	.cfi_restore %rbp\n"
	"	ret\n"
	"	.cfi_endproc\n"
	".size fsk_backtrace_from, .-fsk_backtrace_from\n");
#endif

static _Atomic int s_inside;  /* threads inside a call into libunwind */
static int s_unw_off;         /* 1: never enter libunwind here; 2: and the note is out */
static _Atomic int s_unw_set; /* its caching policy: 0 not set, 1 being set, 2 set */

static void unwind_off_note(void);

/* The first call into libunwind sets it up (~30 us: most images, whose
 * rules the unwind tables give, never need it) with a per-thread cache,
 * which takes no lock and masks no signal. A thread that comes in
 * meanwhile waits: libunwind reads the policy apart when it takes and
 * when it drops its global cache's lock, so a step under the global one
 * across the switch would leave that lock taken. A fork child of a
 * thread setting it never enters libunwind (s_inside). */
int unw_enter(void)
{
	if (s_unw_off) {
		unwind_off_note();
		return 0;
	}
	atomic_fetch_add(&s_inside, 1); /* visible before any lock it takes */
	int st = atomic_load_explicit(&s_unw_set, memory_order_acquire);
	if (unlikely(st != 2)) {
		if (st == 0 && atomic_compare_exchange_strong(&s_unw_set, &st, 1)) {
			unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
			atomic_store_explicit(&s_unw_set, 2, memory_order_release);
		}
		while (atomic_load_explicit(&s_unw_set, memory_order_acquire) != 2)
			sched_yield();
	}
	return 1;
}

void unw_leave(void)
{
	atomic_fetch_sub(&s_inside, 1);
}

static void unwind_off_note(void)
{
	if (s_unw_off != 1)
		return;
	s_unw_off = 2;
	emit_note(FSK_NOTE_WARN, "forked while another thread was inside libunwind, whose locks "
		  "stay taken in the child: this process does not call libunwind, and a call "
		  "stack it cannot walk by the rules already learnt is left out");
}

/* The stack from libunwind: our own frames (the top ones in our text)
 * left out, at most depth frames into ips. f: the program frame that
 * called our hook, when known (f->ip != 0). */
static uint32_t unwind_backtrace(const struct unwind_frame *f, uint64_t *ips, int depth)
{
	void *raw[FSK_STACK_MAX + UNWIND_SKIP];
	int got;
	if (!unw_enter())
		return 0;
#if defined(__x86_64__)
	if (f->ip)
		got = fsk_backtrace_from(raw, depth + UNWIND_SKIP, (const void *)(uintptr_t)(f->sp - 16));
	else
#endif
		got = unw_backtrace(raw, depth + UNWIND_SKIP);
	unw_leave();
	int skip = 0;
	while (skip < got && (uint64_t)(uintptr_t)raw[skip] >= G.self_lo &&
	       (uint64_t)(uintptr_t)raw[skip] < G.self_hi)
		skip++;
	uint32_t n = 0;
	for (int i = skip; i < got && n < (uint32_t)depth; i++)
		ips[n++] = (uint64_t)(uintptr_t)raw[i];
	return n;
}

/* FORKSCOPE_UNWIND_CHECK=1: each walk by the rules is compared with
 * unw_backtrace, whose stack is the one kept; the first difference and,
 * at exit, the counts go out as NOTE records. =2: no comparing, only the
 * count of libunwind's table searches at exit. */
static _Atomic uint64_t s_checked, s_differed;

static uint32_t unwind_check(const struct unwind_frame *f, uint64_t *ips, uint32_t n, int depth)
{
	if (s_unw_off)
		return n; /* nothing to compare with */
	uint64_t ref[FSK_STACK_MAX];
	uint32_t m = unwind_backtrace(f, ref, depth);
	int same = m == n;
	for (uint32_t i = 0; same && i < n; i++)
		same = ips[i] == ref[i];
	atomic_fetch_add(&s_checked, 1);
	if (!same && atomic_fetch_add(&s_differed, 1) == 0) {
		char msg[160], *p = sys_stpcpy(msg, "unwind check: first difference: frames ", msg + sizeof(msg));
		p = sys_utoa(p, n, msg + sizeof(msg));
		p = sys_stpcpy(p, " by the rules, ", msg + sizeof(msg));
		p = sys_utoa(p, m, msg + sizeof(msg));
		sys_stpcpy(p, " by unw_backtrace", msg + sizeof(msg));
		emit_note(FSK_NOTE_INFO, msg);
	}
	for (uint32_t i = 0; i < m; i++)
		ips[i] = ref[i];
	return m;
}

/* At the end of an image or process: what the check found. */
void unwind_check_report(void)
{
	if (!G.unwind_check)
		return;
	char msg[256], *p = sys_stpcpy(msg, "unwind check: ", msg + sizeof(msg));
	p = sys_utoa(p, atomic_load(&s_checked), msg + sizeof(msg));
	p = sys_stpcpy(p, " stacks compared, ", msg + sizeof(msg));
	p = sys_utoa(p, atomic_load(&s_differed), msg + sizeof(msg));
	p = sys_stpcpy(p, " differed, ", msg + sizeof(msg));
	p = unwind_learnt_report(p, msg + sizeof(msg));
	p = sys_stpcpy(p, ", ", msg + sizeof(msg));
#ifdef FSK_LIBUNWIND_STATIC
	p = sys_utoa(p, atomic_load(&s_searches), msg + sizeof(msg));
	p = sys_stpcpy(p, " unwind-table searches (+", msg + sizeof(msg));
	p = sys_utoa(p, atomic_load(&s_searches_cache), msg + sizeof(msg));
	sys_stpcpy(p, " by the stack cache)", msg + sizeof(msg));
#else
	sys_stpcpy(p, "unwind-table searches not counted (libunwind.so)", msg + sizeof(msg));
#endif
	emit_note(FSK_NOTE_INFO, msg);
	if (G.unwind_check == 3) {
		char cfi[256];
		unwind_cfi_report(cfi, cfi + sizeof(cfi));
		emit_note(FSK_NOTE_INFO, cfi);
	}
}

/* The capture when the cache could not answer. f: the program's first
 * frame (f->ip 0: unknown). */
static uint32_t unwind_stack_slow(const struct unwind_frame *f, int direct)
{
	int guard = t_guard;
	t_guard = 1; /* libunwind's own mmap and malloc calls are not the program's */
	uint32_t id = 0;
	int depth = G.stack_depth < FSK_STACK_MAX ? G.stack_depth : FSK_STACK_MAX;
	uint64_t buf[FSK_STACK_MAX];
	const uint64_t *ips = buf;
	uint64_t key = 0;
	uint32_t h2 = 0;
	uint32_t n = unwind_rules_walk(f, &ips, (uint32_t)depth, &key, &h2);
	if (n && unlikely(G.unwind_check == 1)) {
		for (uint32_t i = 0; i < n; i++)
			buf[i] = ips[i];
		ips = buf;
		n = unwind_check(f, buf, n, depth);
		key = 0;
	}
	if (!n) {
		ips = buf;
		n = unwind_backtrace(f, buf, depth);
		key = 0;
	}
	if (!n)
		goto out;
	if (!key)
		key = unwind_hash(ips, n, &h2);
	if (key == t_last_key && h2 == t_last_h2 && n == t_last_n) {
		id = t_last_id;
	} else {
		id = unwind_id(ips, n, direct, key, h2);
		if (id) {
			t_last_key = key;
			t_last_h2 = h2;
			t_last_n = n;
			t_last_id = id;
		}
	}
	unwind_cache_missed(f, ips, n, (uint32_t)depth, id);
out:
	t_guard = guard;
	return id;
}

uint32_t unwind_stack(int direct)
{
	if (t_unwinding || t_vfork_child)
		return 0;
	t_unwinding = 1; /* a handler that interrupts us records no stack */
	if (unlikely(atomic_load_explicit(&s_state, memory_order_acquire) != 2)) {
		/* the image's first stack sets stacks up */
		int guard = t_guard;
		t_guard = 1; /* libunwind's own mmap and malloc calls are not the program's */
		int ok = unwind_ready();
		t_guard = guard;
		if (!ok) {
			t_unwinding = 0;
			return 0;
		}
	}
	struct unwind_frame f;
	uint32_t id = unwind_cache_lookup(&f, G.self_lo, G.self_hi);
	if (!id)
		id = unwind_stack_slow(&f, direct);
	t_unwinding = 0;
	return id;
}

/* In fork(), before the prefork scan, in the parent (which records the
 * fork's stack right after): the table and libunwind are made once here,
 * not again in every child of a program that forks before it allocates. */
void unwind_prefork(void)
{
	if (!G.stack_depth || t_unwinding || t_vfork_child)
		return;
	t_unwinding = 1;
	unwind_ready();
	t_unwinding = 0;
}

/* In a fork child, before its stream opens: it shares the table its
 * parent made (if any); a scan another thread of the parent was running is
 * gone with that thread. */
void unwind_fork_child(void)
{
	/* A thread of the parent was starting libunwind when another forked:
	 * its lock may be held for good here, so this child takes no stacks. */
	int making = 1;
	atomic_compare_exchange_strong(&s_state, &making, -2);
	s_inherited = atomic_load(&s_state) == 2;
	/* another thread of the parent was inside libunwind at the fork: it
	 * may have held a lock of libunwind's, taken for good here */
	if (atomic_load(&s_inside) > 0 && !s_unw_off)
		s_unw_off = 1;
	atomic_store(&s_inside, 0);
	atomic_store(&s_checked, 0);
	atomic_store(&s_differed, 0);
	atomic_store(&s_searches, 0);
	atomic_store(&s_searches_cache, 0);
	atomic_store(&s_levels_mapped, 0);
	atomic_store(&s_entries_mapped, 0);
	atomic_store(&s_entries_ahead, 0);
	if (atomic_load(&s_mods_lock))
		atomic_store(&s_mods_lock, 0);
	unwind_cache_fork_child();
}

uint32_t unwind_stack_table(void)
{
	return s_inherited;
}
