/*
 * Process lifecycle hooks: fork, vfork, posix_spawn, the exec family, the
 * exit paths and the wait family. Lifecycle records are written through at
 * once (emit_direct), also from a signal handler that interrupted a hook.
 * Blocking real calls (wait) never run under the guard, so a signal
 * handler's own calls during them are still traced.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fsk.h"

extern char **environ;

/* Off in a vfork child, and in a child of a raw clone() (CLONE_VM or
 * not): it runs with our state but is not G.pid, and its exec or _exit
 * recorded in G.pid's stream would be taken for the parent's. Its parent's
 * WAIT still says how it ended. */
static int lifecycle_on(void)
{
	if (unlikely(!real.fork))
		resolve_all();
	return G.active && !t_vfork_child && getpid() == (pid_t)G.pid;
}

/* ---- exit ---- */

/* The EXIT record, the exit scan, then every thread's buffer. `normal` = 0
 * in a fatal-signal handler: only async-signal-safe work there, so no
 * stack, no scan, and a buffer another thread is writing out is skipped
 * rather than awaited. A return from main has no stack either: its only
 * frames are libc's start code, and the first unwind of an image (which
 * /bin/true-like programs would pay just for that) costs ~300 us. */
void proc_record_exit(int code, uint16_t how, int normal)
{
	struct {
		struct fsk_rec h;
		struct fsk_exit e;
	} r = { 0 };
	struct emit_hold hold;
	emit_hold_begin(&hold); /* EXIT, the scan and the buffers: one write */
	fsk_rec_init(&r.h, FSK_REC_EXIT, sizeof(r), sys_now_ns());
	r.e.code = code;
	r.e.how = how;
	r.e.stack = normal && how != FSK_EXIT_MAIN ? FSK_STACK(1) : 0;
	emit_direct(&r, sizeof(r));
	if (normal)
		scan_run_exit(how == FSK_EXIT__EXIT || how == FSK_EXIT__EXIT2 || how == FSK_EXIT_ABORT);
	emit_flush_all(normal ? 1 : EMIT_WAIT_SOME);
	emit_hold_end(&hold);
}

FSK_EXPORT void exit(int code)
{
	if (lifecycle_on())
		proc_record_exit(code, FSK_EXIT_EXIT, 1);
	real.exit(code);
}

FSK_EXPORT void _exit(int code)
{
	if (lifecycle_on()) {
		proc_record_exit(code, FSK_EXIT__EXIT, 1);
		emit_end(FSK_END_EXIT);
	}
	real._exit(code);
}

FSK_EXPORT void _Exit(int code)
{
	if (lifecycle_on()) {
		proc_record_exit(code, FSK_EXIT__EXIT2, 1);
		emit_end(FSK_END_EXIT);
	}
	real._Exit(code);
}

FSK_EXPORT void abort(void)
{
	/* A handler of the program's may still catch SIGABRT and go on:
	 * then on_fatal flushes, and the end is recorded where it happens. */
	if (lifecycle_on() && !signals_caught(SIGABRT)) {
		proc_record_exit(SIGABRT, FSK_EXIT_ABORT, 1);
		emit_end(FSK_END_SIGNAL);
	}
	real.abort();
}

/* ---- children that never shared our pages ---- */

/*
 * A child made by vfork or posix_spawn runs in our address space until it
 * execs (CLONE_VM): it never shares a page of ours copy-on-write, so its
 * end changes nothing a scan of ours would show, and its reaping needs no
 * WAIT scan (make, gcc's driver and python's subprocess spawn all their
 * children so: make -j2 of a small project made 17 such scans, 3.7 ms).
 * Their pids wait here until reaped. A full table, or a child we did not
 * see made (glibc's system and popen spawn internally), leaves the child
 * out: its reaping gets its scan, as a fork child's does. A pid is taken
 * out when a fork of ours returns it (a stale entry of a child reaped
 * where we did not see it must not spare a fork child the scan), and a
 * fork child, whose children these are not, starts with none.
 */
#define NOCOW_SLOTS 64
static _Atomic pid_t s_nocow[NOCOW_SLOTS];

