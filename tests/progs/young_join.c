/*
 * young_join: an image that starts threads while it is young (preload/
 * init.c, YOUNG_NS) and joins them once it is old, having recorded
 * nothing in between: glibc then frees the first joined threads' TLS
 * (once its cache of stacks passes 40 MiB) from the dynamic linker while
 * it holds the lock of that cache, and that free is the image's first
 * record after its youth. The flusher must not be started from there:
 * pthread_create takes the same lock, and the program would hang.
 *
 * Usage: young_join THREADS [fork]
 * Starts THREADS threads with 8 MiB stacks that return at once, sleeps
 * 20 ms, joins them, prints "@ joined threads=N" and exits; with "fork",
 * a fork child does all that (a fork child is young too) and the parent
 * waits for it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64

static void *nothing(void *arg)
{
	return arg;
}

static int start_sleep_join(int n)
{
	pthread_t th[MAX_THREADS];
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 8u << 20);
	for (int i = 0; i < n; i++)
		if (pthread_create(&th[i], &attr, nothing, NULL))
			return 1;
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	for (int i = 0; i < n; i++)
		if (pthread_join(th[i], NULL))
			return 1;
	char line[64];
	int len = snprintf(line, sizeof(line), "@ joined threads=%d\n", n);
	return write(1, line, (size_t)len) == len ? 0 : 1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 0;
	if (n < 1 || n > MAX_THREADS)
		return 2;
	if (argc < 3 || strcmp(argv[2], "fork"))
		return start_sleep_join(n);
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0)
		_exit(start_sleep_join(n));
	int st;
	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
