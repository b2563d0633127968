/*
 * hostile2: more programs that fight the tracer (issue 7), one case per run.
 *
 * Usage: hostile2 CASE
 *   clonevm   raw clone(CLONE_VM) children on their own stacks that make
 *             a few syscalls and end by syscall(SYS_exit) and by _exit();
 *             then clone(CLONE_VM|CLONE_VFORK) whose child execs /bin/true;
 *             the parent reaps each with waitpid(__WALL)
 *   threads   8 threads start and pthread_exit in a loop while the main
 *             thread forks 200 children that malloc MALLOCS blocks, write
 *             and _exit with a known code
 *   nproc     run unprivileged: RLIMIT_NPROC a few tasks above what the
 *             user runs now; fork until fork fails with EAGAIN, then let
 *             every child exit; its first malloc is after the limit is set
 *   nproclate the same, with the first malloc when fork has failed: a
 *             tracer that wants a thread then cannot have one
 * Each case prints "@ expect" lines (samples/sample.h) and exits 0 if the
 * program itself saw what it expected. Extra keys: malloc_calls (exact
 * malloc count of a child), "@ clone" (a CLONE_VM child and how its
 * parent's waitpid saw it end), "@ nproc" (forks that succeeded, errno of
 * the one that failed).
 */
#include "../../samples/sample.h"
#include "cases.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#define STACK_SIZE (64 * 1024)
#define CHILDREN 200
#define MALLOCS 37
#define SPAWNERS 8
#define NPROC_ROOM 6

/* ---- clonevm ---- */

static volatile int g_shared; /* the clone child writes the parent's memory */

static int child_sys_exit(void *arg)
{
	/* A few syscalls of its own, no libc state touched. */
	pid_t self = (pid_t)syscall(SYS_getpid);
	pid_t parent = (pid_t)syscall(SYS_getppid);
	g_shared = (int)(long)arg + (self != parent);
	syscall(SYS_write, STDOUT_FILENO, "clone child: syscalls done\n", 27);
	syscall(SYS_exit, 7);
	return 99;
}

static int child_libc_exit(void *arg)
{
	(void)arg;
	g_shared += 100;
	syscall(SYS_write, STDOUT_FILENO, "clone child: calling _exit\n", 27);
	_exit(8);
}

static int child_exec(void *arg)
{
	(void)arg;
	char *argv[] = { "true", NULL };
	execve("/bin/true", argv, environ);
	syscall(SYS_exit, 99);
	return 99;
}

static pid_t clone_on_stack(int (*fn)(void *), int flags, void *arg, char **stack)
{
	*stack = malloc(STACK_SIZE);
	if (!*stack)
		die("malloc");
	fflush(stdout);
	pid_t pid = clone(fn, *stack + STACK_SIZE, flags | SIGCHLD, arg);
	if (pid < 0)
		die("clone");
	return pid;
}