static void nocow_add(pid_t pid)
{
	for (int i = 0; i < NOCOW_SLOTS; i++) {
		pid_t z = 0;
		if (atomic_load_explicit(&s_nocow[i], memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_strong(&s_nocow[i], &z, pid))
			return;
	}
}

/* Whether pid was in the table; it is not any more. */
static int nocow_take(pid_t pid)
{
	for (int i = 0; i < NOCOW_SLOTS; i++) {
		pid_t p = pid;
		if (atomic_load_explicit(&s_nocow[i], memory_order_relaxed) == pid &&
		    atomic_compare_exchange_strong(&s_nocow[i], &p, 0))
			return 1;
	}
	return 0;
}

/* In a fork child: its parent's entries are not its children (written
 * only when there are any, so that the page is not copied for nothing). */
static void nocow_clear(void)
{
	for (int i = 0; i < NOCOW_SLOTS; i++)
		if (atomic_load_explicit(&s_nocow[i], memory_order_relaxed))
			atomic_store_explicit(&s_nocow[i], 0, memory_order_relaxed);
}

/* ---- fork ---- */

/* Stamped with the time just before the fork: the child may run, and even
 * end, before the parent gets here, and a reader must see the fork first. */
static void record_fork(uint16_t kind, pid_t pid, int err, uint64_t ts, uint32_t stack)
{
	struct {
		struct fsk_rec h;
		struct fsk_fork f;
	} r = { 0 };
	fsk_rec_init(&r.h, FSK_REC_FORK, sizeof(r), ts);
	r.f.child_pid = pid > 0 ? (uint32_t)pid : 0;
	r.f.err = pid < 0 ? err : 0;
	r.f.kind = kind;
	r.f.side = FSK_SIDE_PARENT;
	r.f.stack = stack;
	emit_direct(&r, sizeof(r));
}

/* Is RLIMIT_NPROC far enough from anything a program runs into that one
 * more task of ours cannot cost it a fork? (The default is half the
 * kernel's thread limit, tens of thousands; a program that caps its own
 * tasks sets a small one.) */
#define NPROC_ROOMY 1024

static int nproc_roomy(void)
{
	struct rlimit rl;
	return getrlimit(RLIMIT_NPROC, &rl) == 0 &&
	       (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= NPROC_ROOMY);
}

/* The records after fork, on each side, held into one write. Apart from
 * fork(): their hold (2 KiB) would otherwise sit in fork's frame, under
 * which the prefork scan's frames go, and the deeper the stack a fork
 * reaches, the more of its pages (shared by the fork) each side copies,
 * ~12 us a page here. */
static __attribute__((noinline)) void fork_child_records(uint32_t stack)
{
	struct emit_hold hold;
	emit_hold_begin(&hold); /* FORK, its stack and scan: one write */
	struct {
		struct fsk_rec h;
		struct fsk_fork f;
	} r = { 0 };
	fsk_rec_init(&r.h, FSK_REC_FORK, sizeof(r), sys_now_ns());
	r.f.child_pid = (uint32_t)G.pid;
	r.f.kind = FSK_FORK;
	r.f.side = FSK_SIDE_CHILD;
	r.f.stack = stack;
	emit_direct(&r, sizeof(r));
	faults_after_fork(1);
	scan_fork_emit(FSK_SCAN_FORK_CHILD);
	emit_hold_end(&hold); /* with the stream's header */
	emit_header_flush();
	init_child_young();
}

static __attribute__((noinline)) void fork_parent_records(pid_t pid, int err, uint64_t t0, uint32_t stack)
{
	struct emit_hold hold;
	emit_hold_begin(&hold);
	record_fork(FSK_FORK, pid, err, t0, stack);
	if (pid > 0) {
		faults_after_fork(0);
		scan_fork_emit(FSK_SCAN_FORK_PARENT);
	}
	emit_hold_end(&hold);
}

/* A system call with no call and no errno, inlined into fork: right
 * after the fork, the pages of the calls (libc's syscall, errno) may not
 * be mapped yet on the child's side. Only madvise and process_madvise go
 * here: their errors change nothing (the pages fault in as they would
 * have), and madvise ignores the arguments it does not take. */
static inline __attribute__((always_inline)) void fork_syscall(long nr, long a, long b, long c, long d,
							       long e)
{
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	(void)r;
}

/* The fork child's sys_code_iov, mapped first: fork's page is the only
 * one of ours the child runs before this. In one process_madvise where
 * the parent found it works (sys_pmadv), with no call either; a run it
 * could not map stays to fault in. */
static inline __attribute__((always_inline)) void fork_populate_code(void)
{
	if (sys_populate_off)
		return;
	if (sys_pmadv > 0) {
		fork_syscall(SYS_process_madvise, SYS_PIDFD_SELF, (long)(uintptr_t)sys_code_iov, sys_code_nruns,
			     MADV_POPULATE_READ, 0);
		return;
	}
	for (int i = 0; i < sys_code_nruns; i++)
		fork_syscall(SYS_madvise, (long)(uintptr_t)sys_code_iov[i].iov_base, (long)sys_code_iov[i].iov_len,
			     MADV_POPULATE_READ, 0, 0);
}

/* The pages of the stack cache the parent wrote since its last fork
 * (unwind_cache_dirty_pages), taken before this one. */
static __thread uint64_t t_fork_dirty[UNWIND_DIRTY_MAX];
static __thread int t_fork_ndirty;
static __thread uint64_t t_fork_found; /* unwind_found_page() before the fork */

/* The page of stack fork's frame is in and the one below it that each
 * side writes next (the child's exit path one more), copied in by one
 * madvise with no call, before fork_populate: its own frames (its list,
 * sys_populate's runs) lay ~1 KiB below, so where fork's frame sat within
 * that of the bottom of its page, both sides took a fault on the page
 * below before the madvise that was to copy it in. fork_bench 100 16,
 * ASLR off, over 64 environment sizes (the stack's offset in its page):
 * 2 faults a fork more in 13 of them before, 5 now; 31.5 -> 31.3 faults
 * a fork on average. The rest is glibc's own frames after the fork. */
static inline __attribute__((always_inline)) void fork_populate_stack(int child)
{
	if (sys_populate_off)
		return;
	uint64_t sp, below = child ? 2 : 1;
	__asm__ volatile("mov %%rsp, %0" : "=r"(sp));
	sp &= ~4095ull;
	fork_syscall(SYS_madvise, (long)(sp - 4096 * below), (long)(4096 * (below + 1)), MADV_POPULATE_WRITE, 0, 0);
}

/* Each side's pages of ours that it writes at every fork, copied in at
 * once (sys_populate): the parent's before its next fork, the child's
 * before it execs or exits. */
static void fork_populate(int child)
{
	uint64_t pg[FSK_HOT_MAX];
	int n = 0;
	pg[n++] = (uint64_t)(uintptr_t)&G;
	pg[n++] = (uint64_t)(uintptr_t)&t_guard; /* our TLS */
	n += emit_hot_pages(pg + n);
	n += scan_hot_pages(pg + n, child);
	if (child) {
		pg[n++] = faults_hot_page();
		pg[n++] = unwind_cache_hot_page();
		pg[n++] = unwind_hot_page();
		pg[n++] = t_fork_found; /* read before the fork: here, a fault */
	} else {
		for (int i = 0; i < t_fork_ndirty; i++)
			pg[n++] = t_fork_dirty[i];
	}
	sys_populate(pg, n);
}

FSK_EXPORT pid_t fork(void)
{
	if (!lifecycle_on())
		return real.fork();
	int saved = errno;
	emit_flush_self();
	int guard = t_guard;
	t_guard = 1; /* the atfork handlers' allocations are not the program's */
	/* With a flusher, the WAIT scan after each child waits for the next
	 * fork's prefork scan or a flusher tick instead of running on the
	 * wait path (--no-malloc: fork_bench 4.5x -> 3.9x). But a process
	 * that never had a thread goes on without one while it forks
	 * (init_fork_quiet): a thread would make each of its forks glibc's
	 * slow one, which costs it more (fork_bench 2.32x -> 2.07x without).
	 * Any other gets the flusher now, unless RLIMIT_NPROC is low, where
	 * its task could be the one a later fork of the program needs. */
	if (!init_flusher_running() && !init_fork_quiet() && nproc_roomy())
		init_flusher_ensure();
	unwind_prefork();
	/* Both sides record the same call, so its stack is taken once, here:
	 * the child takes none (its unwinding read the shared tables again
	 * into page tables fork did not copy, and copied pages of the stack
	 * cache: ~7 page faults a child). Interned before the fork, the id's
	 * STACK record is in the parent's stream, where the child's resolve. */
	uint32_t stack = FSK_STACK(1);
	scan_prefork();
	spare_claim();
	sys_populate_code_prepare();
	/* taken (and reset) before the fork: a write to our TLS after it
	 * would copy its page; kept in TLS, not in this frame, whose size
	 * decides which pages of stack the child's exit path runs on */
	t_fork_ndirty = unwind_cache_dirty_pages(t_fork_dirty, UNWIND_DIRTY_MAX);
	t_fork_found = unwind_found_page();
	uint64_t t0 = sys_now_ns();
	pid_t pid = real.fork();
	if (pid == 0 && G.active)
		fork_populate_code(); /* first: what follows runs there */
	if (pid >= 0 && G.active)
		fork_populate_stack(pid == 0);
	int err = errno;
	if (pid >= 0 && G.active) /* a stopped trace writes none of them */
		fork_populate(pid == 0);
	if (pid == 0) {
		nocow_clear();
		init_child_after_fork(t0);
		if (G.active)
			fork_child_records(stack);
		t_guard = guard;
		errno = saved;
		return 0;
	}
	spare_after_fork(pid);
	if (pid > 0)
		nocow_take(pid);
	t_guard = guard;
	fork_parent_records(pid, err, t0, stack);
	errno = pid < 0 ? err : saved;
	return pid;
}

/*
 * vfork cannot be wrapped by a C function: the child runs on the parent's
 * stack until it execs or exits, and would return through our frame. The
 * stub below keeps the return address in a register across the system
 * call, as glibc's own vfork does, and calls C only before the call and in
 * the parent afterwards. In the child, hooks stay out of the way
 * (t_vfork_child) except exec's environment repair.
 */
static __thread uint64_t t_vfork_ts;

FSK_HIDDEN int fsk_vfork_prepare(void)
{
	if (!lifecycle_on())
		return 0;
	emit_flush_self();
	t_vfork_ts = sys_now_ns();
	return 1;
}

FSK_HIDDEN void fsk_vfork_child(void)
{
	t_vfork_child = 1;
}

FSK_HIDDEN long fsk_vfork_parent(long ret, int record)
{
	t_vfork_child = 0;
	if (ret < 0 && ret > -4096) {
		if (record)
			record_fork(FSK_VFORK, -1, (int)-ret, t_vfork_ts, FSK_STACK(1));
		errno = (int)-ret;
		return -1;
	}
	if (record) {
		int saved = errno;
		record_fork(FSK_VFORK, (pid_t)ret, 0, t_vfork_ts, FSK_STACK(1));
		nocow_add((pid_t)ret);
		errno = saved;
	}
	return ret;
}

#if defined(__x86_64__)
/* The parent's calls build a frame record ([caller's rbp, return
 * address], as gcc's frame pointer does), so a stack taken in them finds
 * the program's frame from our own chain and is walked by the rules; the
 * CFI tells libunwind the same. Between the pop and the push the return
 * address lives in rdx: the child runs on this stack and may overwrite
 * its slot. The child's call makes no record: its range
 * (fsk_vfork_lo..hi) is where a frame-pointer walk must stop. */
__asm__(".text\n"
	".globl vfork\n"
	".type vfork,@function\n"
	".globl fsk_vfork_lo\n"
	".hidden fsk_vfork_lo\n"
	".globl fsk_vfork_hi\n"
	".hidden fsk_vfork_hi\n"
	"vfork:\n"
	"	.cfi_startproc\n"
	"	push %rbp\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	.cfi_offset %rbp, -16\n"
	"	mov %rsp, %rbp\n"
	"	call fsk_vfork_prepare\n"
	"	pop %rbp\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	.cfi_restore %rbp\n"
	"	mov %eax, %r8d\n"
	"	pop %rdx\n"            /* return address: kept in a register */
	"	.cfi_adjust_cfa_offset -8\n"
	"	.cfi_register %rip, %rdx\n"
	"	mov $58, %eax\n"        /* SYS_vfork */
	"	syscall\n"
	"	push %rdx\n"
	"	.cfi_adjust_cfa_offset 8\n"
	"	.cfi_offset %rip, -8\n"
	"	test %rax, %rax\n"
	"	jz fsk_vfork_lo\n"
	"	push %rbp\n"           /* parent: record, set errno */
	"	.cfi_adjust_cfa_offset 8\n"
	"	.cfi_offset %rbp, -16\n"
	"	mov %rsp, %rbp\n"
	"	mov %rax, %rdi\n"
	"	mov %r8d, %esi\n"
	"	call fsk_vfork_parent\n"
	"	pop %rbp\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	.cfi_restore %rbp\n"
	"	ret\n"
	"fsk_vfork_lo:\n"
	"	sub $8, %rsp\n"         /* child */
	"	.cfi_adjust_cfa_offset 8\n"
	"	call fsk_vfork_child\n"
	"	add $8, %rsp\n"
	"	.cfi_adjust_cfa_offset -8\n"
	"	xor %eax, %eax\n"
	"	ret\n"
	"fsk_vfork_hi:\n"
	"	.cfi_endproc\n"
	".size vfork, .-vfork\n");
#else
/* Elsewhere a vfork child is traced as a fork child would be. */
FSK_EXPORT pid_t vfork(void)
{
	return fork();
}
#endif

/* ---- exec and spawn ---- */

/* Where our path starts in LD_PRELOAD string e at or after from, or NULL. */
static const char *env_ours_at(const char *e, const char *from)
{
	size_t plen = sys_strlen(G.preload_path);
	if (!plen || sys_strncmp(e, "LD_PRELOAD=", 11))
		return NULL;
	for (const char *c = from ? from : e + 11; *c; c++)
		if (!sys_strncmp(c, G.preload_path, plen))
			return c;
	return NULL;
}

int env_names_us(const char *e)
{
	return env_ours_at(e, NULL) != NULL;
}

void env_unname(char *e)
{
	size_t plen = sys_strlen(G.preload_path);
	for (char *c = (char *)env_ours_at(e, NULL); c; c = (char *)env_ours_at(e, c + plen))
		for (size_t i = 0; i < plen; i++)
			c[i] = ' ';
}

static int env_has_ours(char *const envp[])
{
	int dir = 0, pre = 0;
	for (char *const *e = envp; e && *e; e++) {
		if (!sys_strncmp(*e, "FORKSCOPE_DIR=", 14))
			dir = 1;
		else
			pre |= env_names_us(*e);
	}
	return dir && pre;
}

/* Returns envp, or a copy (in its own mapping, returned in map and maplen) with
 * LD_PRELOAD and FORKSCOPE_* put back, when the program dropped them and
 * the user did not turn repair off. */
static char *const *env_fix(char *const envp[], void **map, size_t *maplen, int *restored)
{
	*map = NULL;
	*restored = 0;
	if (!G.env_restore || !G.preload_path[0] || env_has_ours(envp))
		return envp;
	size_t n = 0, strs = 0;
	const char *old_pre = NULL;
	for (char *const *e = envp; e && *e; e++, n++)
		if (!sys_strncmp(*e, "LD_PRELOAD=", 11))
			old_pre = *e + 11;
	if (old_pre)
		strs = sys_strlen(old_pre) + 1;
	size_t len = (n + 64) * sizeof(char *) + (size_t)G.env_saved_len + sys_strlen(G.preload_path) +
		     strs + 32;
	len = (len + 4095) & ~4095ul;
	char **out = sys_mmap(len);
	if (!out)
		return envp;
	char *sp = (char *)(out + n + 64), *send = (char *)out + len;
	size_t k = 0;
	for (char *const *e = envp; e && *e; e++)
		if (sys_strncmp(*e, "LD_PRELOAD=", 11) && sys_strncmp(*e, "FORKSCOPE_", 10))
			out[k++] = *e;
	for (char *s = init_env_saved; s < init_env_saved + G.env_saved_len && k < n + 60;) {
		out[k++] = s;
		s += sys_strlen(s) + 1;
	}
	out[k++] = sp;
	sp = sys_stpcpy(sp, "LD_PRELOAD=", send);
	sp = sys_stpcpy(sp, G.preload_path, send);
	if (old_pre && *old_pre) {
		sp = sys_stpcpy(sp, " ", send);
		sp = sys_stpcpy(sp, old_pre, send);
	}
	out[k] = NULL;
	*map = out;
	*maplen = len;
	*restored = 1;
	return out;
}

/* Finds what execvp would run, for the traceability check only. */
static int path_resolve(const char *file, char *out, size_t outlen)
{
	for (const char *s = file; *s; s++)
		if (*s == '/') {
			sys_stpcpy(out, file, out + outlen);
			return 0;
		}
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		char *p = out, *end = out + outlen;
		while (*path && *path != ':' && p < end - 1)
			*p++ = *path++;
		if (*path == ':')
			path++;
		*p = 0;
		if (p == out)
			p = sys_stpcpy(out, ".", end);
		p = sys_stpcpy(p, "/", end);
		sys_stpcpy(p, file, end);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

/* An image LD_PRELOAD cannot enter: static (no PT_INTERP), or set-id to
 * someone else (the loader then ignores LD_PRELOAD paths). */
static int untraceable(const char *file, int by_path)
{
	char path[1024];
	if (by_path) {
		if (path_resolve(file, path, sizeof(path)) < 0)
			return 0;
	} else {
		sys_stpcpy(path, file, path + sizeof(path));
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct stat st;
	int r = 0;
	if (sys_fstat(fd, &st) == 0 &&
	    (((st.st_mode & S_ISUID) && st.st_uid != getuid()) ||
	     ((st.st_mode & S_ISGID) && st.st_gid != getgid())))
		r = 1;
	Elf64_Ehdr eh;
	if (!r && pread(fd, &eh, sizeof(eh), 0) == (ssize_t)sizeof(eh) &&
	    !sys_strncmp((const char *)eh.e_ident, ELFMAG, SELFMAG) && eh.e_ident[EI_CLASS] == ELFCLASS64 &&
	    eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum < 64) {
		Elf64_Phdr ph[64];
		size_t sz = eh.e_phnum * sizeof(Elf64_Phdr);
		if (pread(fd, ph, sz, (off_t)eh.e_phoff) == (ssize_t)sz) {
			int interp = 0;
			for (int i = 0; i < eh.e_phnum; i++)
				if (ph[i].p_type == PT_INTERP)
					interp = 1;
			r = !interp;
		}
	}
	close(fd);
	return r;
}

/* Builds and writes an EXEC or SPAWN record: path and argv, cut to fit. */
static void record_exec(uint16_t type, uint16_t fn, const char *path, char *const argv[], uint32_t pid,
			int err, uint16_t flags, uint64_t ts)
{
	/* most records fit on the stack (as the stream header does): a
	 * mapping cost each exec and spawn an mmap, a page fault and an munmap */
	char small[2048] __attribute__((aligned(8)));
	size_t need = sizeof(struct fsk_rec) + sizeof(struct fsk_exec) + (path ? fsk_str_size(path) : 4) + 8;
	for (uint32_t i = 0; argv && argv[i] && need <= sizeof(small); i++)
		need += fsk_str_size(argv[i]);
	size_t cap = need <= sizeof(small) ? sizeof(small) : 64 * 1024;
	char *buf = cap == sizeof(small) ? small : sys_mmap(cap);
	if (!buf)
		return;
	struct fsk_rec *h = (void *)buf;
	struct fsk_exec *x = (void *)(h + 1);
	char *p = (char *)(x + 1), *end = buf + (cap < FSK_REC_MAX ? cap : FSK_REC_MAX);
	p = emit_put_str(p, path, end);
	uint32_t argc = 0;
	for (; argv && argv[argc]; argc++) {
		if (p + fsk_str_size(argv[argc]) > end - 8) {
			flags |= FSK_EF_ARGV_TRUNC;
			break;
		}
		p = emit_put_str(p, argv[argc], end);
	}
	while ((uintptr_t)(p - buf) & 7)
		*p++ = 0;
	fsk_rec_init(h, type, (uint32_t)(p - buf), ts);
	x->child_pid = pid;
	x->err = err;
	x->fn = fn;
	x->flags = flags;
	x->argc = argc;
	x->stack = FSK_STACK(1);
	emit_direct(buf, (uint32_t)(p - buf));
	if (buf != small)
		sys_munmap(buf, cap);
}

static void record_exec_fail(uint16_t fn, int err)
{
	struct {
		struct fsk_rec h;
		struct fsk_exec_fail f;
	} r = { 0 };
	fsk_rec_init(&r.h, FSK_REC_EXEC_FAIL, sizeof(r), sys_now_ns());
	r.f.err = err;
	r.f.fn = fn;
	emit_direct(&r, sizeof(r));
}

enum { VIA_EXECVE, VIA_EXECVPE, VIA_FEXECVE };

/*
 * After tracing stopped for a seccomp filter (creds.c), an environment
 * the program built itself may still name our library in LD_PRELOAD
 * (environ was fixed then, in place): the image it execs would load it
 * under the filter, and a refused system call of its constructor can kill
 * it. Such an environment is passed on without our library, as a copy on
 * the caller's stack: no system call (the filter may refuse any), and no
 * write to the program's strings (they may be read-only). As given when
 * no LD_PRELOAD entry names us, or when it is too big for the room here.
 */
#define UNPRELOAD_ENV 1024
#define UNPRELOAD_VAL 4096

struct unpreload {
	char *env[UNPRELOAD_ENV];
	char val[UNPRELOAD_VAL];
};

static char *const *env_unpreload(char *const envp[], struct unpreload *u)
{
	size_t n = 0, used = 0;
	int hit = 0;
	if (!envp)
		return envp;
	for (; envp[n]; n++)
		hit |= env_names_us(envp[n]);
	if (!hit || n >= UNPRELOAD_ENV)
		return envp;
	for (size_t i = 0; i <= n; i++) {
		u->env[i] = envp[i];
		if (i == n || !env_names_us(envp[i]))
			continue;
		size_t len = sys_strlen(envp[i]);
		if (used + len + 1 > UNPRELOAD_VAL)
			return envp;
		char *d = u->val + used;
		for (size_t k = 0; k <= len; k++)
			d[k] = envp[i][k];
		env_unname(d);
		u->env[i] = d;
		used += len + 1;
	}
	return u->env;
}

static int exec_via(int via, const char *path, int fd, char *const argv[], char *const env[])
{
	if (via == VIA_EXECVE)
		return real.execve(path, argv, env);
	if (via == VIA_EXECVPE)
		return real.execvpe(path, argv, env);
	return real.fexecve(fd, argv, env);
}

/* Its room on the stack only on this path. */
static __attribute__((noinline)) int exec_unpreloaded(int via, const char *path, int fd,
						      char *const argv[], char *const envp[])
{
	struct unpreload u;
	return exec_via(via, path, fd, argv, env_unpreload(envp, &u));
}

static int exec_common(uint16_t fn, int via, const char *path, int fd, char *const argv[],
		       char *const envp[])
{
	if (unlikely(!real.execve))
		resolve_all();
	void *map = NULL;
	size_t maplen = 0;
	int restored = 0;
	char *const *env = envp;
	if (G.active || t_vfork_child)
		env = env_fix(envp, &map, &maplen, &restored);
	int rec = lifecycle_on();
	if (rec) {
		uint16_t flags = restored ? FSK_EF_ENV_RESTORED : 0;
		if (via != VIA_FEXECVE && untraceable(path, via == VIA_EXECVPE))
			flags |= FSK_EF_UNTRACEABLE;
		char fdpath[64];
		if (via == VIA_FEXECVE) {
			char *q = sys_stpcpy(fdpath, "/dev/fd/", fdpath + sizeof(fdpath));
			sys_utoa(q, (uint64_t)fd, fdpath + sizeof(fdpath));
			path = fdpath;
		}
		struct emit_hold hold;
		emit_hold_begin(&hold); /* buffers, faults, scan and EXEC: one write */
		emit_flush_all(1);
		spare_drop(); /* the flusher makes another if exec fails */
		scan_run(FSK_SCAN_EXEC);
		record_exec(FSK_REC_EXEC, fn, path, argv, 0, 0, flags, sys_now_ns());
		emit_hold_end(&hold);
	}
	int r = unlikely(G.seccomp_stopped) ? exec_unpreloaded(via, path, fd, argv, env)
					    : exec_via(via, path, fd, argv, env);
	int err = errno;
	if (rec)
		record_exec_fail(fn, err);
	if (map)
		sys_munmap(map, maplen);
	errno = err;
	return r;
}

FSK_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	return exec_common(FSK_EXEC_EXECVE, VIA_EXECVE, path, -1, argv, envp);
}

FSK_EXPORT int execv(const char *path, char *const argv[])
{
	return exec_common(FSK_EXEC_EXECV, VIA_EXECVE, path, -1, argv, environ);
}

FSK_EXPORT int execvp(const char *file, char *const argv[])
{
	return exec_common(FSK_EXEC_EXECVP, VIA_EXECVPE, file, -1, argv, environ);
}

FSK_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	return exec_common(FSK_EXEC_EXECVPE, VIA_EXECVPE, file, -1, argv, envp);
}

FSK_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	return exec_common(FSK_EXEC_FEXECVE, VIA_FEXECVE, NULL, fd, argv, envp);
}

