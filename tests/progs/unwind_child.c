/*
 * unwind_child: fork children that take only stacks their parent took.
 *
 * Usage: unwind_child ROUNDS
 * Each round forks; then parent and child both call churn() from the same
 * place (malloc and free through grab(), same return addresses), the child
 * also allocates through child_only(), which the parent never calls, and
 * the child calls getppid() as a marker and _exits. From the second round
 * on, every program frame of the child's stacks before the marker (its
 * FORK record's, its mallocs') is one the parent unwound in an earlier
 * round, or one the first child unwound. The parent prints each child's
 * pid ("@ child round=R pid=P", with write: no stdio buffer to allocate).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static __attribute__((noinline)) void *grab(size_t n)
{
	void *p = malloc(n);
	if (!p)
		abort();
	*(volatile char *)p = 1;
	return p;
}

static __attribute__((noinline)) void churn(void)
{
	for (int i = 0; i < 20; i++)
		free(grab(64 + (size_t)i * 16));
}

static __attribute__((noinline)) void child_only(void)
{
	for (int i = 0; i < 8; i++)
		free(grab(32 + (size_t)i * 8));
	__asm__ volatile("" ::: "memory");
}

static __attribute__((noinline)) pid_t spawn(void)
{
	return fork();
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 4;
	for (int r = 0; r < rounds; r++) {
		pid_t pid = spawn();
		if (pid < 0)
			return 1;
		churn();
		if (pid == 0) {
			child_only();
			syscall(SYS_getppid); /* the marker */
			_exit(0);
		}
		char line[64];
		int len = snprintf(line, sizeof(line), "@ child round=%d pid=%d\n", r, (int)pid);
		if (write(1, line, (size_t)len) != len)
			return 1;
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
			return 1;
	}
	return 0;
}
