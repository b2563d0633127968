/*
 * Spare stream files. Creating a file costs a fork child ~10 us on a
 * quiet file system and hundreds after many files were deleted (ext4
 * looks through recently freed inodes), all on the fork path. So a
 * process that forks keeps a few empty files made ahead by its flusher
 * thread, off the fork path; each fork hands the next one to its child,
 * which renames it to its own stream name and writes its header there.
 *
 * The spares of a process are FSK_SPARE_PREFIX<pid>.<tag>.<n> for n in
 * [s_next, s_made), the tag telling apart processes of the same pid: no
 * reader takes them for streams. Only names are
 * kept, no fds (a program that closes every fd cannot notice them). A
 * fork claims n with a compare-and-swap, so no lock crosses the fork and
 * two forks never get the same file. The pool grows while forks find it
 * empty (a process that forks twice makes one spare, a fork loop up to
 * SPARE_MAX), and the flusher is woken when half of it is gone, not at
 * every fork: a wake-up costs the forking parent more than a file. Where
 * files are cheap (tmpfs, a quiet ext4) the flusher's work and wake-ups
 * cost more than the child saves: a pool whose files took less than
 * SPARE_CHEAP_NS each stops, and is tried again SPARE_RETRY_NS later.
 * What is left is removed at exit and exec; `forkscope run` removes what
 * a killed process left.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fsk.h"

#define SPARE_MAX 64u
#define SPARE_CHEAP_NS (30ull * 1000)
#define SPARE_RETRY_NS (2000ull * 1000 * 1000)

static _Atomic uint32_t s_next;   /* first spare not handed out */
static _Atomic uint32_t s_made;   /* spares [s_next, s_made) exist */
static _Atomic uint32_t s_want;   /* pool size the flusher keeps, 0 = none */
static _Atomic int s_dry;         /* a fork found the pool empty */
static uint32_t s_tag;            /* set with the first s_want */
static uint64_t s_retry_ns;       /* files were cheap: no pool before then */
static __thread uint32_t t_claim; /* n + 1 of the spare this fork hands over */

static char *spare_path(char *buf, const char *end, uint32_t pid, uint32_t tag, uint32_t n)
{
	char *p = sys_stpcpy(buf, G.dir, end);
	p = sys_stpcpy(p, "/" FSK_SPARE_PREFIX, end);
	p = sys_utoa(p, pid, end);
	p = sys_stpcpy(p, ".", end);
	p = sys_utoa(p, tag, end);
	p = sys_stpcpy(p, ".", end);
	return sys_utoa(p, n, end);
}

/* The flusher, when woken and on every tick: tops the pool up. Errors
 * only mean that the next children create their files themselves. */
void spare_fill(void)
{
	uint32_t want = atomic_load(&s_want);
	if (!G.active || !want || emit_ended())
		return;
	if (atomic_exchange(&s_dry, 0) && want < SPARE_MAX)
		atomic_store(&s_want, want *= 2);
	char path[sizeof(G.dir) + 64];
	uint32_t made = atomic_load(&s_made), n = 0;
	uint64_t t0 = sys_now_ns();
	while (made - atomic_load(&s_next) < want) {
		spare_path(path, path + sizeof(path), (uint32_t)G.pid, s_tag, made);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			break;
		close(fd);
		atomic_store(&s_made, made + 1);
		made++;
		n++;
	}
	uint64_t t1 = sys_now_ns();
	if (n && t1 - t0 < n * SPARE_CHEAP_NS) {
		s_retry_ns = t1 + SPARE_RETRY_NS;
		atomic_store(&s_want, 0); /* what is made is still handed out */
	}
	if (emit_ended())
		spare_drop(); /* the process ended meanwhile */
}

/* Removes the spares nobody took (exit, exec): async-signal-safe. */
void spare_drop(void)
{
	char path[sizeof(G.dir) + 64];
	uint32_t made = atomic_load(&s_made), n = atomic_load(&s_next);
	while (n < made) {
		if (!atomic_compare_exchange_weak(&s_next, &n, n + 1))
			continue;
		spare_path(path, path + sizeof(path), (uint32_t)G.pid, s_tag, n);
		unlink(path);
		n++;
	}
}

/* In fork(), before the real call: this fork's child gets a spare. */
void spare_claim(void)
{
	uint32_t n = atomic_load(&s_next);
	t_claim = 0;
	do {
		if (n >= atomic_load(&s_made)) {
			if (atomic_load(&s_want) && !atomic_load(&s_dry))
				atomic_store(&s_dry, 1); /* no needless write: fork made the page shared */
			return;
		}
	} while (!atomic_compare_exchange_weak(&s_next, &n, n + 1));
	t_claim = n + 1;
}

/* In the parent after fork: a spare a failed fork claimed is removed;
 * the flusher is woken when half of the pool is gone. */
void spare_after_fork(pid_t child)
{
	uint32_t claim = t_claim;
	t_claim = 0;
	if (child < 0 && claim) {
		char path[sizeof(G.dir) + 64];
		spare_path(path, path + sizeof(path), (uint32_t)G.pid, s_tag, claim - 1);
		unlink(path);
	}
	if (child <= 0)
		return;
	uint32_t want = atomic_load(&s_want);
	if (!want) {
		/* the first fork (or the first after a retry time): the next
		 * tick makes one, and times it */
		uint32_t zero = 0;
		if (s_retry_ns && sys_now_ns() < s_retry_ns)
			return;
		if (!s_tag)
			s_tag = (uint32_t)sys_now_ns() | 1;
		atomic_compare_exchange_strong(&s_want, &zero, 1);
		return;
	}
	uint32_t left = atomic_load(&s_made) - atomic_load(&s_next);
	if (left == want / 2 || (!left && !claim))
		init_flusher_kick();
}

/* In the fork child, before its stream is opened: the pool was the
 * parent's, this process starts with none; it keeps the spare claimed
 * for it, named after the parent (ppid). */
static char s_taken[sizeof(G.dir) + 64]; /* the claimed spare's path, or "" */

void spare_fork_child(uint32_t ppid)
{
	s_taken[0] = 0;
	if (t_claim)
		spare_path(s_taken, s_taken + sizeof(s_taken), ppid, s_tag, t_claim - 1);
	t_claim = 0;
	s_tag = 0;
	s_retry_ns = 0;
	atomic_store(&s_next, 0);
	atomic_store(&s_made, 0);
	atomic_store(&s_want, 0);
	atomic_store(&s_dry, 0);
}

/*
 * In the fork child, from emit_open_stream: renames its spare to path and
 * opens it. Returns the fd (its fstat in *st), -EEXIST when path is taken
 * (the caller tries the next name), or another -errno when there is no
 * usable spare (the caller creates the file).
 */
int spare_take(const char *path, struct stat *st)
{
	if (!s_taken[0])
		return -ENOENT;
	if (syscall(SYS_renameat2, AT_FDCWD, s_taken, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		int err = errno;
		if (err == EEXIST)
			return -EEXIST;
		spare_forget();
		return -err;
	}
	s_taken[0] = 0;
	/* the directory is ours (0700), but a file is used only if it is the
	 * empty regular file we made */
	int fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && sys_fstat(fd, st) == 0 && S_ISREG(st->st_mode) && st->st_size == 0 &&
	    st->st_nlink == 1 && st->st_uid == geteuid())
		return fd;
	if (fd >= 0)
		close(fd);
	unlink(path);
	return -ESTALE;
}

/* The child's spare, when it was not used. */
void spare_forget(void)
{
	if (s_taken[0])
		unlink(s_taken);
	s_taken[0] = 0;
}