/* execl and friends: collect the variadic arguments into an array on the
 * stack (bounded, as the kernel bounds argv anyway). */
#define EXECL_MAX 4096
#define COLLECT_ARGS(arg, argv, n, ap)                                    \
	do {                                                              \
		argv[0] = (char *)arg;                                    \
		for (n = 1; argv[n - 1] && n < EXECL_MAX; n++)            \
			argv[n] = va_arg(ap, char *);                     \
		if (argv[n - 1]) {                                        \
			errno = E2BIG;                                    \
			va_end(ap);                                       \
			return -1;                                        \
		}                                                         \
	} while (0)

FSK_EXPORT int execl(const char *path, const char *arg, ...)
{
	char *argv[EXECL_MAX];
	int n;
	va_list ap;
	va_start(ap, arg);
	COLLECT_ARGS(arg, argv, n, ap);
	va_end(ap);
	return exec_common(FSK_EXEC_EXECL, VIA_EXECVE, path, -1, argv, environ);
}

FSK_EXPORT int execlp(const char *file, const char *arg, ...)
{
	char *argv[EXECL_MAX];
	int n;
	va_list ap;
	va_start(ap, arg);
	COLLECT_ARGS(arg, argv, n, ap);
	va_end(ap);
	return exec_common(FSK_EXEC_EXECLP, VIA_EXECVPE, file, -1, argv, environ);
}

