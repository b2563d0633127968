/* start_alloc: a small program that allocates a little and ends, as most
 * programs of a build or a script do (make bench's per-image start cost
 * of such a program, next to /bin/true's, which allocates nothing).
 * Usage: start_alloc */
#include <stdlib.h>
#include <string.h>

static __attribute__((noinline)) char *copy_of(const char *s)
{
	return strdup(s);
}

int main(int argc, char **argv)
{
	(void)argc;
	char *a = malloc(64), *b = copy_of(argv[0]), *c = calloc(4, 32);
	int bad = !a || !b || !c;
	free(c);
	free(b);
	free(a);
	return bad;
}
