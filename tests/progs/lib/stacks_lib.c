/*
 * libstacks_lib.so: the shared library tests/progs/stacks dlopens, so the
 * report has to symbolize frames in an object loaded after start, with its
 * own load bias. It reports its allocation line through *line.
 */
#include <stdlib.h>

__attribute__((noinline)) void *lib_leak(size_t size, int *line)
{
	*line = __LINE__ + 1;
	void *p = malloc(size);
	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}
