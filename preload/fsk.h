/*
 * Private declarations of libforkscope.so. Everything reachable from a hook
 * obeys the preload rules: no malloc, no stdio, no dlsym after init, no call
 * of a function we interpose (use the real_* pointers), errno preserved.
 */
#ifndef FORKSCOPE_PRELOAD_FSK_H
#define FORKSCOPE_PRELOAD_FSK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <spawn.h>
#include <time.h>

#include "forkscope/trace.h"

#define FSK_HIDDEN __attribute__((visibility("hidden")))
#define FSK_EXPORT __attribute__((visibility("default")))
/* A big array of which the start and exit paths touch little or nothing:
 * linked after .bss (ld puts .lbss there), so the small state every image
 * touches shares a few pages instead of being spread between the arrays
 * (a page fault is ~1.7 us; a traced /bin/true took 10 for .bss alone). */
#define FSK_COLD __attribute__((section(".lbss.fsk_cold")))
/* A variable every image reads before anything writes its page: in .data,
 * whose page the loader has written already (in .bss the read would cost
 * a fault to map the zero page, and the first write a second one). */
#define FSK_EARLY __attribute__((section(".data")))
/* A hook that only dispatches: no frame record (the library is built
 * with frame pointers), so its tail calls are plain jumps and the callee's
 * frame record holds the program's return address. */
#if defined(__clang__)
#define FSK_FRAMELESS /* clang has no such attribute: a frame, then the jump */
#else
#define FSK_FRAMELESS __attribute__((optimize("omit-frame-pointer")))
#endif
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* ---- resolve.c: the real functions ---- */
struct fsk_real {
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	void *(*reallocarray)(void *, size_t, size_t);
	int (*posix_memalign)(void **, size_t, size_t);
	void *(*aligned_alloc)(size_t, size_t);
	void *(*memalign)(size_t, size_t);
	void *(*valloc)(size_t);
	void *(*pvalloc)(size_t);
	int (*brk)(void *);
	void *(*sbrk)(intptr_t);
	void *(*mmap)(void *, size_t, int, int, int, off_t);
	void *(*mmap64)(void *, size_t, int, int, int, off_t);
	int (*munmap)(void *, size_t);
	void *(*mremap)(void *, size_t, size_t, int, ...);
	int (*mprotect)(void *, size_t, int);
	int (*madvise)(void *, size_t, int);
	pid_t (*fork)(void);
	pid_t (*vfork)(void);
	int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
			   const posix_spawnattr_t *, char *const[], char *const[]);
	int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *,
			    const posix_spawnattr_t *, char *const[], char *const[]);
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	void (*exit)(int) __attribute__((noreturn));
	void (*_exit)(int) __attribute__((noreturn));
	void (*_Exit)(int) __attribute__((noreturn));
	void (*abort)(void) __attribute__((noreturn));
	pid_t (*wait)(int *);
	pid_t (*waitpid)(pid_t, int *, int);
	pid_t (*wait3)(int *, int, struct rusage *);
	pid_t (*wait4)(pid_t, int *, int, struct rusage *);
	int (*waitid)(idtype_t, id_t, siginfo_t *, int);
	int (*libc_start_main)(int (*)(int, char **, char **), int, char **,
			       void (*)(void), void (*)(void), void (*)(void), void *);
	/* malloc is glibc's: only then is the word before a block its chunk
	 * header (heap.c reads the MMAPPED bit there). Another allocator
	 * preloaded after us (jemalloc, tcmalloc) may start a block right
	 * after an unmapped page. */
	int malloc_is_glibc;
};
FSK_HIDDEN extern struct fsk_real real;
/* Resolves every real_* pointer once; re-entrant calls made by dlsym itself
 * are served from a static arena (resolve_is_boot tells those apart). */
FSK_HIDDEN void resolve_all(void);
FSK_HIDDEN void *resolve_boot_alloc(size_t size, size_t align);
/* A rarely called hook's real function, looked up at its first call into
 * *slot (resolve.c says which hooks may). NULL when there is none. */
