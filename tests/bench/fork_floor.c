/* fork_floor: the least a tracer that scans every fork child must add to
 * fork_bench's loop, done by hand and nothing else (make bench's floor of
 * the fork row). Each bit of MODE adds one part:
 *   1  the parent reads its maps and its pagemap (kept fds) before the
 *      fork: the COW baseline both sides need;
 *   2  the child opens and reads its own maps and pagemap at its exit
 *      (fds name the mm that opened them: the parent's are no use);
 *   4  a page-fault sampler in each child (perf_event_open and a 9-page
 *      ring; the parent holds one too, as a traced parent does);
 *   8  a file per child in DIR with 2 KiB written (its stream).
 * The pagemap reads cover only the pages the child writes, and nothing is
 * parsed, classified or recorded: a real scan does more.
 *
 * Usage: fork_floor FORKS PAGES MODE DIR
 * Prints "MODE US" (microseconds a fork, wall). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floor/sampler.h"

static char io[65536];
static uint64_t pm[4096];

static void scan(int mfd, int pfd, const char *mem, int pages)
{
	off_t at = 0;
	ssize_t r;
	while ((r = pread(mfd, io, sizeof(io), at)) > 0)
		at += r;
	size_t n = pages < 4096 ? (size_t)pages : 4096;
	if (pread(pfd, pm, 8 * n, (off_t)((uintptr_t)mem / 4096 * 8)) < 0)
		perror("pagemap");
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: fork_floor FORKS PAGES MODE DIR\n");
		return 2;
	}
	int n = atoi(argv[1]), pages = atoi(argv[2]), mode = atoi(argv[3]);
	const char *dir = argv[4];
	char *mem = malloc((size_t)pages * 4096 + 1);
	for (int i = 0; i < pages; i++)
		mem[i * 4096] = 1;
	int mfd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	int pfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (mfd < 0 || pfd < 0) {
		perror("/proc/self");
		return 1;
	}
	/* a sampler in the parent keeps the kernel's perf scheduling hooks
	 * on: without one, each child's first and last event turn them on and
	 * off, which costs ~100 us a fork that no traced tree pays */
	if (mode & 4)
		floor_sampler(64);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++) {
		if (mode & 1)
			scan(mfd, pfd, mem, pages);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			if (mode & 4)
				floor_sampler(8);
			for (int p = 0; p < pages; p++)
				mem[p * 4096] = 2;
			if (mode & 2) {
				int m = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
				int f = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
				scan(m, f, mem, pages);
				close(m);
				close(f);
			}
			if (mode & 8) {
				char path[4096];
				snprintf(path, sizeof(path), "%s/%d.%d", dir, (int)getpid(), i);
				int f = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
				if (f < 0 || write(f, io, 2048) != 2048)
					_exit(1);
				close(f);
			}
			_exit(0);
		}
		int st;
		if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "fork_floor: a child failed\n");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / n / 1e3;
	printf("%d %.1f\n", mode, us);
	return 0;
}