FSK_EXPORT int execle(const char *path, const char *arg, ...)
{
	char *argv[EXECL_MAX];
	int n;
	va_list ap;
	va_start(ap, arg);
	COLLECT_ARGS(arg, argv, n, ap);
	char **envp = va_arg(ap, char **);
	va_end(ap);
	return exec_common(FSK_EXEC_EXECLE, VIA_EXECVE, path, -1, argv, envp);
}

static int spawn_via(uint16_t fn, pid_t *child, const char *path, const posix_spawn_file_actions_t *fa,
		     const posix_spawnattr_t *attr, char *const argv[], char *const env[])
{
	return fn == FSK_SPAWN_POSIX_SPAWN ? real.posix_spawn(child, path, fa, attr, argv, env)
					   : real.posix_spawnp(child, path, fa, attr, argv, env);
}

static __attribute__((noinline)) int spawn_unpreloaded(uint16_t fn, pid_t *child, const char *path,
						       const posix_spawn_file_actions_t *fa,
						       const posix_spawnattr_t *attr, char *const argv[],
						       char *const envp[])
{
	struct unpreload u;
	return spawn_via(fn, child, path, fa, attr, argv, env_unpreload(envp, &u));
}

static int spawn_common(uint16_t fn, pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
			const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	if (unlikely(!real.posix_spawn))
		resolve_all();
	void *map = NULL;
	size_t maplen = 0;
	int restored = 0;
	char *const *env = envp;
	int rec = lifecycle_on();
	if (rec)
		env = env_fix(envp, &map, &maplen, &restored);
	pid_t child = 0;
	int saved = errno;
	uint64_t t0 = sys_now_ns();
	int r = unlikely(G.seccomp_stopped) ? spawn_unpreloaded(fn, &child, path, fa, attr, argv, env)
					    : spawn_via(fn, &child, path, fa, attr, argv, env);
	if (pid)
		*pid = child;
	if (rec) {
		uint16_t flags = restored ? FSK_EF_ENV_RESTORED : 0;
		if (r == 0 && untraceable(path, fn == FSK_SPAWN_POSIX_SPAWNP))
			flags |= FSK_EF_UNTRACEABLE;
		/* stamped before the call, like FORK: the child may run first */
		record_exec(FSK_REC_SPAWN, fn, path, argv, r == 0 ? (uint32_t)child : 0, r, flags, t0);
		if (r == 0 && child > 0)
			nocow_add(child);
	}
	if (map)
		sys_munmap(map, maplen);
	errno = saved;
	return r;
}

