/*
 * unwind_fork: forks while other threads are inside libunwind.
 *
 * Usage: unwind_fork N
 * Two threads allocate, without pause, from ever different call stacks
 * (two functions calling each other to depths 1..40 in a changing
 * pattern), every other one under a frame with no unwind information (an
 * assembler function, as in unwind_rules): a walk by the rules cannot
 * pass it, so our capture keeps calling libunwind (unw_backtrace). The
 * main thread forks N times; each child allocates from stacks of its own,
 * under that frame too, and _exits. The parent gives each child 2 s,
 * kills one that has not ended (it waits on a lock taken for good) and
 * prints "@ forks n=N hung=H".
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nocfi.h"

static volatile int stop;

static __attribute__((noinline)) void *leaf(int d)
{
	return malloc(16 + (size_t)d);
}

static __attribute__((noinline)) void *gb(int d);

static __attribute__((noinline)) void *ga(int d)
{
	void *p = d ? ((d * 7) % 3 ? gb(d - 1) : ga(d - 1)) : leaf(d);
	__asm__ volatile("" ::"r"(p) : "memory");
	return p;
}

static __attribute__((noinline)) void *gb(int d)
{
	void *p = d ? ((d * 5) % 3 ? ga(d - 1) : gb(d - 1)) : leaf(d);
	__asm__ volatile("" ::"r"(p) : "memory");
	return p;
}


static __attribute__((noinline)) void grab_free(size_t d)
{
	free(gb((int)d));
	__asm__ volatile("" ::: "memory");
}

static void *churn(void *arg)
{
	(void)arg;
	for (unsigned i = 0; !stop; i++) {
		if (i & 1)
			nocfi_call(grab_free, 1 + i % 20);
		else
			free(ga(1 + (int)(i % 40)));
	}
	return NULL;
}

/* The child's status, or -1 when it did not end within 2 s (killed). */
static int reap(pid_t pid)
{
	int st;
	for (int i = 0; i < 2000; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 300, hung = 0;
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, churn, NULL))
			return 1;
	for (int k = 0; k < n; k++) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			for (int j = 0; j < 20; j++)
				free(gb(1 + (j * 3) % 40));
			for (int j = 0; j < 4; j++)
				nocfi_call(grab_free, 2 + (size_t)j);
			_exit(0);
		}
		int st = reap(pid);
		if (st < 0)
			hung++;
		else if (!WIFEXITED(st) || WEXITSTATUS(st))
			return 1;
	}
	stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	printf("@ forks n=%d hung=%d\n", n, hung);
	return 0;
}
