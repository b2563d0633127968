/*
 * stack_growth: the stack is a region that grows down on demand.
 *
 * The notes: the stack holds one frame per active call (locals, arguments,
 * return address); it grows towards lower addresses as calls nest and the
 * kernel extends the [stack] mapping when a page below it is touched, up to
 * RLIMIT_STACK ("deep recursion overflows the stack"). The region does not
 * shrink when the calls return; the pages stay, unused.
 *
 * The program recurses DEPTH levels with a FRAME-byte local array in every
 * frame, and every STEP levels prints the stack pointer, the size of the
 * [stack] mapping from /proc/self/maps, and pauses PAUSE_MS.
 *
 * What forkscope shows: the stack region growing in steps of about
 * STEP * FRAME bytes (region events "grown"), and at exit a stack region of
 * at least DEPTH * FRAME bytes.
 */
#include "sample.h"

#define FRAME (16 * 1024)
#define DEPTH 64
#define STEP 16
#define PAUSE_MS 60

static long stack_kib(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	long kib = -1;
	if (!f)
		die("/proc/self/maps");
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		if (strstr(line, "[stack]") && sscanf(line, "%lx-%lx", &lo, &hi) == 2)
			kib = (long)((hi - lo) / 1024);
	}
	fclose(f);
	return kib;
}

/* Each level owns FRAME bytes of stack and writes all of them, so every
 * page is really touched; the sum keeps the compiler from dropping it. */
static long recurse(int level)
{
	volatile char frame[FRAME];
	for (int i = 0; i < FRAME; i += 512)
		frame[i] = (char)level;
	if (level % STEP == 0) {
		long kib = stack_kib();
		say("depth %2d: stack pointer near %p, [stack] is %ld KiB\n", level, (void *)frame, kib);
		at("depth", "n=%d sp=%p stack_kib=%ld", level, (void *)frame, kib);
		sleep_ms(PAUSE_MS);
	}
	long sum = level < DEPTH ? recurse(level + 1) : 0;
	return sum + frame[level % FRAME];
}

int main(void)
{
	at("proc", "role=main pid=%d ppid=%d", (int)getpid(), (int)getppid());
	at("plan", "depth=%d frame=%d step=%d", DEPTH, FRAME, STEP);
	long kib0 = stack_kib();
	say("[stack] at start: %ld KiB\n", kib0);
	long sum = recurse(1);
	long kib1 = stack_kib();
	say("back in main: [stack] is still %ld KiB (sum %ld): the region does not shrink\n", kib1, sum);
	at("stack", "start_kib=%ld end_kib=%ld", kib0, kib1);
	return 0;
}
