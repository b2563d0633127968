/* Threads that each fill a malloc arena of their own past 1 MiB, then end:
 * glibc keeps their stacks (its stack cache) and their arenas mapped, and
 * arenas made one after another lie next to each other, each 64 MiB-aligned
 * heap right above the PROT_NONE rest of the one below. Prints one line per
 * thread: "@ arena stack=ADDR block=ADDR" (an address in its stack and one
 * of its blocks), for tests/t_arena_kind.py. Usage: arenas [threads] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define BLOCKS 300
#define BLOCK 8192 /* 2.4 MiB an arena, well below the mmap threshold */

static pthread_barrier_t all_in;
static struct {
	void *stack, *block;
} seen[16];

static void *thread_main(void *arg)
{
	long i = (long)arg;
	volatile char here = 0;
	void *first = NULL;
	/* every thread allocates at once: each takes an arena of its own */
	pthread_barrier_wait(&all_in);
	for (int k = 0; k < BLOCKS; k++) {
		char *p = malloc(BLOCK);
		if (!p)
			abort();
		p[0] = (char)k; /* kept: the arena stays that big */
		if (!first)
			first = p;
	}
	seen[i].stack = (void *)&here;
	seen[i].block = first;
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 4;
	if (n < 1 || n > 16)
		n = 4;
	pthread_t th[16];
	pthread_barrier_init(&all_in, NULL, (unsigned)n);
	for (long i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, thread_main, (void *)i))
			return 2;
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < n; i++)
		printf("@ arena stack=%p block=%p\n", seen[i].stack, seen[i].block);
	return 0;
}