FSK_HIDDEN void *resolve_late(void *_Atomic *slot, const char *name);
#define RESOLVE_BOOT_SIZE (64 * 1024)
FSK_HIDDEN extern char resolve_boot_arena[RESOLVE_BOOT_SIZE];
/* Inline: every traced free() asks. */
static inline int resolve_is_boot(const void *p)
{
	return (uintptr_t)p - (uintptr_t)resolve_boot_arena < RESOLVE_BOOT_SIZE;
}

/* ---- state shared by the hooks (init.c) ---- */
/* Which path the malloc and free hooks take, from one load: every call
 * recorded without stacks, with stacks, sampled; or none (not tracing,
 * --no-malloc). Set with `active`; the hooks still check t_guard. */
enum { FSK_HOT_OFF, FSK_HOT_FAST, FSK_HOT_STACKS, FSK_HOT_SAMPLED };

struct fsk_state {
	int active;            /* tracing this image: streams open, config read */
	int seccomp_stopped;   /* tracing stopped for a seccomp filter (creds.c) */
	int hot;               /* FSK_HOT_*: G.active, malloc_on, sample_bytes, stack_depth */
	int malloc_on;         /* FORKSCOPE_MALLOC */
	int env_restore;       /* FORKSCOPE_ENV_RESTORE */
	int stack_depth;
	int scan_ms;
	int faults_on;         /* FORKSCOPE_FAULTS: perf page-fault sampling */
	int unwind_check;      /* FORKSCOPE_UNWIND_CHECK: 1 compare walks with libunwind,
				 * 2 only count its table searches, 3 compare the
				 * rules read from the unwind tables with its steps */
	int handoff;           /* FORKSCOPE_HANDOFF, for checking: 0 a thread writes
				 * its full buffers, 1 it leaves them to the flusher
				 * whenever that can pay, 2 (default) as measured */
	uint64_t sample_bytes; /* FORKSCOPE_SAMPLE_BYTES: malloc sampling mean, 0 = off */
	uint64_t sample_seed;  /* FORKSCOPE_SAMPLE_SEED: 0 = random */
	pid_t pid;
	uint32_t page_size;
	char dir[512];         /* absolute trace directory */
	char exe[512];
	int argc;
	char **argv;
	int env_saved_len;     /* bytes of init_env_saved */
	char preload_path[512];/* our own path as given in LD_PRELOAD */
	uint64_t self_lo, self_hi; /* our library's loaded extent (0, 0: unknown) */
	uint64_t ldso_lo, ldso_hi; /* the dynamic linker's */
	char rules_path[64];   /* FORKSCOPE_RULES: the trace's unwind rules, or "" */
};
FSK_HIDDEN extern struct fsk_state G;
/* The saved FORKSCOPE_* "NAME=value" strings put back into a stripped
 * environment (proc.c; LD_PRELOAD comes from G.preload_path): written
 * once by the constructor, read at an exec; those that fit (G.dir is at
 * most 447 bytes). Not in G, whose pages the fork paths write: G and the
 * small state of every module share fewer pages without them, each a
 * page fault on both sides of every fork. In scan.c, in one page with
 * the head of the table of our ranges, which every image writes too. */
#define FSK_ENV_SAVED 3072
FSK_HIDDEN extern char *const init_env_saved;

/* Thread-local re-entrancy guard: while set, hooks pass straight through. */
FSK_HIDDEN extern __thread int t_guard;
/* Set in a vfork child (which shares our memory) so hooks stay out of it. */
FSK_HIDDEN extern __thread int t_vfork_child;

FSK_HIDDEN void init_child_after_fork(uint64_t fork_ns);
/* At the end of our part of fork in the child: its youth counts from
 * here, not from before our own set-up (init.c). */
FSK_HIDDEN void init_child_young(void);
/* Starts the flusher unless it runs; returns 1, starting nothing, in a
 * fork child still young enough to write its records through (emit.c). */
FSK_HIDDEN int init_flusher_ensure(void);
/* The flusher ends before a change of credentials or namespaces that a
 * second thread would break (init.c): 1 when one was paused, for
 * init_flusher_resume after the call. */
FSK_HIDDEN int init_flusher_pause(void);
FSK_HIDDEN void init_flusher_resume(int paused);
/* A process that never had a thread gets no flusher while it forks, nor
 * a new image in its first moments (init.c): until this time (0: not so),
 * its thread buffers without one and reuses no stamps. */
