/*
 * Start and end of a traced image: configuration from the environment, the
 * stream, the flusher thread, main's return, and the fork child's restart.
 */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/single_threaded.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "emit.h"
#include "fsk.h"

struct fsk_state G;
__thread int t_guard;
__thread int t_vfork_child;

static int env_int(const char *name, int def, int lo, int hi)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return def;
	long v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > 1000000)
			return def;
		v = v * 10 + (*s - '0');
	}
	return v < lo ? lo : v > hi ? hi : (int)v;
}

/* Keeps the FORKSCOPE_* variables so an exec into a stripped environment
 * can get them back (proc.c; LD_PRELOAD from G.preload_path). */
static void env_save(char **envp)
{
	char *p = init_env_saved, *end = init_env_saved + FSK_ENV_SAVED;
	for (char **e = envp; e && *e; e++) {
		if (sys_strncmp(*e, "FORKSCOPE_", 10) != 0)
			continue;
		size_t n = sys_strlen(*e) + 1;
		if (p + n > end)
			continue; /* too long: the ones after it may fit */
		__builtin_memcpy(p, *e, n);
		p += n;
	}
	G.env_saved_len = (int)(p - init_env_saved);
}

/* The trace directory must be absolute, a real directory (not a symlink)
 * and ours: we never write through a path someone else controls. One
 * lstat says all that (an open, fstat and close cost every image three
 * system calls and a struct file). */
static int dir_check(const char *dir)
{
	if (!dir || dir[0] != '/' || sys_strlen(dir) >= sizeof(G.dir) - 64)
		return -EINVAL;
	struct stat st;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR; /* a symlink too, even to a directory */
	if (st.st_uid != geteuid() && st.st_uid != getuid())
		return -EPERM;
	sys_stpcpy(G.dir, dir, G.dir + sizeof(G.dir));
	return 0;
}

#define FLUSH_NS (50ull * 1000 * 1000)
static _Atomic int s_kick; /* the flusher has work before its tick */
static _Atomic int s_flusher_started; /* asked for (flusher_start) */

