/*
 * cow_truth: a known number of copy-on-write breaks in five kinds of region.
 *
 * Usage: cow_truth
 * The parent fills, before fork, arrays in .data, .bss, the brk heap (a
 * malloc below the mmap threshold), an anonymous mmap, and a malloc above
 * the threshold (glibc's own mmap), so every page is present and, after
 * fork, shared with the child. The child then writes one byte in exactly
 * DATA_W, BSS_W, HEAP_W, ANON_W and BIG_W distinct pages of those arrays
 * (different counts, so a number in the wrong region shows) and exits with
 * _exit(0); the parent writes nothing after fork and waits for it.
 * The child neither mallocs nor uses stdio after fork: nothing but those
 * writes touches the program's heap, data or bss there.
 *
 * It prints, before fork:
 *   @ proc role=parent pid=N ppid=N
 *   @ region name=data|bss|heap|anon|big addr=0x.. pages=N written=N
 * and from the child, after its writes:
 *   @ proc role=child pid=N ppid=N
 * It is linked with -z now (Makefile): with lazy binding the child's first
 * call of _exit() and the parent's of waitpid() write their GOT slots, one
 * page of the data region; whichever side writes first copies it (a real
 * break, but not one this program counts, and which side pays depends on
 * scheduling).
 * A test compares, for the child, unshared_pages (and cow_faults where
 * page-fault sampling works) of the region holding each array with
 * "written", and expects no COW fault in the parent there.
 *
 * Usage: cow_truth execfail
 * The same, but the child calls execve() on a path that does not exist
 * between its writes to .data and .bss and those to the other three: a
 * traced exec scans (and reads the fault sampler) before the exec, and
 * the faults read there must not be read again after the exec failed.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define DATA_PAGES 16
#define BSS_PAGES 16
#define HEAP_PAGES 16 /* 64 KiB: below the 128 KiB mmap threshold */
#define ANON_PAGES 32
#define BIG_PAGES 128 /* 512 KiB: above the threshold */
#define DATA_W 3
#define BSS_W 5
#define HEAP_W 7
#define ANON_W 9
#define BIG_W 11

/* Page-aligned so each array owns whole pages; g_data is initialized so it
 * lives in .data (file-backed), g_bss in .bss (the anonymous tail). */
static char g_data[DATA_PAGES * PAGE] __attribute__((aligned(PAGE))) = { 1 };
static char g_bss[BSS_PAGES * PAGE] __attribute__((aligned(PAGE)));

static void say(const char *s)
{
	if (write(1, s, strlen(s)) < 0)
		_exit(3);
}

/* The first page-aligned address inside [p, p+len) with room for pages. */
static char *page_inside(char *p, size_t len, int pages)
{
	char *a = (char *)(((uintptr_t)p + PAGE - 1) & ~(uintptr_t)(PAGE - 1));
	if (a + (size_t)pages * PAGE > p + len)
		return NULL;
	return a;
}

static void region(const char *name, char *addr, int pages, int written)
{
	char buf[160];
	snprintf(buf, sizeof buf, "@ region name=%s addr=%p pages=%d written=%d\n",
		 name, (void *)addr, pages, written);
	say(buf);
}

/* Writes one byte in each of n pages, spread over the array. */
static void dirty(char *a, int pages, int n)
{
	for (int i = 0; i < n; i++)
		a[(size_t)(i * pages / n) * PAGE + 8] ^= 0x5a;
}

int main(int argc, char **argv)
{
	int execfail = argc > 1 && strcmp(argv[1], "execfail") == 0;
	char buf[160];
	size_t heap_len = (HEAP_PAGES + 1) * PAGE - 64; /* < 128 KiB */
	char *heap_raw = malloc(heap_len);
	char *big_raw = malloc((BIG_PAGES + 1) * PAGE);
	/* Guard pages (PROT_NONE) on both sides keep the kernel from merging
	 * this mapping with a neighbour such as big_raw's into one region. */
	char *anon = mmap(NULL, (ANON_PAGES + 2) * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!heap_raw || anon == MAP_FAILED || !big_raw)
		return 2;
	if (mprotect(anon, PAGE, PROT_NONE) != 0 ||
	    mprotect(anon + (ANON_PAGES + 1) * PAGE, PAGE, PROT_NONE) != 0)
		return 2;
	anon += PAGE;
	char *heap = page_inside(heap_raw, heap_len, HEAP_PAGES - 1);
	char *big = page_inside(big_raw, (BIG_PAGES + 1) * PAGE, BIG_PAGES);
	if (!heap || !big)
		return 2;

	/* Make every page present before fork: shared, not first-touched, after. */
	memset(g_data, 1, sizeof g_data);
	memset(g_bss, 2, sizeof g_bss);
	memset(heap_raw, 3, heap_len);
	memset(anon, 4, ANON_PAGES * PAGE);
	memset(big_raw, 5, (BIG_PAGES + 1) * PAGE);
	/* The kernel may merge big_raw's mapping with the anonymous one above
	 * it (where ld.so keeps the main thread's TLS, which the child writes
	 * at fork): make the mapping's unused last page PROT_NONE so the
	 * region holding big[] ends there. */
	char *last = (char *)(((uintptr_t)big_raw + malloc_usable_size(big_raw)) & ~(uintptr_t)(PAGE - 1)) - PAGE;
	if (last < big + BIG_PAGES * PAGE || mprotect(last, PAGE, PROT_NONE) != 0)
		return 2;

	snprintf(buf, sizeof buf, "@ proc role=parent pid=%d ppid=%d\n", (int)getpid(), (int)getppid());
	say(buf);
	region("data", g_data, DATA_PAGES, DATA_W);
	region("bss", g_bss, BSS_PAGES, BSS_W);
	region("heap", heap, HEAP_PAGES - 1, HEAP_W);
	region("anon", anon, ANON_PAGES, ANON_W);
	region("big", big, BIG_PAGES, BIG_W);

	if (getenv("COW_TRUTH_MAPS")) { /* for debugging the layout */
		FILE *f = fopen("/proc/self/maps", "r");
		while (f && fgets(buf, sizeof buf, f))
			say(buf);
		if (f)
			fclose(f);
	}
	pid_t pid = fork();
	if (pid < 0)
		return 2;
	if (pid == 0) {
		dirty(g_data, DATA_PAGES, DATA_W);
		dirty(g_bss, BSS_PAGES, BSS_W);
		if (execfail) {
			char *const none[] = { "cow_truth-no-such-program", NULL };
			execve("/nonexistent/cow_truth-no-such-program", none, none + 1);
		}
		dirty(heap, HEAP_PAGES - 1, HEAP_W);
		dirty(anon, ANON_PAGES, ANON_W);
		dirty(big, BIG_PAGES, BIG_W);
		snprintf(buf, sizeof buf, "@ proc role=child pid=%d ppid=%d\n", (int)getpid(), (int)getppid());
		say(buf);
		_exit(0);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return 1;
	return 0;
}