FSK_HIDDEN extern _Atomic uint64_t init_quiet_until;
/* In fork(), before the fork: whether this process goes on without a
 * flusher (and made init_quiet_until a time); else one is started. */
FSK_HIDDEN int init_fork_quiet(void);
/* At the end of the image's set-up: it goes on without a flusher for a
 * while if it has one thread. */
FSK_HIDDEN void init_image_quiet(void);
/* At the end of a buffered record once init_quiet_until has passed: the
 * flusher starts as in any other process. */
FSK_HIDDEN void init_quiet_end(void);
/* Set while a memory-mapping hook records: an allocator's lock may be
 * held, so the flusher is not started from there (init.c). */
FSK_HIDDEN extern __thread int t_map_hook;
FSK_HIDDEN int init_flusher_running(void);
/* Whether the flusher's thread runs (init_flusher_running: was asked for). */
FSK_HIDDEN int init_flusher_alive(void);
/* Wakes the flusher before its tick (a fork took the spare stream file, a
 * thread left it a full buffer). */
FSK_HIDDEN void init_flusher_kick(void);

/* ---- sys.c: syscalls, time, formatting without libc's allocating paths ---- */
static inline uint64_t sys_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
FSK_HIDDEN pid_t sys_gettid(void);
FSK_HIDDEN void *sys_mmap(size_t len);
FSK_HIDDEN void sys_munmap(void *p, size_t len);
struct stat;
FSK_HIDDEN int sys_fstat(int fd, struct stat *st);
FSK_HIDDEN size_t sys_strlen(const char *s);
FSK_HIDDEN int sys_strncmp(const char *a, const char *b, size_t n);
FSK_HIDDEN char *sys_stpcpy(char *d, const char *s, const char *end);
FSK_HIDDEN char *sys_utoa(char *d, uint64_t v, const char *end);
/* Right after fork, on each side: the pages of ours that side writes at
 * each fork (listed by the modules below, any address in a page, 0 for
 * none) copied in as few calls as contiguous runs allow
 * (MADV_POPULATE_WRITE, Linux 5.14) instead of a fault each at the first
 * write. No-op on an older kernel. Keeps errno. */
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  /* Linux 5.14; older headers lack them */
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define SCAN_HOT_MAX 8   /* scan_hot_pages' at most */
#define FSK_HOT_MAX 24   /* fork_populate's: G, TLS, emit's 2, the scan's, then the
			  * child's 4 more or the parent's stack cache pages */
#define UNWIND_DIRTY_MAX 3
_Static_assert(2 + 2 + SCAN_HOT_MAX + 4 + UNWIND_DIRTY_MAX <= FSK_HOT_MAX, "fork_populate's room");
FSK_HIDDEN void sys_populate(uint64_t *pages, int n);
/* The same for the pages of a range [lo, lo + len), in one call. */
FSK_HIDDEN void sys_populate_range(uint64_t lo, uint64_t len);
/* The same for our library's read-only segments (code, read-only data,
 * unwind tables) and the pages of libc and the vDSO a fork child runs
 * for us, read: a fork child maps them again a fault at a time (fork
 * copies no page table of a file's read-only mapping). Found once before
 * a fork (_prepare) as runs (start and length), ours first; mapped first
 * thing in the child (proc.c, fork_populate_code). sys_populate_off: none of it
 * (FORKSCOPE_POPULATE=0, or a kernel before 5.14). */
FSK_HIDDEN void sys_populate_code_prepare(void);
#define SYS_CODE_RUNS 24
FSK_HIDDEN extern struct iovec sys_code_iov[SYS_CODE_RUNS];
FSK_HIDDEN extern int sys_code_nruns, sys_populate_off;
/* Whether a list of runs goes to the kernel in one process_madvise(2)
 * (sys.c): 1 yes, -1 one madvise a run, 0 not tried yet (known once
 * sys_populate_code_prepare ran with more than one run). */
FSK_HIDDEN extern int sys_pmadv;
#define SYS_PIDFD_SELF (-10000) /* PIDFD_SELF: the calling thread (Linux 6.14) */
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