static void reap_clone(pid_t pid, int code, const char *how)
{
	int status;
	while (waitpid(pid, &status, __WALL) < 0)
		if (errno != EINTR)
			die("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != code) {
		say("unexpected status 0x%04x for clone child %d\n", status, (int)pid);
		g_fail = 1;
	}
	at("clone", "pid=%d ppid=%d how=%s status=0x%04x code=%d", (int)pid, (int)getpid(), how,
	   status, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void case_clonevm(void)
{
	char *stack;
	pid_t a = clone_on_stack(child_sys_exit, CLONE_VM, (void *)41L, &stack);
	reap_clone(a, 7, "sys_exit");
	free(stack);
	say("the clone child wrote %d into the parent's memory\n", g_shared);
	if (g_shared != 42)
		g_fail = 1;
	pid_t b = clone_on_stack(child_libc_exit, CLONE_VM, NULL, &stack);
	reap_clone(b, 8, "_exit");
	free(stack);
	say("after the second clone child: %d\n", g_shared);
	if (g_shared != 142)
		g_fail = 1;
	pid_t c = clone_on_stack(child_exec, CLONE_VM | CLONE_VFORK, NULL, &stack);
	reap_clone(c, 0, "vfork_exec");
	free(stack);
	/* The parent goes on: malloc, a real fork, its own exit. */
	for (int i = 0; i < 10; i++)
		if (!malloc(32))
			die("malloc");
	pid_t d = xfork();
	if (d == 0)
		_exit(3);
	expect_exit(d, xwait(d), 3, "");
	at("expect", "pid=%d exit=exited code=0 malloc_min=13", (int)getpid());
}

/* ---- threads ---- */

static atomic_int g_stop;

static void *quick_thread(void *arg)
{
	(void)arg;
	pthread_exit(NULL);
}

static void *spawner(void *arg)
{
	(void)arg;
	while (!atomic_load(&g_stop)) {
		pthread_t t;
		if (pthread_create(&t, NULL, quick_thread, NULL) == 0)
			pthread_join(t, NULL);
	}
	pthread_exit(NULL);
}

static void case_threads(void)
{
	pthread_t sp[SPAWNERS];
	for (int i = 0; i < SPAWNERS; i++)
		if (pthread_create(&sp[i], NULL, spawner, NULL) != 0)
			die("pthread_create");
	pid_t kids[CHILDREN];
	for (int i = 0; i < CHILDREN; i++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			for (int k = 0; k < MALLOCS; k++)
				if (!malloc(24 + k))
					_exit(99);
			char line[] = "child wrote\n";
			if (write(STDOUT_FILENO, line, sizeof line - 1) < 0)
				_exit(98);
			_exit(i % 100 + 1);
		}
		kids[i] = pid;
	}
	atomic_store(&g_stop, 1);
	for (int i = 0; i < SPAWNERS; i++)
		pthread_join(sp[i], NULL);
	char extra[48];
	snprintf(extra, sizeof extra, "malloc_calls=%d", MALLOCS);
	/* Every child is reaped before a line is printed: its own line comes
	 * first in every run. */
	int status[CHILDREN];
	for (int i = 0; i < CHILDREN; i++)
		status[i] = xwait(kids[i]);
	for (int i = 0; i < CHILDREN; i++)
		expect_exit(kids[i], status[i], i % 100 + 1, extra);
	say("%d children reaped while threads came and went\n", CHILDREN);
}

/* ---- nproc ---- */

/* Tasks (threads count) whose real uid is ours: what RLIMIT_NPROC counts.
 * Read with raw open/read/getdents64 into stack buffers: no malloc, so a
 * tracer that starts work on the first malloc has not started it yet. */
static long status_field(const char *buf, const char *key)
{
	const char *p = strstr(buf, key);
	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static long user_tasks(void)
{
	int dfd = open("/proc", O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		die("open /proc");
	long n = 0;
	char dents[8192];
	long got;
	while ((got = syscall(SYS_getdents64, dfd, dents, sizeof dents)) > 0) {
		for (long off = 0; off < got;) {
			struct dirent64 *e = (struct dirent64 *)(dents + off);
			off += e->d_reclen;
			if (e->d_name[0] < '1' || e->d_name[0] > '9')
				continue;
			char path[300], buf[4096];
			snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
			int fd = open(path, O_RDONLY);
			if (fd < 0)
				continue;
			ssize_t len = read(fd, buf, sizeof buf - 1);
			close(fd);
			if (len <= 0)
				continue;
			buf[len] = 0;
			if (status_field(buf, "\nUid:") == (long)getuid())
				n += status_field(buf, "\nThreads:");
		}
	}
	close(dfd);
	return n;
}

static int g_late;

static void case_nproc(void)
{
	if (getuid() == 0) {
		say("nproc: RLIMIT_NPROC does not bind root; run as another user\n");
		g_fail = 1;
		return;
	}
	long base = user_tasks();
	struct rlimit rl = { (rlim_t)(base + NPROC_ROOM), (rlim_t)(base + NPROC_ROOM) };
	if (setrlimit(RLIMIT_NPROC, &rl) != 0)
		die("setrlimit");
	int gate[2];
	if (pipe(gate) != 0)
		die("pipe");
	/* nproc: the program's first malloc comes after the limit, as in many
	 * a program that sets its limits first; nproclate: at the limit, when
	 * no task can be made. */
	pid_t on_stack[NPROC_ROOM + 8];
	pid_t *kids = g_late ? on_stack : malloc((NPROC_ROOM + 8) * sizeof *kids);
	if (!kids)
		die("malloc");
	int made = 0, err = 0;
	while (made < NPROC_ROOM + 8) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0) {
			err = errno;
			break;
		}
		if (pid == 0) {
			char c;
			close(gate[1]);
			while (read(gate[0], &c, 1) < 0 && errno == EINTR)
				;
			_exit(20 + made);
		}
		kids[made++] = pid;
	}
	if (g_late) {
		errno = 0;
		void *p = malloc(100);
		say("malloc at the limit: %s, errno %s\n", p ? "served" : "failed",
		    errno ? strerror(errno) : "untouched");
		if (!p || errno)
			g_fail = 1;
	}
	close(gate[1]); /* every child reads EOF and exits */
	for (int i = 0; i < made; i++)
		expect_exit(kids[i], xwait(kids[i]), 20 + i, "");
	say("forked %d children under a limit of %d more tasks, then fork failed: %s\n", made,
	    NPROC_ROOM, err == EAGAIN ? "EAGAIN" : err ? strerror(err) : "no failure");
	at("nproc", "forks=%d room=%d err=%s", made, NPROC_ROOM, err == EAGAIN ? "EAGAIN" : "other");
	if (err != EAGAIN)
		g_fail = 1;
}

static void case_nproclate(void)
{
	g_late = 1;
	case_nproc();
}

static const struct prog_case cases[] = {
	{ "clonevm", case_clonevm }, { "threads", case_threads }, { "nproc", case_nproc },
	{ "nproclate", case_nproclate },
};

int main(int argc, char **argv)
{
	return run_case(cases, sizeof cases / sizeof cases[0], argc, argv,
			"hostile2 clonevm|threads|nproc|nproclate");
}
