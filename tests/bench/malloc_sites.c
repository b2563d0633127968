/* Bench workload for the stack cache's miss path: N malloc/free pairs from
 * 8 call sites in a pattern. Usage: malloc_sites [pairs] [pattern]
 *   0 ABAB (two sites alternating), 1 AABB, 2 a random site of 8 each call,
 *   3 AAAABBBB... over 8 sites */
#include <stdio.h>
#include <stdlib.h>

static volatile unsigned long sink;

#define SITE(n)                                           \
	__attribute__((noinline)) static void site##n(void) \
	{                                                  \
		void *p = malloc(32 + (n));                 \
		sink += (unsigned long)p;                  \
		free(p);                                   \
	}
SITE(0) SITE(1) SITE(2) SITE(3) SITE(4) SITE(5) SITE(6) SITE(7)

static void (*const sites[8])(void) = { site0, site1, site2, site3, site4, site5, site6, site7 };

int main(int argc, char **argv)
{
	long pairs = argc > 1 ? atol(argv[1]) : 2000000;
	int pattern = argc > 2 ? atoi(argv[2]) : 0;
	unsigned x = 1;
	for (long i = 0; i < pairs; i++) {
		int k;
		if (pattern == 0) {
			k = (int)(i & 1);
		} else if (pattern == 1) {
			k = (int)((i >> 1) & 1);
		} else if (pattern == 2) {
			x = x * 1103515245u + 12345u;
			k = (int)((x >> 16) & 7);
		} else {
			k = (int)((i >> 2) & 7);
		}
		sites[k]();
	}
	printf("%lu\n", sink & 1);
	return 0;
}