FSK_HIDDEN int scan_hot_pages(uint64_t *out, int child);
FSK_HIDDEN int emit_hot_pages(uint64_t *out);
FSK_HIDDEN uint64_t faults_hot_page(void);
FSK_HIDDEN uint64_t unwind_cache_hot_page(void);
FSK_HIDDEN int unwind_cache_dirty_pages(uint64_t *out, int max);
FSK_HIDDEN uint64_t unwind_hot_page(void);
FSK_HIDDEN uint64_t unwind_found_page(void);
/* One "forkscope: ..." line on stderr; parts joined, NULL-terminated. */
FSK_HIDDEN void sys_say(const char *first, ...) __attribute__((sentinel));
FSK_HIDDEN int sys_write_all(int fd, const void *buf, size_t len);
/* a then b, whole (one writev when both are there); 0 or -errno */
FSK_HIDDEN int sys_write2_all(int fd, const void *a, size_t alen, const void *b, size_t blen);
struct iovec;
FSK_HIDDEN int sys_writev_all(int fd, struct iovec *v, int n);

/* ---- emit.c: streams and per-thread buffers ---- */
#define TB_SPARE_MAX 64u /* second buffers of busy threads (tb_full), process-wide */
FSK_HIDDEN void emit_init(void);
/* The calling thread's tid, cached per thread (not in a vfork child). */
FSK_HIDDEN int32_t emit_tid(void);
/* Opens this image's stream and writes its header; 0 or -errno. */
/* Sets up this process's stream; the file is made, with its header, by
 * the first write (emit.c). fail_msg: what lost_say says if it cannot be. */
FSK_HIDDEN void emit_open_stream(uint32_t ppid, uint64_t parent_fork_ns, const char *fail_msg);
/* Makes the stream file now if no record did yet; where it cannot be made
 * or written, that is said, nothing is left behind and G.active is 0. */
FSK_HIDDEN void emit_header_flush(void);
/* G.exe from /proc/self/exe, when the START scan did not find it. */
FSK_HIDDEN void init_exe_path(void);
/* Reserves a record of `size` bytes (multiple of 8) in the calling thread's
 * buffer, header filled; NULL when it cannot (record counted as dropped).
 * ts FSK_TS_CLOCK stamps it with the buffer's cheap clock (malloc family);
 * a thread's records never go back in time. Must be followed by
 * emit_commit() with no hook call in between. */
#define FSK_TS_CLOCK 0
/* The same for a malloc-family record whose blocks all lie in heap windows
 * only this thread allocates in (emit_clock_own). */
#define FSK_TS_CLOCK_OWN 1
FSK_HIDDEN void *emit_reserve(uint16_t type, uint32_t size, uint64_t ts);
/* Compact FREE/ALLOC records (trace.h): emit_compact() in emit.h. */
FSK_HIDDEN void emit_commit(void);
/* Writes a record at once (lifecycle): first the calling thread's buffered
 * records, then this one. Safe in a signal handler that interrupted a hook. */
FSK_HIDDEN void emit_direct(void *rec, uint32_t size);
/* Flushes every thread's buffer (exit, exec, the flusher thread). `wait`
 * 1 spins for buffers being flushed by someone else, 0 skips them, and
 * EMIT_WAIT_SOME waits up to EMIT_WAIT_SOME_NS in all (a fatal signal's
 * handler: the flusher may be writing the full buffer its thread left,
 * and another thread that holds one may never let go). */
#define EMIT_WAIT_SOME 2
#define EMIT_WAIT_SOME_NS (20ull * 1000 * 1000)
FSK_HIDDEN void emit_flush_all(int wait);
FSK_HIDDEN void emit_flush_self(void);
/* The flusher, when kicked: writes the full buffers threads left it. */
FSK_HIDDEN void emit_write_full(void);
/* The flusher, each tick and when kicked: whether the system leaves it a
 * CPU for that (looks when threads filled buffers since it last did). */
FSK_HIDDEN void emit_load_check(void);
/* A hook writing several records in a row (a fork, an exit) holds them
 * and writes them with one check of the fd and one write: what fits in
 * buf waits there, a record that does not goes out with it (writev).
 * emit_hold_end, emit_flush_all and emit_end write out what is held; a
 * hold begun inside another is the outer one's. Per thread; a signal
 * handler that interrupts the hold's own copy or write writes through. */
