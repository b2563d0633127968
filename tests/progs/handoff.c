/*
 * handoff: who writes a busy thread's trace buffers out.
 *
 * Usage: handoff ITERS THREADS
 * THREADS threads each run ITERS rounds of malloc (16 to 527 bytes) and
 * free. Each reads what the kernel counted it writing so far (wchar of
 * /proc/thread-self/io, all of its write calls) as it ends; the main
 * thread prints those, one line for each task still there (itself, the
 * tracer's flusher), and last its counts:
 *   @ task tid=.. comm=.. wchar=..
 *   @ counts threads=T iters=N malloc=.. free=..
 * All output is write(2) from buffers on the stack: no stdio buffer.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 16

static long s_iters;
static long long s_wchar[MAX_THREADS]; /* each worker's, read as it ends */

/* The contents of a small file, NUL-terminated, or "" */
static void slurp(const char *path, char *buf, size_t cap)
{
	buf[0] = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
}

static long long wchar_of(const char *io_path)
{
	char io[512];
	slurp(io_path, io, sizeof(io));
	const char *w = strstr(io, "wchar: ");
	return w ? atoll(w + 7) : -1;
}

static void *worker(void *arg)
{
	int idx = (int)(uintptr_t)arg - 1;
	uint32_t x = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
	for (long i = 0; i < s_iters; i++) {
		x = x * 1103515245u + 12345u;
		void *p = malloc(16 + (x >> 16) % 512);
		if (!p)
			abort();
		*(volatile char *)p = 1;
		free(p);
	}
	/* gone from /proc/self/task once joined: its count, now */
	s_wchar[idx] = wchar_of("/proc/thread-self/io");
	return NULL;
}

int main(int argc, char **argv)
{
	s_iters = argc > 1 ? atol(argv[1]) : 100000;
	int threads = argc > 2 ? atoi(argv[2]) : 1;
	if (threads < 1 || threads > MAX_THREADS)
		threads = 1;
	pthread_t th[MAX_THREADS];
	for (int i = 0; i < threads; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1)) != 0)
			return 1;
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);

	char line[512], path[300], comm[64];
	for (int i = 0; i < threads; i++) {
		int n = snprintf(line, sizeof(line), "@ task tid=- comm=worker%d wchar=%lld\n", i, s_wchar[i]);
		if (write(1, line, (size_t)n) != n)
			return 1;
	}
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		slurp(path, comm, sizeof(comm));
		comm[strcspn(comm, "\n")] = 0;
		snprintf(path, sizeof(path), "/proc/self/task/%s/io", e->d_name);
		long long wchar = wchar_of(path);
		int n = snprintf(line, sizeof(line), "@ task tid=%s comm=%s wchar=%lld\n", e->d_name, comm,
				 wchar);
		if (write(1, line, (size_t)n) != n)
			return 1;
	}
	if (d)
		closedir(d);
	int n = snprintf(line, sizeof(line), "@ counts threads=%d iters=%ld malloc=%ld free=%ld\n", threads,
			 s_iters, s_iters * threads, s_iters * threads);
	return write(1, line, (size_t)n) == n ? 0 : 1;
}
