/*
 * malloc_threshold: small blocks come from the brk heap, big ones from mmap.
 *
 * The notes: the heap is the region above the data segment whose top is the
 * "program break"; malloc grows it with brk()/sbrk(). A request larger than
 * the mmap threshold (MMAP_THRESHOLD, 128 KiB by default, see mallopt(3))
 * does not use the heap: glibc maps a private anonymous region for it alone,
 * in the memory-mapping area between heap and stack, and unmaps it on free.
 *
 * The program makes SMALL_N blocks of SMALL bytes (below the threshold) and
 * BIG_N blocks of BIG bytes (above it), prints the program break before and
 * after, each address, and where that address lies according to
 * /proc/self/maps: "heap" (inside [heap]) or "mmap" (elsewhere). Blocks are
 * kept until exit so the address space forkscope scans at exit still has
 * them (and its leak summary counts them).
 *
 * What forkscope shows: malloc calls >= SMALL_N + BIG_N and bytes >=
 * SMALL_N*SMALL + BIG_N*BIG; the break moving (BRK events caused by malloc)
 * for the small blocks only; one new anonymous region of BIG + a page per
 * big block; live_at_exit_bytes covering all of them.
 */
#include "sample.h"

#include <stdint.h>

#define SMALL 4000
#define SMALL_N 64
#define BIG (256 * 1024)
#define BIG_N 4

/* Whether addr lies inside the [heap] line of /proc/self/maps. */
static int in_heap(void *addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;
	if (!f)
		die("/proc/self/maps");
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		if (strstr(line, "[heap]") && sscanf(line, "%lx-%lx", &lo, &hi) == 2 &&
		    (uintptr_t)addr >= lo && (uintptr_t)addr < hi)
			found = 1;
	}
	fclose(f);
	return found;
}

int main(void)
{
	static void *small[SMALL_N], *big[BIG_N];

	at("proc", "role=main pid=%d ppid=%d", (int)getpid(), (int)getppid());
	at("plan", "small_n=%d small_size=%d big_n=%d big_size=%d threshold=%d",
	   SMALL_N, SMALL, BIG_N, BIG, 128 * 1024);
	void *brk0 = sbrk(0);
	say("program break before: %p\n", brk0);

	for (int i = 0; i < SMALL_N; i++)
		if (!(small[i] = malloc(SMALL)))
			die("malloc");
	void *brk1 = sbrk(0);
	say("%d x malloc(%d): first at %p, last at %p; the break moved %+ld bytes to %p\n",
	    SMALL_N, SMALL, small[0], small[SMALL_N - 1], (long)((char *)brk1 - (char *)brk0), brk1);

	for (int i = 0; i < BIG_N; i++)
		if (!(big[i] = malloc(BIG)))
			die("malloc");
	void *brk2 = sbrk(0);
	say("%d x malloc(%d): at", BIG_N, BIG);
	for (int i = 0; i < BIG_N; i++)
		say(" %p", big[i]);
	say("; the break moved %+ld bytes\n", (long)((char *)brk2 - (char *)brk1));

	for (int i = 0; i < SMALL_N; i++)
		at("block", "size=%d addr=%p where=%s", SMALL, small[i], in_heap(small[i]) ? "heap" : "mmap");
	for (int i = 0; i < BIG_N; i++)
		at("block", "size=%d addr=%p where=%s", BIG, big[i], in_heap(big[i]) ? "heap" : "mmap");
	at("brk", "before=%p after_small=%p after_big=%p", brk0, brk1, brk2);
	say("small blocks: inside [heap], below the break; big blocks: separate mappings.\n");
	return 0; /* the blocks stay allocated until exit on purpose */
}