struct emit_hold {
	struct emit_hold *outer;
	uint32_t len, busy;
	char buf[2048] __attribute__((aligned(8)));
};
FSK_HIDDEN void emit_hold_begin(struct emit_hold *h);
FSK_HIDDEN void emit_hold_end(struct emit_hold *h);
/* Writes END once; later records still go out (atexit handlers). */
FSK_HIDDEN void emit_end(uint32_t reason);
FSK_HIDDEN int emit_ended(void);
/* In a fork child: forget the parent's buffers and stream. */
FSK_HIDDEN void emit_reset_child(void);
FSK_HIDDEN void emit_thread_exit(void *buf);
FSK_HIDDEN void emit_note(uint32_t level, const char *text);
FSK_HIDDEN int emit_stream_fd(void);
/* Moves fd to a high number (out of the program's way); returns the fd. */
FSK_HIDDEN int emit_fd_high(int fd);

/* spare.c: stream files made ahead for fork children (see there) */
FSK_HIDDEN void spare_fill(void);
FSK_HIDDEN void spare_drop(void);
FSK_HIDDEN void spare_claim(void);
FSK_HIDDEN void spare_after_fork(pid_t child);
FSK_HIDDEN void spare_fork_child(uint32_t ppid);
struct stat;
FSK_HIDDEN int spare_take(const char *path, struct stat *st);
FSK_HIDDEN void spare_forget(void);

static inline void fsk_rec_init(struct fsk_rec *r, uint16_t type, uint32_t size, uint64_t ts)
{
	r->type = type;
	r->size = (uint16_t)size;
	r->tid = 0;
	r->ts_ns = ts;
}

/* Appends fsk_str(s) at p, returns the end (4-aligned); cuts at `end`.
 * emit_put_strn: the n bytes at s, whose length the caller knows. */
FSK_HIDDEN char *emit_put_str(char *p, const char *s, const char *end);
FSK_HIDDEN char *emit_put_strn(char *p, const char *s, uint32_t n, const char *end);
static inline uint32_t fsk_str_size(const char *s)
{
	return (uint32_t)((4 + sys_strlen(s) + 3) & ~3ul);
}

/* Writes several whole records with one write() (a scan), so no other
 * thread's records land between them. tid is filled in each record. */
FSK_HIDDEN void emit_block(void *buf, size_t len);
/* Tracing of this image stops for good (why: the NOTE's text). */
FSK_HIDDEN void emit_stop(const char *why);
/* Records lost before they reached a buffer: said by a DROPPED record. */
FSK_HIDDEN void emit_dropped(uint64_t records, uint64_t bytes);
/* heap.c: malloc calls before our constructor (kept, then written out). */
FSK_HIDDEN void heap_pre_close(void);
FSK_HIDDEN void heap_pre_flush(void);

/* ---- scan.c: address-space scans (see scan.h) ---- */
/* A scan now, on the calling thread (start, fork both sides, exec, exit,
 * wait). Takes t_guard itself; waits a bounded time for a running scan. */
FSK_HIDDEN void scan_run(uint16_t trigger);
/* Never use the PAGEMAP_SCAN ioctl (FORKSCOPE_PMSCAN=0). */
FSK_HIDDEN void scan_no_pmscan(void);
/* The exit scan; ends_now: the process ends right after it (_exit, _Exit,
 * abort), so the fault rings are left for the kernel's exit to unmap. */
FSK_HIDDEN void scan_run_exit(int ends_now);
/* A hook changed the mappings (FSK_SCAN_MMAP/BRK): the flusher scans soon. */
FSK_HIDDEN void scan_mark(uint16_t trigger);
/* A child was reaped (wait): a WAIT scan is due, made by the next scan. */
FSK_HIDDEN void scan_wait_due(void);
/* The flusher thread, each loop: mapping changes and the interval timer. */
FSK_HIDDEN void scan_tick(void);
FSK_HIDDEN void scan_reset_child(void);
FSK_HIDDEN void scan_prefork(void);
FSK_HIDDEN void scan_fork_emit(uint16_t trigger);
FSK_HIDDEN int scan_fault_classify(uint64_t addr, uint16_t *kind);
/* Room for faults_drain's records, under the scan lock outside a scan:
 * the scans' maps buffer (a fork child gets it empty, and the parent's
 * writes to it take no COW fault), *cap bytes; NULL before the first scan. */
