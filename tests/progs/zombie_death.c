/*
 * zombie_death: when a zombie's time starts. A process is a zombie from
 * its death until its parent reaps it, not from its call of exit(): the
 * atexit handlers (and the tracer's exit work) run after that call, in a
 * process that is still alive.
 *
 * Usage: zombie_death
 *  A: registers an atexit handler that sleeps 300 ms, then calls exit(0).
 *     The parent waits for it at once, so A is a zombie only for the
 *     moment between its death and the parent's wakeup.
 *  B: calls _exit(0) at once; the parent sleeps 300 ms before it waits,
 *     so B is a zombie for at least 300 ms.
 * Prints "@ child who=A pid=P" and "@ child who=B pid=P" before each
 * wait, then "@ done".
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&t, &t) != 0)
		;
}

static void slow_handler(void)
{
	nap_ms(300);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	pid_t a = fork();
	if (a < 0)
		return 1;
	if (a == 0) {
		atexit(slow_handler);
		exit(0);
	}
	printf("@ child who=A pid=%d\n", (int)a);
	if (waitpid(a, NULL, 0) != a)
		return 1;
	pid_t b = fork();
	if (b < 0)
		return 1;
	if (b == 0)
		_exit(0);
	printf("@ child who=B pid=%d\n", (int)b);
	nap_ms(300);
	if (waitpid(b, NULL, 0) != b)
		return 1;
	printf("@ done\n");
	return 0;
}
