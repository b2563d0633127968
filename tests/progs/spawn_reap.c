/*
 * spawn_reap: which reaped children get a WAIT scan. A child made by
 * vfork or posix_spawn runs in its parent's address space until it execs
 * and never shares a page of it copy-on-write, so its reaping changes
 * nothing a scan of the parent would show; a fork child's reaping does.
 *
 * Usage: spawn_reap
 * Lowers its own RLIMIT_NPROC below 1024 first, so that the tracer starts
 * no flusher thread at its fork and makes each WAIT scan on the wait path
 * (run it with --no-malloc, where nothing else starts one). Then, one at
 * a time unless said:
 *   S1  posix_spawn /bin/true; not reaped yet
 *   F1  fork, child _exit(0); reaped at once        -> a WAIT scan
 *   S1  reaped                                        -> none
 *   V1  vfork + execl /bin/true; reaped               -> none
 *   S2  posix_spawnp true; reaped                     -> none
 *   V2  vfork + _exit(3) (no exec); reaped            -> none
 *   F2  fork, child _exit(5); reaped by waitpid(-1)   -> a WAIT scan
 * Prints "@ child who=NAME pid=P status=S" after each reaping, then
 * "@ done".
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void reaped(const char *who, pid_t want, pid_t wait_for)
{
	int st = 0;
	pid_t got = waitpid(wait_for, &st, 0);
	if (got != want) {
		fprintf(stderr, "spawn_reap: %s: waited for %d, got %d\n", who, (int)want, (int)got);
		exit(1);
	}
	printf("@ child who=%s pid=%d status=%d\n", who, (int)got, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	fflush(stdout);
}

static pid_t spawn_true(int p)
{
	pid_t pid;
	char *argv[] = { "true", NULL };
	int r = p ? posix_spawnp(&pid, "true", NULL, NULL, argv, environ)
		  : posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
	if (r != 0) {
		fprintf(stderr, "spawn_reap: posix_spawn: error %d\n", r);
		exit(1);
	}
	return pid;
}

int main(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NPROC, &rl) == 0 && (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= 1000)) {
		rl.rlim_cur = 1000;
		setrlimit(RLIMIT_NPROC, &rl);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	pid_t s1 = spawn_true(0);
	pid_t f1 = fork();
	if (f1 == 0)
		_exit(0);
	reaped("F1", f1, f1);
	reaped("S1", s1, s1);
	pid_t v1 = vfork();
	if (v1 == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	reaped("V1", v1, v1);
	pid_t s2 = spawn_true(1);
	reaped("S2", s2, s2);
	pid_t v2 = vfork();
	if (v2 == 0)
		_exit(3);
	reaped("V2", v2, v2);
	pid_t f2 = fork();
	if (f2 == 0)
		_exit(5);
	reaped("F2", f2, -1);
	printf("@ done\n");
	return 0;
}