FSK_HIDDEN char *scan_drain_buf(size_t *cap);
/* Pages shared at the last fork, by the baseline (0 without one). */
FSK_HIDDEN uint64_t scan_base_shared(void);

/* ---- faults.c ---- */
FSK_HIDDEN int faults_active(void);
FSK_HIDDEN void faults_after_fork(int child);
FSK_HIDDEN void faults_thread_start(void);
FSK_HIDDEN void faults_drain(int last);
FSK_HIDDEN void faults_stop(int keep_rings);
/* Registers memory of ours so scans classify it as forkscope. */
FSK_HIDDEN void scan_own_add(void *p, size_t len);
FSK_HIDDEN void scan_own_add_nodump(void *p, size_t len);
FSK_HIDDEN void scan_own_point(const void *p);

/* ---- unwind.c: call stacks (libunwind), interned per process ---- */
#define FSK_STACK_MAX 128      /* largest FORKSCOPE_STACK_DEPTH */
/* The caller's stack (our own frames left out) as an interned id, 0 when
 * stacks are off or it cannot be had. Writes the STACK record (and MODULE
 * records the stream lacks) first: into the thread's buffer, or with
 * emit_direct when `direct` (lifecycle records written through). Call it
 * before emit_reserve() of the record that holds the id. */
FSK_HIDDEN uint32_t unwind_stack(int direct);
FSK_HIDDEN void unwind_prefork(void);
FSK_HIDDEN void unwind_fork_child(void);
/* The header's stack_table: 1 in a fork child that shares its parent's
 * stack table, else 0 (trace.h). */
FSK_HIDDEN uint32_t unwind_stack_table(void);
/* Set while libunwind runs for us: the memory it maps is ours, not the
 * program's (unwind_mmap registers it so scans leave it out). */
FSK_HIDDEN extern __thread int t_unwinding;
/* libunwind's locks (its global cache's, its memory pool's) are not
 * fork-safe: a child forked while another thread held one would wait for
 * it forever at its next step. Every call into libunwind is counted in
 * unwind.c while it runs (unw_enter/unw_leave); a fork child that
 * inherits a count above 0 never enters libunwind and takes only the
 * stacks it can walk from what is already known. */
FSK_HIDDEN int unw_enter(void);  /* 0: do not enter */
FSK_HIDDEN void unw_leave(void);
/* Set while the stack cache learns a stack with unw_step (unwind_cache.c):
 * libunwind's table searches then count apart (FORKSCOPE_UNWIND_CHECK). */
FSK_HIDDEN extern __thread int t_cache_walking;
FSK_HIDDEN void *unwind_mmap(void *(*fn)(void *, size_t, int, int, int, off_t), void *addr,
			     size_t len, int prot, int flags, int fd, off_t off);
/* ---- unwind_cache.c: the thread's last repeated stack, checked without
 * libunwind (unwind.c calls these with t_unwinding set) ---- */
struct unwind_frame {
	uint64_t ip, sp, bp;           /* a program frame: its ip, CFA of its callee, rbp */
};
#if defined(__x86_64__)
/* The vfork stub's child call (proc.c), which builds no frame record. */
FSK_HIDDEN extern const char fsk_vfork_lo[], fsk_vfork_hi[];
#endif
/* The program frame that called into us: the first return address on our
 * frame-pointer chain (the preload is built with frame pointers) outside
 * our own extent [lo, hi), with the CFA of its callee and its rbp. f->ip 0
 * when that is unknown: no extent, a chain that looks wrong (which it
 * never should), or the vfork stub's child call, which keeps no frame (the
 * rbp above it is the program's, which may be anything). Inlined: the
 * chain starts at the caller's own frame. */