FSK_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
			   const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	return spawn_common(FSK_SPAWN_POSIX_SPAWN, pid, path, fa, attr, argv, envp);
}

FSK_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			    const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	return spawn_common(FSK_SPAWN_POSIX_SPAWNP, pid, file, fa, attr, argv, envp);
}

/* ---- wait ---- */

static _Atomic uint32_t s_polls; /* empty WNOHANG polls since the last WAIT */

/* A reaped child's WAIT, then the scan it calls for, made at once where
 * no flusher runs (as scan_wait_due would): the WAIT, the faults drained
 * and the scan in one write instead of three. Apart from record_wait: the
 * hold's 2 KiB of stack go only under a wait that scans. */
static __attribute__((noinline)) void wait_scan(void *rec, uint32_t size)
{
	struct emit_hold hold;
	emit_hold_begin(&hold);
	emit_direct(rec, size);
	scan_run(FSK_SCAN_WAIT);
	emit_hold_end(&hold);
}

static void record_wait(uint16_t fn, int pid_arg, pid_t res, int status, int options)
{
	if (res == 0) {
		atomic_fetch_add(&s_polls, 1);
		return;
	}
	if (res < 0)
		return; /* ECHILD, EINTR: nothing happened to a child */
	struct {
		struct fsk_rec h;
		struct fsk_wait w;
	} r = { 0 };
	fsk_rec_init(&r.h, FSK_REC_WAIT, sizeof(r), sys_now_ns());
	r.w.pid_arg = pid_arg;
	r.w.result = res;
	r.w.raw_status = status;
	r.w.fn = fn;
	if (WIFEXITED(status)) {
		r.w.state = FSK_WS_EXITED;
		r.w.value = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		r.w.state = FSK_WS_SIGNALED;
		r.w.value = WTERMSIG(status);
		r.w.core = WCOREDUMP(status) ? 1 : 0;
	} else if (WIFSTOPPED(status)) {
		r.w.state = FSK_WS_STOPPED;
		r.w.value = WSTOPSIG(status);
	} else if (WIFCONTINUED(status)) {
		r.w.state = FSK_WS_CONTINUED;
	}
	r.w.nohang = (options & WNOHANG) ? 1 : 0;
	r.w.nowait = (options & WNOWAIT) ? 1 : 0;
	/* read first: a write to a page fork shared copies it */
	r.w.polls = atomic_load(&s_polls) ? atomic_exchange(&s_polls, 0) : 0;
	int scan = (r.w.state == FSK_WS_EXITED || r.w.state == FSK_WS_SIGNALED) && !r.w.nowait &&
		   !nocow_take(res);
	if (scan && !init_flusher_running()) {
		wait_scan(&r, sizeof(r));
		return;
	}
	emit_direct(&r, sizeof(r));
	if (scan)
		scan_wait_due();
}

