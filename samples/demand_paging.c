/*
 * demand_paging: memory is given on first touch, not when it is allocated.
 *
 * The notes: malloc only reserves virtual addresses; "the physical memory
 * may not get a single byte" until the process really accesses a page.
 * Then the MMU finds no mapping, the CPU page-faults, and the kernel gives
 * the page a frame and fills in the page table (demand paging). So the
 * resident set grows with what is touched, not with what is allocated.
 *
 * The program mallocs SIZE (64 MiB: above the mmap threshold, so one fresh
 * anonymous mapping), then writes one byte per page, STEPS times a further
 * SIZE/STEPS, sleeping STEP_MS between steps, and prints its resident set
 * size (from /proc/self/statm) after each step.
 *
 * What forkscope shows: an anonymous region of 64 MiB appearing at once
 * while the process's resident pages in it grow step by step (scans at the
 * sampler interval, first_touch_pages up to SIZE/page size at exit); one
 * malloc call of SIZE bytes, still live at exit (kept on purpose so the
 * exit scan sees the region).
 */
#include "sample.h"

#define SIZE (64L << 20)
#define STEPS 8
#define STEP_MS 60

static long rss_kib(void)
{
	long pages_total = 0, pages_res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f || fscanf(f, "%ld %ld", &pages_total, &pages_res) != 2)
		die("/proc/self/statm");
	fclose(f);
	return pages_res * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(void)
{
	long page = sysconf(_SC_PAGESIZE);
	at("proc", "role=main pid=%d ppid=%d", (int)getpid(), (int)getppid());
	long rss0 = rss_kib();
	char *buf = malloc(SIZE);
	if (!buf)
		die("malloc");
	long rss1 = rss_kib();
	say("malloc(%ld MiB) returned %p; resident before %ld KiB, after %ld KiB: nothing touched yet\n",
	    SIZE >> 20, (void *)buf, rss0, rss1);
	at("alloc", "size=%ld addr=%p page=%ld rss_before_kib=%ld rss_after_kib=%ld",
	   SIZE, (void *)buf, page, rss0, rss1);

	long per_step = SIZE / STEPS;
	for (int s = 0; s < STEPS; s++) {
		for (long off = s * per_step; off < (s + 1) * per_step; off += page)
			buf[off] = 1; /* first touch of this page: a page fault */
		long rss = rss_kib();
		say("step %d: touched %ld MiB so far, resident %ld KiB\n",
		    s + 1, (s + 1) * per_step >> 20, rss);
		at("step", "i=%d touched_pages=%ld rss_kib=%ld", s + 1, (s + 1) * per_step / page, rss);
		sleep_ms(STEP_MS);
	}
	/* Not freed: forkscope's scan at exit still finds the region, with
	 * every page first-touched after the mapping was made. */
	say("exiting with the block still mapped and %ld KiB resident\n", rss_kib());
	return 0;
}