static inline __attribute__((always_inline)) void fsk_program_frame(struct unwind_frame *f,
								    uint64_t lo, uint64_t hi)
{
	uint64_t *fp = __builtin_frame_address(0);
	f->ip = 0;
	if (!lo || lo >= hi)
		return;
	for (int i = 0;; i++) {
		uint64_t ret = fp[1];
#if defined(__x86_64__)
		if (ret >= (uint64_t)(uintptr_t)fsk_vfork_lo && ret < (uint64_t)(uintptr_t)fsk_vfork_hi)
			return;
#endif
		if (ret < lo || ret >= hi) {
			f->ip = ret;
			f->sp = (uint64_t)(uintptr_t)(fp + 2);
			f->bp = fp[0];
			return;
		}
		uint64_t *up = (uint64_t *)(uintptr_t)fp[0];
		if (i == 16 || up <= fp || ((uintptr_t)up & 7))
			return;
		fp = up;
	}
}
FSK_HIDDEN uint32_t unwind_cache_lookup(struct unwind_frame *f, uint64_t lo, uint64_t hi);
FSK_HIDDEN void unwind_cache_fork_child(void);
/* FORKSCOPE_UNWIND_CHECK: a NOTE with what the comparison found. */
FSK_HIDDEN void unwind_check_report(void);
/* FORKSCOPE_UNWIND_CHECK: the rules this process learnt, and how many of
 * them libunwind's step gave, as text into [p, end); returns its end. */
FSK_HIDDEN char *unwind_learnt_report(char *p, const char *end);
/* FORKSCOPE_UNWIND_CHECK=3: what comparing the rules read from the
 * unwind tables with libunwind's found, as text into [p, end). */
FSK_HIDDEN void unwind_cfi_report(char *p, const char *end);
/* ---- cfi.c: a frame's rule from its object's .eh_frame ---- */
struct cfi_row {
	int end;                /* the return address is undefined: the outermost frame */
	int cfa_rbp;            /* CFA = rbp + cfa_off, else rsp + cfa_off */
	int64_t cfa_off;
	int rbp_saved;          /* the caller's rbp is at CFA + rbp_off, else still in rbp */
	int64_t rbp_off;
};
/* The row of the unwind table for return address ip (its call's, at
 * ip - 1): 1 when the object's .eh_frame_hdr and FDE give one this
 * reader follows, else 0. No allocation, no lock, no system call. */
FSK_HIDDEN int cfi_row(uint64_t ip, struct cfi_row *row);
/* The shared memory of the rules table (unwind.c makes it). */
#define FSK_RULES_BYTES (16ul << 14)
FSK_HIDDEN void unwind_rules_attach(void *mem, _Atomic uint64_t *pages);
FSK_HIDDEN uint64_t unwind_mod_key(uint64_t ip, uint64_t *off);
/* The extent [lo, hi) of the loaded object holding ip as a scan of the
 * objects found it (again when one was loaded since): 1, or 0 when none
 * holds it. */
FSK_HIDDEN int unwind_mod_extent(uint64_t ip, uint64_t *lo, uint64_t *hi);
/* A call stack's hash, as two chains folded over its return addresses
 * from the outermost in (fsk_sh_step from FSK_SH_A0, FSK_SH_B0), then
 * fsk_sh_key: a walk that keeps the upper frames of the thread's last one
 * keeps their part of the chains, and hashes only the frames below them
 * (3.4 of 26 in cc1). */
#define FSK_SH_A0 0x9e3779b97f4a7c15ull
#define FSK_SH_B0 0xc2b2ae3d27d4eb4full
static inline __attribute__((always_inline)) void fsk_sh_step(uint64_t *a, uint64_t *b, uint64_t ip)
{
	uint64_t x = (*a ^ ip) * 0xff51afd7ed558ccdull, y = (*b ^ ip) * 0xc4ceb9fe1a85ec53ull;
	*a = x >> 29 | x << 35;
	*b = y >> 31 | y << 33;
}

/* The key of a stack of n frames whose chains ended at a, b (never 0),
 * and a second hash in *h2 (the memo trusts the 96 bits of both). */