/* A wait that may block, in a process that goes on without a flusher
 * while it forks (init_fork_quiet): what its thread buffered goes out
 * first, so none of it waits unseen for as long as the child runs (not
 * from a signal handler that interrupted a hook of ours: as emit_direct). */
static void wait_flush(int options)
{
	if (unlikely(init_quiet_until) && !(options & WNOHANG) && !t_guard) {
		int err = errno;
		emit_flush_self();
		errno = err;
	}
}

FSK_EXPORT pid_t wait(int *status)
{
	if (!lifecycle_on())
		return real.wait(status);
	int st = 0;
	wait_flush(0);
	pid_t r = real.wait(&st);
	int err = errno;
	if (status && r > 0)
		*status = st;
	record_wait(FSK_WAIT_WAIT, -1, r, st, 0);
	errno = err;
	return r;
}

FSK_EXPORT pid_t waitpid(pid_t pid, int *status, int options)
{
	if (!lifecycle_on())
		return real.waitpid(pid, status, options);
	int st = 0;
	wait_flush(options);
	pid_t r = real.waitpid(pid, &st, options);
	int err = errno;
	if (status && r > 0)
		*status = st;
	record_wait(FSK_WAIT_WAITPID, pid, r, st, options);
	errno = err;
	return r;
}

FSK_EXPORT pid_t wait3(int *status, int options, struct rusage *ru)
{
	if (!lifecycle_on())
		return real.wait3(status, options, ru);
	int st = 0;
	wait_flush(options);
	pid_t r = real.wait3(&st, options, ru);
	int err = errno;
	if (status && r > 0)
		*status = st;
	record_wait(FSK_WAIT_WAIT3, -1, r, st, options);
	errno = err;
	return r;
}

