/* Compiled by tests/t_real.py under forkscope: gcc, cc1, as, collect2, ld. */
#include <stdio.h>

int main(void)
{
	puts("hello from a program gcc built under forkscope");
	return 0;
}