static inline uint64_t fsk_sh_key(uint64_t a, uint64_t b, uint32_t n, uint32_t *h2)
{
	uint64_t h = a ^ (uint64_t)n * 0x9e3779b97f4a7c15ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	uint64_t g = b ^ n;
	g ^= g >> 29;
	g *= 0x9e3779b97f4a7c15ull;
	*h2 = (uint32_t)(g >> 32);
	return h ? h : 1;
}

/* The stack from program frame f by the learnt rules of its return
 * addresses, reusing the thread's last walk: n frames, or 0 when
 * unw_backtrace must give it; with its hash (fsk_sh_key) in *key, *h2. */
FSK_HIDDEN uint32_t unwind_rules_walk(const struct unwind_frame *f, const uint64_t **ips, uint32_t depth,
				      uint64_t *key, uint32_t *h2);
FSK_HIDDEN void unwind_cache_missed(const struct unwind_frame *f, const uint64_t *ips, uint32_t n,
				    uint32_t depth, uint32_t id);
/* The thread's memo of interned stacks, by two hashes of their return
 * addresses (96 bits): the id, or 0 when it holds none for them. */
FSK_HIDDEN uint32_t unwind_memo_get(uint64_t h1, uint32_t h2);
FSK_HIDDEN void unwind_memo_put(uint64_t h1, uint32_t h2, uint32_t id);
/* The hot path's only cost when stacks are off: one branch. */
#define FSK_STACK(direct) (unlikely(G.stack_depth) ? unwind_stack(direct) : 0u)

/* ---- sample.c: sampled malloc tracing (trace.h) ---- */
/* mmaps the table of recorded live blocks: 0 or -1. */
FSK_HIDDEN int sample_init(void);
FSK_HIDDEN extern __thread uint64_t t_sample_left;
FSK_HIDDEN int sample_slow(size_t size);
/* Is a call of `size` bytes recorded? The hot path: a subtraction. */
static inline int sample_take(size_t size)
{
	uint64_t s = size | !size;
	if (likely(t_sample_left > s)) {
		t_sample_left -= s;
		return 0;
	}
	return sample_slow(size);
}
/* Remember / forget a recorded live block; add returns 0 when the table
 * is full (the block then goes unrecorded), remove 1 if it was there. */
FSK_HIDDEN int sample_add(const void *p);
FSK_HIDDEN int sample_remove_slow(const void *p);
FSK_HIDDEN void sample_fork_child(void);
/* Counters of recorded blocks by another hash of the address: most frees
 * learn from one load that their block was not recorded. */
#define SAMPLE_FILTER_BITS 15
FSK_HIDDEN extern uint16_t *sample_filter;
static inline uint64_t sample_filter_index(uint64_t a)
{
	return ((a >> 4) * 0xc2b2ae3d27d4eb4full) >> (64 - SAMPLE_FILTER_BITS);
}
/* Might p's block be recorded? 0: surely not. */
static inline int sample_maybe(const void *p)
{
	uint64_t i = sample_filter_index((uint64_t)(uintptr_t)p);
	return __atomic_load_n(&sample_filter[i], __ATOMIC_RELAXED) != 0;
}
static inline int sample_remove(const void *p)
{
	if (likely(!sample_maybe(p)))
		return 0;
	return sample_remove_slow(p);
}
/* heap.c: records a break move no hook saw (the flusher, while sampling). */
FSK_HIDDEN void heap_brk_poll(void);

/* ---- lost.c ---- */
/* Says "what path (errno): the trace misses events from HH:MM:SS on" once
 * per trace (see forkscope/lost.h); async-signal-safe, errno kept. */
FSK_HIDDEN void lost_say(const char *what, const char *path, int err);

/* ---- signals.c ---- */
FSK_HIDDEN void signals_init(void);
/* 1 when the program's own handler catches fatal signal sig. */
FSK_HIDDEN int signals_caught(int sig);

/* ---- proc.c ---- */
FSK_HIDDEN void proc_record_exit(int code, uint16_t how, int normal);
/* Whether environment string e is an LD_PRELOAD naming our library. */
FSK_HIDDEN int env_names_us(const char *e);
/* Takes our library out of such a string, in place: its path becomes
 * blanks, a separator, so the list goes on without it. */
FSK_HIDDEN void env_unname(char *e);

#endif
