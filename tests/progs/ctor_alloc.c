/* Frees what libctor_alloc's constructor allocated before forkscope's
 * constructor ran, and says how many calls that constructor made:
 * "@ ctor_alloc calls=N" (tests/t_preinit.py). */
#include <stdio.h>

int ctor_alloc_calls(void);
void ctor_alloc_free(void);

int main(void)
{
	int calls = ctor_alloc_calls();
	ctor_alloc_free();
	printf("@ ctor_alloc calls=%d\n", calls);
	return 0;
}
