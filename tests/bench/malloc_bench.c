/* Bench workload: N malloc/free pairs of mixed sizes, on T threads, at a
 * call depth of D frames. Usage: malloc_bench [pairs] [threads] [depth] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static long pairs = 5000000;
static int depth;

__attribute__((noinline)) static unsigned long work(unsigned long seed, int d)
{
	if (d > 0)
		return work(seed, d - 1) + 1;
	void *keep[16] = { 0 };
	unsigned long x = seed, sum = 0;
	for (long i = 0; i < pairs; i++) {
		x = x * 6364136223846793005ul + 1442695040888963407ul;
		size_t sz = 16u << ((x >> 33) % 8); /* 16 B .. 2 KiB */
		int slot = (int)((x >> 40) & 15);
		free(keep[slot]);
		keep[slot] = malloc(sz);
		*(char *)keep[slot] = (char)i;
		sum += (unsigned long)keep[slot] & 0xff;
	}
	for (int i = 0; i < 16; i++)
		free(keep[i]);
	return sum;
}

static void *thread_main(void *arg)
{
	return (void *)work((unsigned long)arg, depth);
}

int main(int argc, char **argv)
{
	int threads = 1;
	if (argc > 1)
		pairs = atol(argv[1]);
	if (argc > 2)
		threads = atoi(argv[2]);
	if (argc > 3)
		depth = atoi(argv[3]);
	pairs /= threads;
	pthread_t th[64];
	for (int i = 0; i < threads && i < 64; i++)
		pthread_create(&th[i], NULL, thread_main, (void *)(long)(i + 1));
	unsigned long sum = 0;
	for (int i = 0; i < threads && i < 64; i++) {
		void *r;
		pthread_join(th[i], &r);
		sum += (unsigned long)r;
	}
	printf("%lu\n", sum & 1);
	return 0;
}
