/* Threads that each fill a malloc arena of their own past 1 MiB, then end:
 * glibc keeps their stacks (its stack cache) and their arenas mapped, and
 * arenas made one after another lie next to each other, each 64 MiB-aligned
 * heap right above the PROT_NONE rest of the one below. Prints one line per
 * thread: "@ arena stack=ADDR block=ADDR" (an address in its stack and one
 * of its blocks), for tests/t_arena_kind.py. Then one more thread runs on
 * a stack that starts 64 MiB-aligned, a PROT_NONE guard page below it and
 * nothing right above (as glibc's may, below a mapping the kernel aligned):
 * "@ aligned stack=ADDR". Usage: arenas [threads] */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

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

static void *aligned_main(void *arg)
{
	volatile char here = 0;
	*(uintptr_t *)arg = (uintptr_t)&here; /* an address to look up, no more */
	return NULL;
}

/* A stack of 8 MiB at a 64 MiB boundary, a guard page below, holes
 * around: the address of a frame of the thread that ran on it, or NULL. */
static void *aligned_stack(void)
{
	const size_t align = 64u << 20, size = 8u << 20, guard = 4096;
	char *r = mmap(NULL, 3 * align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return NULL;
	char *a = (char *)(((uintptr_t)r + align) & ~(uintptr_t)(align - 1));
	if (munmap(r, (size_t)(a - guard - r)) || munmap(a + size, (size_t)(r + 3 * align - a - size)) ||
	    mprotect(a, size, PROT_READ | PROT_WRITE))
		return NULL;
	pthread_attr_t at;
	pthread_t t;
	uintptr_t seen = 0;
	if (pthread_attr_init(&at) || pthread_attr_setstack(&at, a, size) ||
	    pthread_create(&t, &at, aligned_main, &seen) || pthread_join(t, NULL))
		return NULL;
	return (void *)seen;
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
	void *aligned = aligned_stack();
	if (!aligned)
		return 3;
	printf("@ aligned stack=%p\n", aligned);
	return 0;
}
