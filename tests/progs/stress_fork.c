/*
 * stress_fork: fork from one thread while four others are inside malloc.
 *
 * Usage: stress_fork [FORKS]
 * ALLOCATORS threads malloc and free in a loop (bursts of 256, at most
 * MAX_MALLOCS each), counting their calls, while
 * one more thread forks FORKS times (default 200). Each child mallocs
 * CHILD_MALLOCS blocks, frees them and _exits with code 0 (or 1 if a
 * malloc failed); the forking thread waits for each and counts the
 * children that exited 0. A tracer whose hooks take a lock that fork
 * orphans deadlocks here (in a child's first malloc); one whose hooks
 * allocate crashes or corrupts.
 *
 * It prints:
 *   @ proc role=main pid=N ppid=N
 *   @ child pid=N              (one per fork, from the parent)
 *   @ counts malloc=N free=N forks=N children_ok=N child_mallocs=N
 * and exits 0 if every child exited 0.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ALLOCATORS 4
#define CHILD_MALLOCS 10
#define MAX_MALLOCS 100000 /* per allocator thread */

static atomic_int g_stop;
static unsigned long g_mallocs[ALLOCATORS], g_frees[ALLOCATORS];
static int g_forks = 200, g_ok;

static void out(const char *fmt, long a, long b, long c, long d, long e)
{
	char buf[256];
	int n = snprintf(buf, sizeof buf, fmt, a, b, c, d, e);
	if (n > 0 && write(1, buf, (size_t)n) != n)
		_exit(3);
}

static void *allocator(void *arg)
{
	long i = (long)arg;
	void *keep[16] = { 0 };
	unsigned k = 0;
	while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
		/* Bursts of 256 calls with 1 ms pauses, and a cap: enough to be
		 * inside malloc at many forks, few enough to keep the trace small. */
		if (k % 256 == 255 || g_mallocs[i] >= MAX_MALLOCS) {
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
			if (g_mallocs[i] >= MAX_MALLOCS)
				continue;
		}
		unsigned slot = k++ % 16;
		if (keep[slot]) {
			free(keep[slot]);
			g_frees[i]++;
		}
		keep[slot] = malloc(32 + (k * 37) % 2000);
		if (!keep[slot])
			abort();
		g_mallocs[i]++;
		((char *)keep[slot])[0] = (char)k;
	}
	for (int s = 0; s < 16; s++)
		if (keep[s]) {
			free(keep[s]);
			g_frees[i]++;
		}
	return NULL;
}

static void *forker(void *arg)
{
	(void)arg;
	for (int i = 0; i < g_forks; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			continue;
		}
		if (pid == 0) {
			void *p[CHILD_MALLOCS];
			for (int j = 0; j < CHILD_MALLOCS; j++)
				if (!(p[j] = malloc(64 + j)))
					_exit(1);
			for (int j = 0; j < CHILD_MALLOCS; j++)
				free(p[j]);
			_exit(0);
		}
		out("@ child pid=%ld\n", pid, 0, 0, 0, 0);
		struct timespec ts = { 0, 500000 }; /* let the allocators run on */
		nanosleep(&ts, NULL);
		int status;
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
			g_ok++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		g_forks = atoi(argv[1]);
	out("@ proc role=main pid=%ld ppid=%ld\n", getpid(), getppid(), 0, 0, 0);
	pthread_t a[ALLOCATORS], f;
	for (long i = 0; i < ALLOCATORS; i++)
		if (pthread_create(&a[i], NULL, allocator, (void *)i) != 0)
			return 2;
	if (pthread_create(&f, NULL, forker, NULL) != 0)
		return 2;
	pthread_join(f, NULL);
	atomic_store(&g_stop, 1);
	unsigned long m = 0, fr = 0;
	for (int i = 0; i < ALLOCATORS; i++) {
		pthread_join(a[i], NULL);
		m += g_mallocs[i];
		fr += g_frees[i];
	}
	out("@ counts malloc=%ld free=%ld forks=%ld children_ok=%ld child_mallocs=%ld\n",
	    (long)m, (long)fr, g_forks, g_ok, CHILD_MALLOCS);
	return g_ok == g_forks ? 0 : 1;
}
