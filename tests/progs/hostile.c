/*
 * hostile: programs that fight the tracer (issue 7), one case per run.
 *
 * Usage: hostile CASE
 *   closefds    close every fd above 2 (close_range), then malloc and fork
 *   dup2        dup2 a pipe over fds 3..1023, then malloc and fork
 *   nofile      RLIMIT_NOFILE 16 and every fd used, then fork and exec
 *   sigchld     SIGCHLD ignored: children are reaped by the kernel
 *   abort       a child aborts in the middle of a malloc burst
 *   segv        a child dies of SIGSEGV in the middle of a malloc burst
 *   vfork       vfork children that exec and that _exit
 *   spawn       posix_spawn, system() and popen()
 *   envi        a child execs with an empty environment (env -i)
 * Each case prints what forkscope should record as "@ expect" lines (see
 * samples/sample.h) and exits 0 if the program itself saw what it
 * expected.
 */
#include "../../samples/sample.h"
#include "cases.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>

#define BURST 20000

extern char **environ;

/* malloc n blocks and keep them; the recorded count must be at least n. */
static void burst(int n)
{
	for (int i = 0; i < n; i++)
		if (!malloc(16 + i % 64))
			_exit(90);
}

/* Forks a child that mallocs 100 blocks and exits with code; waits. */
static void malloc_child(int code)
{
	pid_t pid = xfork();
	if (pid == 0) {
		burst(100);
		exit(code);
	}
	expect_exit(pid, xwait(pid), code, "malloc_min=100");
}

static void case_closefds(void)
{
	if (close_range(3, ~0U, 0) != 0)
		for (int fd = 3; fd < 65536; fd++)
			close(fd);
	burst(50);
	malloc_child(5);
	at("expect", "pid=%d exit=exited code=0 malloc_min=50", (int)getpid());
}

static void case_dup2(void)
{
	int p[2];
	if (pipe(p) != 0)
		die("pipe");
	for (int fd = 3; fd < 1024; fd++)
		if (fd != p[0])
			dup2(p[0], fd);
	burst(50);
	malloc_child(6);
	at("expect", "pid=%d exit=exited code=0 malloc_min=50", (int)getpid());
}

static void case_nofile(void)
{
	struct rlimit rl = { 16, 16 };
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		die("setrlimit");
	int last = -1, prev = -1, fd;
	while ((fd = open("/dev/null", O_RDONLY)) >= 0)
		prev = last, last = fd;
	/* Two free fds: what sh needs to load its libraries. */
	close(last);
	close(prev);
	say("filled the fd table up to the limit of 16, then freed two\n");
	pid_t pid = xfork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", "exit 7", (char *)NULL);
		_exit(99);
	}
	expect_exit(pid, xwait(pid), 7, "last_exe=/bin/sh");
}

static void case_sigchld(void)
{
	signal(SIGCHLD, SIG_IGN); /* children are reaped at once, never zombies */
	for (int k = 1; k <= 3; k++) {
		pid_t pid = xfork();
		if (pid == 0) {
			burst(10);
			exit(k);
		}
		/* Nobody reaps them, but each says how it ended through exit(). */
		at("expect", "pid=%d ppid=%d exit=exited code=%d orphaned=0", (int)pid, (int)getpid(), k);
	}
	int status;
	pid_t r = wait(&status); /* blocks until all are gone, then ECHILD */
	say("wait() returned %d (%s)\n", (int)r, r < 0 && errno == ECHILD ? "ECHILD" : "unexpected");
	if (r >= 0 || errno != ECHILD)
		g_fail = 1;
}

static int *volatile g_nowhere;

static void case_crash(int sig)
{
	pid_t pid = xfork();
	if (pid == 0) {
		struct rlimit rl = { 0, 0 };
		setrlimit(RLIMIT_CORE, &rl);
		burst(BURST); /* records in a buffer not yet flushed */
		if (sig == SIGABRT)
			abort();
		*g_nowhere = 1;
		_exit(98);
	}
	int status = xwait(pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != sig)
		g_fail = 1;
	at("expect", "pid=%d ppid=%d exit=signaled sig=%d core=0 reaped_by_pid=%d orphaned=0 malloc_min=%d",
	   (int)pid, (int)getpid(), sig, (int)getpid(), BURST);
}

static void case_vfork(void)
{
	pid_t a = vfork();
	if (a == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(99);
	}
	expect_exit(a, xwait(a), 0, "last_exe=/bin/true");
	pid_t b = vfork();
	if (b == 0)
		_exit(4);
	expect_exit(b, xwait(b), 4, "");
}

static void case_spawn(void)
{
	pid_t pid;
	char *argv[] = { "sh", "-c", "exit 2", NULL };
	int err = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
	if (err != 0) {
		errno = err;
		die("posix_spawn");
	}
	expect_exit(pid, xwait(pid), 2, "last_exe=/bin/sh");
	int st = system("exit 3");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 3)
		g_fail = 1;
	say("system() returned status 0x%04x\n", st);
	fflush(stdout);
	FILE *f = popen("echo from-popen", "r");
	char line[64] = "";
	if (!f || !fgets(line, sizeof line, f))
		g_fail = 1;
	say("popen read: %s", line);
	if (!f || pclose(f) != 0)
		g_fail = 1;
	at("expect", "pid=%d exit=exited code=0", (int)getpid());
}

static void case_envi(void)
{
	pid_t pid = xfork();
	if (pid == 0) {
		char *argv[] = { "sh", "-c", "exit 3", NULL };
		char *envp[] = { NULL };
		execve("/bin/sh", argv, envp);
		_exit(99);
	}
	expect_exit(pid, xwait(pid), 3, "images=2 last_exe=/bin/sh");
}

static void case_abort(void)
{
	case_crash(SIGABRT);
}

static void case_segv(void)
{
	case_crash(SIGSEGV);
}

static const struct prog_case cases[] = {
	{ "closefds", case_closefds }, { "dup2", case_dup2 }, { "nofile", case_nofile },
	{ "sigchld", case_sigchld }, { "abort", case_abort }, { "segv", case_segv },
	{ "vfork", case_vfork }, { "spawn", case_spawn }, { "envi", case_envi },
};

int main(int argc, char **argv)
{
	return run_case(cases, sizeof cases / sizeof cases[0], argc, argv,
			"hostile closefds|dup2|nofile|sigchld|abort|segv|vfork|spawn|envi");
}
