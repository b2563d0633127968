/* Built with gcc -static by tests/t_hostile.py: LD_PRELOAD cannot reach a
 * static binary, so forkscope must mark it untraced and still learn its
 * exit code (4) from its parent's wait. */
#include <stdio.h>

int main(void)
{
	puts("a static binary says hello");
	return 4;
}
