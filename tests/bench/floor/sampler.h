/* The page-fault sampler of make bench's floors (fork_floor.c and
 * scan_floor.c): the event preload/faults.c opens, with a ring of
 * ring_pages data pages, mapped and never read. Returns 0, or -1 when
 * perf_event_open or the ring's mmap failed. */
#ifndef FLOOR_SAMPLER_H
#define FLOOR_SAMPLER_H
#include <linux/perf_event.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int floor_sampler(size_t ring_pages)
{
	struct perf_event_attr a = { .size = sizeof(a), .type = PERF_TYPE_SOFTWARE,
				     .config = PERF_COUNT_SW_PAGE_FAULTS, .sample_period = 1,
				     .sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR,
				     .exclude_kernel = 1, .exclude_hv = 1, .use_clockid = 1,
				     .clockid = CLOCK_MONOTONIC };
	int fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		return -1;
	void *ring = mmap(NULL, (ring_pages + 1) * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return ring == MAP_FAILED ? -1 : 0;
}
#endif
