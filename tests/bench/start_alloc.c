/* start_alloc: a small program that allocates a little and ends, as most
 * programs of a build or a script do (make bench's per-image start cost
 * of such a program, next to /bin/true's, which allocates nothing).
 * Usage: start_alloc [pages]
 * With "pages", it then says on stderr how many pages it has mapped since
 * its exec, "@ start_alloc minflt=N": getrusage's minor faults, which
 * count a page mapped by MADV_POPULATE_* as well as one mapped by a fault
 * (tests/t_stack_faults.py: what a tracer's set-up for its first call
 * stacks costs such a program). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static __attribute__((noinline)) char *copy_of(const char *s)
{
	return strdup(s);
}

int main(int argc, char **argv)
{
	char *a = malloc(64), *b = copy_of(argv[0]), *c = calloc(4, 32);
	int bad = !a || !b || !c;
	struct rusage ru;
	if (argc > 1 && !strcmp(argv[1], "pages")) {
		if (getrusage(RUSAGE_SELF, &ru) != 0)
			return 2;
		fprintf(stderr, "@ start_alloc minflt=%ld\n", ru.ru_minflt);
	}
	free(c);
	free(b);
	free(a);
	return bad;
}