FSK_EXPORT pid_t wait4(pid_t pid, int *status, int options, struct rusage *ru)
{
	if (!lifecycle_on())
		return real.wait4(pid, status, options, ru);
	int st = 0;
	wait_flush(options);
	pid_t r = real.wait4(pid, &st, options, ru);
	int err = errno;
	if (status && r > 0)
		*status = st;
	record_wait(FSK_WAIT_WAIT4, pid, r, st, options);
	errno = err;
	return r;
}

FSK_EXPORT int waitid(idtype_t idtype, id_t id, siginfo_t *info, int options)
{
	if (!lifecycle_on())
		return real.waitid(idtype, id, info, options);
	siginfo_t si;
	__builtin_memset(&si, 0, sizeof(si));
	wait_flush(options);
	int r = real.waitid(idtype, id, &si, options);
	int err = errno;
	if (info && r == 0)
		*info = si;
	if (r == 0) {
		int st = 0;
		switch (si.si_code) {
		case CLD_EXITED: st = (si.si_status & 0xff) << 8; break;
		case CLD_KILLED: st = si.si_status & 0x7f; break;
		case CLD_DUMPED: st = (si.si_status & 0x7f) | 0x80; break;
		case CLD_STOPPED:
		case CLD_TRAPPED: st = ((si.si_status & 0xff) << 8) | 0x7f; break;
		case CLD_CONTINUED: st = 0xffff; break;
		}
		record_wait(FSK_WAIT_WAITID, (int)id, si.si_pid, st, options);
	}
	errno = err;
	return r;
}
