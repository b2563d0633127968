/* A library whose constructor allocates, as LLVM's option objects do: it
 * runs before forkscope's (a preloaded library's constructor runs after
 * those of the libraries the program needs). CTOR_ALLOC_N (default 50)
 * rounds of malloc, calloc, realloc, posix_memalign and aligned_alloc; the
 * program frees the blocks (ctor_alloc_free). tests/t_preinit.py. */
#include <stdlib.h>

static void **blocks;
static int nblocks;
static void *volatile sink; /* or the compiler drops a malloc freed at once */

__attribute__((constructor)) static void ctor_alloc(void)
{
	const char *e = getenv("CTOR_ALLOC_N");
	int n = e ? atoi(e) : 50;
	blocks = calloc((size_t)n * 4 + 1, sizeof(void *));
	if (!blocks)
		return;
	for (int i = 0; i < n; i++) {
		void *p = malloc(24 + (size_t)i % 100);
		blocks[nblocks++] = realloc(p, 200 + (size_t)i % 50);
		blocks[nblocks++] = calloc(3, 40);
		if (posix_memalign(&p, 64, 100) == 0)
			blocks[nblocks++] = p;
		blocks[nblocks++] = aligned_alloc(256, 512);
		sink = malloc(16); /* made and freed before forkscope's constructor */
		free(sink);
	}
}

/* The calls the constructor made: for the test's count. */
int ctor_alloc_calls(void)
{
	return 1 + nblocks + nblocks / 4;
}

void ctor_alloc_free(void)
{
	for (int i = 0; i < nblocks; i++)
		free(blocks[i]);
	free(blocks);
}