void init_flusher_kick(void)
{
	/* none was started (a process that forks without one, init_fork_quiet:
	 * its spare pool asks at every fork): no write to a page fork shared,
	 * no futex call */
	if (!atomic_load_explicit(&s_flusher_started, memory_order_relaxed))
		return;
	if (!atomic_exchange(&s_kick, 1))
		syscall(SYS_futex, &s_kick, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static _Atomic int s_flusher_alive; /* its thread runs (not merely asked for) */

int init_flusher_alive(void)
{
	return atomic_load_explicit(&s_flusher_alive, memory_order_relaxed);
}

static _Atomic int s_flusher_stop;     /* the flusher is asked to end (init_flusher_pause) */
static _Atomic pid_t s_flusher_tid;
static _Atomic int s_flusher_created;  /* pthread_create made it */
static char *s_flusher_stack;          /* its stack mapping, kept for the next one */

static void *flusher_main(void *arg)
{
	(void)arg;
	t_guard = 1; /* nothing this thread does is the program's */
	atomic_store(&s_flusher_tid, sys_gettid());
	/* named by itself: pthread_setname_np from the creating thread
	 * writes /proc/self/task/TID/comm, an open, a write and a close on
	 * the program's thread (~50 us in a young process) */
	syscall(SYS_prctl, PR_SET_NAME, "forkscope", 0, 0, 0); /* not through our hook */
	atomic_store(&s_flusher_alive, 1);
	scan_own_point(&arg); /* the stack, if pthread had to allocate it */
	uint64_t next = sys_now_ns() + FLUSH_NS, epoch = 0;
	/* a first epoch: a bit set before there was a flusher to clear it
	 * would keep every thread from reusing stamps until the next tick */
	emit_clock_tick();
	for (;;) {
		if (atomic_load_explicit(&s_flusher_stop, memory_order_acquire))
			break;
		uint64_t now = sys_now_ns();
		/* a thread reusing clock reads: a new epoch each millisecond
		 * bounds how stale its stamps get (emit.h). One that reused
		 * them in the epoch that ends likely goes on: the next epoch
		 * is timed at once. Stopping after each (as this did) made
		 * that thread set EMIT_CLOCK_REUSING in a slow epoch and wake
		 * the flusher with a futex call, every millisecond. */
		if (epoch && now >= epoch) {
			int busy = emit_clock_reusing();
			emit_clock_tick();
			epoch = busy ? now + EMIT_EPOCH_NS : 0;
		}
		/* Stored before the look at the word (both seq_cst), as a
		 * thread sets the bit before it looks here: one of the two
		 * sees the other's, so no bit waits unseen for 50 ms. */
		atomic_store(&emit_fast_ticks, epoch != 0);
		if (!epoch && emit_clock_reused()) {
			epoch = now + EMIT_EPOCH_NS;
			atomic_store(&emit_fast_ticks, 1);
		}
		uint64_t until = epoch && epoch < next ? epoch : next;
		if (now < until) {
			struct timespec ts = { 0, (long)(until - now) };
			syscall(SYS_futex, &s_kick, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
			if (atomic_exchange(&s_kick, 0)) {
				emit_write_full();
				emit_load_check();
				spare_fill();
			}
			continue;
		}
		next = now + FLUSH_NS;
		if (G.active) {
			spare_fill();
			if (G.sample_bytes && G.malloc_on)
				heap_brk_poll();
			emit_flush_all(0);
			emit_load_check();
			scan_tick();
		}
	}
	emit_flush_all(0); /* nothing waits for a tick that will not come */
	atomic_store(&s_flusher_alive, 0);
	return NULL;
}

/* The flusher keeps every event visible within ~50 ms of its commit, even
 * from threads that went quiet. It blocks every signal, so the program's
 * signals still go to the program's threads. */

static void flusher_start(void)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t th;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* A stack of ours before the thread exists, so a scan in between does
	 * not count it as the program's memory; lowest page a guard. */
	size_t guard = G.page_size, len = 64 * 1024;
	char *stack = s_flusher_stack; /* a paused one's (its thread is gone) */
	if (!stack && (stack = sys_mmap(guard + len))) {
		scan_own_add(stack, guard + len);
		syscall(SYS_mprotect, stack, guard, PROT_NONE);
		/* a fork child has no flusher (its own comes with a stack of
		 * its own): the fork copies none of this one's page tables,
		 * and the flusher's next frames take no copy-on-write fault */
		syscall(SYS_madvise, stack, guard + len, MADV_WIPEONFORK);
		s_flusher_stack = stack;
	}
	if (stack) {
		pthread_attr_setstack(&attr, stack + guard, len);
	} else {
		pthread_attr_setstacksize(&attr, len);
	}
	atomic_store(&s_flusher_created, 1); /* before, for init_flusher_pause */
	if (pthread_create(&th, &attr, flusher_main, NULL) != 0)
		atomic_store(&s_flusher_created, 0);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* The START scan names the executable from the maps (scan.c); this is
 * for when it could not, before the header is written. */
void init_exe_path(void)
{
	ssize_t n = readlink("/proc/self/exe", G.exe, sizeof(G.exe) - 1);
	G.exe[n > 0 ? n : 0] = 0;
}

#pragma weak _dl_find_object

/* The loaded extent [*lo, *hi) of the object holding addr (its PT_LOAD
 * segments, from its program headers, which its first mapping holds), and
 * its path into path when given. Left alone when neither
 * _dl_find_object (glibc 2.35: a lookup) nor dladdr (which also scans
 * the object's symbols for the nearest: ~2 us each here) can tell. */
static void obj_extent(const void *addr, uint64_t *lo, uint64_t *hi, char *path, size_t size)
{
	struct dl_find_object fo;
	if (_dl_find_object && _dl_find_object((void *)addr, &fo) == 0 && fo.dlfo_link_map &&
	    fo.dlfo_map_start && fo.dlfo_map_end > fo.dlfo_map_start) {
		if (path && fo.dlfo_link_map->l_name)
			sys_stpcpy(path, fo.dlfo_link_map->l_name, path + size);
		*lo = (uint64_t)(uintptr_t)fo.dlfo_map_start;
		*hi = (uint64_t)(uintptr_t)fo.dlfo_map_end;
		return;
	}
	Dl_info info;
	if (!dladdr(addr, &info) || !info.dli_fbase)
		return;
	if (path && info.dli_fname)
		sys_stpcpy(path, info.dli_fname, path + size);
	const ElfW(Ehdr) *eh = info.dli_fbase;
	const ElfW(Phdr) *ph = (const void *)((const char *)eh + eh->e_phoff);
	uint64_t vlo = UINT64_MAX, vhi = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (ph[i].p_vaddr < vlo)
			vlo = ph[i].p_vaddr;
		if (ph[i].p_vaddr + ph[i].p_memsz > vhi)
			vhi = ph[i].p_vaddr + ph[i].p_memsz;
	}
	if (vlo >= vhi)
		return;
	/* dli_fbase is where the first segment's page was mapped */
	uint64_t bias = (uint64_t)(uintptr_t)info.dli_fbase - (vlo & ~(uint64_t)(G.page_size - 1));
	*lo = bias + vlo;
	*hi = bias + vhi;
}

FSK_HIDDEN void heap_init(void);
extern void *__tls_get_addr(void *); /* the dynamic linker's, to find it */

/* Whether the parent's environment already preloaded this library: then
 * the parent said "not tracing" itself, and a shell loop's thousand
 * children need not say it again. Reads the first 32 KiB of
 * /proc/PPID/environ (the constructor runs on the main stack), no malloc. */
static int parent_preloaded(void)
{
	char path[48], *p = sys_stpcpy(path, "/proc/", path + sizeof(path));
	sys_stpcpy(sys_utoa(p, (uint64_t)getppid(), path + sizeof(path)), "/environ",
		   path + sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[32768];
	size_t have = 0;
	ssize_t n;
	while (have < sizeof(buf) - 1 &&
	       (n = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0)
		have += (size_t)n;
	close(fd);
	buf[have] = 0;
	static const char var[] = "LD_PRELOAD=";
	for (const char *e = buf; e < buf + have; e += strlen(e) + 1)
		if (strncmp(e, var, sizeof(var) - 1) == 0 && strstr(e, "libforkscope"))
			return 1;
	return 0;
}

/* A process's youth (init_flusher_ensure) */
#define YOUNG_NS (2000ull * 1000)
#define YOUNG_FORK_RECS 64
#define YOUNG_IMAGE_RECS 16
static uint64_t s_young_since;  /* when this process's youth began; 0 when never young */
static uint32_t s_young_quota;
static _Atomic uint32_t s_young_recs;

static void young_start(uint32_t quota)
{
	s_young_since = sys_now_ns();
	s_young_quota = quota;
	atomic_store(&s_young_recs, 0);
}

__attribute__((constructor)) static void init_main(int argc, char **argv, char **envp)
{
	t_guard = 1;
	heap_pre_close();
	resolve_all();
	G.pid = getpid();
	G.page_size = (uint32_t)getpagesize();
	G.argc = argc;
	G.argv = argv;
	G.malloc_on = env_int("FORKSCOPE_MALLOC", 1, 0, 1);
	G.env_restore = env_int("FORKSCOPE_ENV_RESTORE", 1, 0, 1);
	G.stack_depth = env_int("FORKSCOPE_STACK_DEPTH", 32, 0, FSK_STACK_MAX);
	G.scan_ms = env_int("FORKSCOPE_SCAN_MS", 100, 0, 3600000);
	G.faults_on = env_int("FORKSCOPE_FAULTS", 1, 0, 1);
	G.unwind_check = env_int("FORKSCOPE_UNWIND_CHECK", 0, 0, 3);
	G.handoff = env_int("FORKSCOPE_HANDOFF", 2, 0, 2);
	if (!env_int("FORKSCOPE_POPULATE", 1, 0, 1))
		sys_populate_off = 1; /* for checking: faults as without MADV_POPULATE_* */
	if (!env_int("FORKSCOPE_PMSCAN", 1, 0, 1))
		scan_no_pmscan(); /* for checking: as on a kernel before 6.7 */
	G.sample_bytes = (uint64_t)env_int("FORKSCOPE_SAMPLE_BYTES", 0, 0, 1 << 30);
	G.sample_seed = (uint64_t)env_int("FORKSCOPE_SAMPLE_SEED", 0, 0, 1 << 30);
	if (G.sample_bytes && sample_init() < 0)
		G.malloc_on = 0; /* recording every call would mislead as much */
	obj_extent((void *)obj_extent, &G.self_lo, &G.self_hi, G.preload_path, sizeof(G.preload_path));
	obj_extent((void *)__tls_get_addr, &G.ldso_lo, &G.ldso_hi, NULL, 0);
	env_save(envp);
	emit_init();
	const char *rules = getenv("FORKSCOPE_RULES");
	if (rules && !sys_strncmp(rules, "/proc/", 6) && sys_strlen(rules) < sizeof(G.rules_path))
		sys_stpcpy(G.rules_path, rules, G.rules_path + sizeof(G.rules_path));
	const char *dir = getenv("FORKSCOPE_DIR");
	int r = dir_check(dir);
	if (r < 0) {
		/* a setup problem, not a loss: said by the first image of the tree
		 * (its children inherit the same environment and stay quiet) */
		if (!parent_preloaded()) {
			if (!dir)
				sys_say("not tracing: FORKSCOPE_DIR is not set (use `forkscope run`)",
					(char *)NULL);
			else if (r == -EPERM)
				sys_say("not tracing: FORKSCOPE_DIR belongs to another user: ", dir,
					(char *)NULL);
			else
				sys_say("not tracing: FORKSCOPE_DIR is not an absolute, usable directory: ",
					dir, (char *)NULL);
		}
		t_guard = 0;
		return;
	}
	emit_open_stream((uint32_t)getppid(), 0, "not tracing: cannot create a trace file in");
	heap_init();
	heap_pre_flush(); /* the calls of constructors that ran before this one */
	G.active = 1;
	G.hot = !G.malloc_on ? FSK_HOT_OFF
		: G.sample_bytes ? FSK_HOT_SAMPLED
		: G.stack_depth ? FSK_HOT_STACKS : FSK_HOT_FAST;
	signals_init();
	scan_run(FSK_SCAN_START);
	emit_header_flush(); /* with the START scan's records, if it had any */
	young_start(YOUNG_IMAGE_RECS);
	init_image_quiet();
	t_guard = 0;
}

/* Set while a memory-mapping hook (mmap family, brk, sbrk) records. An
 * allocator may call those holding its own lock: rustc's jemalloc maps a
 * new arena's memory holding its arenas lock, and a flusher started from
 * there called jemalloc's calloc for its TLS (pthread_create) and waited
 * on that lock for ever (rustc hung in 1 run of 4). Such records are
 * written through; a later call from elsewhere starts the flusher. */
__thread int t_map_hook;

/* Whether the hook we are in was called by the dynamic linker, or by
 * what we cannot tell. ld.so calls malloc and free holding locks that
 * pthread_create takes: libc's stack cache lock, held while a joined
 * thread's TLS is freed (__nptl_free_stacks -> _dl_deallocate_tls), and
 * its own while it grows a thread's TLS. A flusher started from there
 * would wait for that lock for ever (t_malloc_count hung so: its main
 * thread, joining its workers, ended the image's youth inside that free). */
static int called_by_ldso(void)
{
	struct unwind_frame f;
	fsk_program_frame(&f, G.self_lo, G.self_hi);
	return !f.ip || (f.ip >= G.ldso_lo && f.ip < G.ldso_hi);
}

/*
 * Starts the flusher the first time a thread buffers a record: a process
 * that only forks, execs or exits writes everything through and never
 * pays for a thread (fork-heavy trees have thousands of those).
 *
 * A young process gets none yet either: one younger than YOUNG_NS
 * (counted from the end of our part of its fork, or of the constructor in
 * an exec'd image) writes its records as they come, one write() each
 * (emit.c), so none waits unseen; the first record after that age, or
 * after its quota of records, starts the flusher and buffering.
 *  - A fork child: most children of a shell exec within a few hundred
 *    microseconds, mostly after a few mallocs, and a thread would cost
 *    them its creation, a second thread in the mm at the exec (which must
 *    kill it and wait for it to die) and the TLB shootdowns of a
 *    two-threaded mm (a bash loop of /bin/true: 0.74 -> 0.63 s without a
 *    flusher in the children). Quota: YOUNG_FORK_RECS.
 *  - An exec'd image: most programs of a build or a script allocate a
 *    little and end within a few milliseconds (sh -c, as, true with a
 *    locale), and the thread cost such an image ~80 us of its start (a
 *    program making 2 mallocs: +511 -> +429 us; with its first call
 *    stacks, whose records the young write together: +737 -> +566 us).
 *    A program that allocates a lot needs the flusher soon anyway, so its
 *    quota, YOUNG_IMAGE_RECS, only bounds the writes it makes first.
 */
int init_flusher_ensure(void)
{
	if (!G.active || t_vfork_child || atomic_load(&s_flusher_started))
		return 0;
	if (s_young_since && sys_now_ns() - s_young_since < YOUNG_NS &&
	    atomic_fetch_add(&s_young_recs, 1) < s_young_quota)
		return 1;
	if (t_map_hook || called_by_ldso())
		return 1; /* written through until a call from elsewhere */
	if (init_quiet_until) {
		if (sys_now_ns() < init_quiet_until && __libc_single_threaded)
			return 0; /* buffered, no flusher (init_fork_quiet) */
		init_quiet_until = 0;
	}
	if (!atomic_exchange(&s_flusher_started, 1))
		flusher_start();
	return 0;
}

/*
 * A process that forks keeps no flusher while it forks: once a process
 * has had a second thread, glibc's fork takes every lock of libc before
 * the fork and resets them all in the child, for good (it counts threads
 * that ran, not threads that run). Our flusher was that thread in most
 * traced processes that fork: a plain program forking 2000 times took
 * 820 us a fork with one thread that only sleeps against 634 us without,
 * and 14 page faults more a fork (glibc's lock words and code, in parent
 * and child), on a VM where a fault costs 12 to 17 us.
 *
 * So a process that never had a thread gets none from us within
 * FORK_QUIET_NS of its last fork. Its thread buffers its records and
 * writes them itself: every record of a fork, wait, exec, spawn or exit
 * writes the buffer first (emit_direct), a wait about to block writes it
 * too (proc.c), so does a full buffer. Its WAIT scans are made at once,
 * as in any process without a flusher (scan_wait_due). It reuses no
 * clock reads: nothing would end their epochs (emit.h; reused, stamps
 * were up to 13 ms off). Its first record after FORK_QUIET_NS without a
 * fork starts the flusher as in any other process, and so does a thread
 * of the program's (then glibc's fork takes its locks anyway). What it
 * gives up: records made after its last fork and before it blocks
 * elsewhere than in a wait stay buffered until its next record (the
 * flusher would write them within FLUSH_NS), and it gets no timer scans
 * while it forks (each fork scans it).
 */
#define FORK_QUIET_NS (50ull * 1000 * 1000)
_Atomic uint64_t init_quiet_until;

int init_fork_quiet(void)
{
	if (atomic_load(&s_flusher_started) || !__libc_single_threaded) {
		init_quiet_until = 0;
		return 0;
	}
	init_quiet_until = sys_now_ns() + FORK_QUIET_NS;
	return 1;
}

/*
 * A new image starts without a flusher too, for its first IMAGE_QUIET_NS:
 * as in a process that forks, its thread buffers its records (after the
 * young ones it writes through) and writes them itself, and its first
 * record after that time starts the flusher. Most images of a build or a
 * script live shorter than that (a gcc driver, as, cc1 on a small file,
 * sh, sed), and a thread costs a single-threaded program more than its
 * creation: glibc's malloc, stdio and fork take their locks from then on.
 * A shell too: bash started its flusher from its start-up records,
 * before its first fork, and kept it through its loop; its first fork
 * now comes within this time, and a forking process starts none.
 * make bench, 7 alternating runs: make -j2 of a small project 1.54x ->
 * 1.30x, the bash row 2.24x -> 1.95x (other quiet times on make -j2, 11
 * runs: 10 ms 1.42x, 20 ms 1.37x, 50 ms 1.34x, 100 ms 1.33x, against
 * 1.47x); one gcc -O1 -c of a small file: 70 -> 61 ms of CPU time
 * (untraced 40). Unchanged: a threaded program (it gets its flusher at
 * once: the malloc rows), fork_bench (it forks at once), cc1 on a big
 * file (it lives 300 ms). What it gives up is what a forking process
 * gives up: records made after the young ones and before the image
 * blocks for long (not in a wait, which writes them first) wait for its
 * next record, and no timer scan runs before its first record after
 * IMAGE_QUIET_NS.
 */
#define IMAGE_QUIET_NS (50ull * 1000 * 1000)

void init_image_quiet(void)
{
	if (__libc_single_threaded)
		init_quiet_until = sys_now_ns() + IMAGE_QUIET_NS;
}

void init_quiet_end(void)
{
	uint64_t until = init_quiet_until;
	int err = errno;
	init_quiet_until = 0;
	if (init_flusher_ensure())
		init_quiet_until = until; /* not from here (called_by_ldso): a later record */
	errno = err;
}

/*
 * The program is about to change its credentials, capabilities or
 * namespaces: the flusher must not be there. glibc makes every thread of
 * the process take a setuid-family change (a signal to each), and aborts
 * the process when one thread's result differs from another's; our
 * flusher has neither the capabilities nor the keep-caps flag that the
 * program's thread set for itself (both are per thread), so setpriv
 * --reuid --regid died of SIGABRT under forkscope. unshare and setns of a
 * user namespace refuse a process with more than one thread. So the
 * flusher ends (it writes out what is buffered first) and is gone from
 * the kernel before the call; a later record starts a new one, which
 * inherits the new credentials. Returns whether one was paused: the
 * caller passes that to init_flusher_resume after the call.
 */
int init_flusher_pause(void)
{
	if (!G.active || t_vfork_child || !atomic_load(&s_flusher_started) ||
	    atomic_exchange(&s_flusher_stop, 1))
		return 0; /* none, or another thread is pausing it */
	int e = errno;
	pid_t tid;
	while (!(tid = atomic_load(&s_flusher_tid))) {
		if (!atomic_load(&s_flusher_created)) {
			atomic_store(&s_flusher_stop, 0);
			errno = e;
			return 0; /* pthread_create failed: there is none */
		}
		sched_yield(); /* being created, or not run yet */
	}
	init_flusher_kick();
	/* gone from the kernel, not merely returned; at most ~2 s (a write of
	 * its to a stalled file system), and not at all where tgkill itself
	 * is refused (a seccomp filter): a thread that may still be there
	 * leaves its stack to it, the next flusher maps another */
	int waits = 0;
	while (syscall(SYS_tgkill, (pid_t)G.pid, tid, 0) == 0) {
		if (++waits > 100000) {
			s_flusher_stack = NULL;
			break;
		}
		struct timespec ts = { 0, 20 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (errno != ESRCH)
		s_flusher_stack = NULL;
	atomic_store(&s_flusher_tid, 0);
	atomic_store(&s_flusher_created, 0);
	atomic_store(&s_kick, 0);
	errno = e;
	return 1;
}

/* After the call init_flusher_pause was for: the next record may start a
 * flusher again (until then s_flusher_started kept other threads from
 * starting one in the middle). */
void init_flusher_resume(int paused)
{
	if (!paused)
		return;
	atomic_store(&s_flusher_stop, 0);
	atomic_store(&s_flusher_started, 0);
}

/* Whether this process has a flusher (scan.c leaves WAIT scans to it). */
int init_flusher_running(void)
{
	return atomic_load(&s_flusher_started);
}

/* Runs after the program's atexit handlers (our library was loaded first,
 * so its destructor runs last). */
__attribute__((destructor)) static void init_fini(void)
{
	if (G.active && !t_vfork_child)
		emit_end(FSK_END_EXIT);
}

/* In the child of fork(), before it returns to the program: the parent's
 * buffered records are the parent's; the child gets a stream of its own. */
void init_child_after_fork(uint64_t fork_ns)
{
	uint32_t ppid = (uint32_t)G.pid;
	G.pid = getpid();
	init_quiet_until = 0; /* it has not forked */
	young_start(YOUNG_FORK_RECS); /* our set-up's records written through too */
	sample_fork_child();
	scan_reset_child();
	emit_reset_child();
	unwind_fork_child();
	atomic_store(&s_flusher_started, 0);
	atomic_store(&s_flusher_tid, 0);
	atomic_store(&s_flusher_created, 0);
	atomic_store(&s_flusher_stop, 0);
	atomic_store(&s_flusher_alive, 0);
	atomic_store(&s_kick, 0);
	spare_fork_child(ppid);
	emit_open_stream(ppid, fork_ns, "cannot create a trace file in");
}

/* The child's youth is the program's time: our set-up (its stream, the
 * FORK record, the fault sampler, the fork scan) took 0.36 to 1.2 ms of
 * its 2 ms on a VM where a page fault costs 12 to 17 us (a bash child: 0.4 to
 * 1.05 ms), so a child that execs soon after could already be old. The
 * records the set-up wrote stay counted. */
void init_child_young(void)
{
	s_young_since = sys_now_ns(); /* young_start ran in init_child_after_fork */
}

static int (*s_main)(int, char **, char **);

static int main_wrapper(int argc, char **argv, char **envp)
{
	int r = s_main(argc, argv, envp);
	if (G.active && !t_vfork_child)
		proc_record_exit(r, FSK_EXIT_MAIN, 1);
	return r;
}

/* Wraps main so that a return from main is told apart from exit(). */
FSK_EXPORT int __libc_start_main(int (*main)(int, char **, char **), int argc, char **argv,
				 void (*init)(void), void (*fini)(void), void (*rtld_fini)(void),
				 void *stack_end)
{
	resolve_all();
	s_main = main;
	return real.libc_start_main(main_wrapper, argc, argv, init, fini, rtld_fini, stack_end);
}
