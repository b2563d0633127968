/*
 * asan_prog: a program built with gcc's -fsanitize=address, which loads
 * ASan's runtime (libasan.so) as a library of its own (tests/t_asan_prog.py).
 *
 * Usage: asan_prog [overflow]
 * Four threads allocate and free 2000 blocks each, kept in a volatile
 * array so the compiler keeps every call, then it prints "@ asan_prog
 * blocks=8000". With "overflow" it then writes one byte past an 8-byte
 * block: ASan reports a heap-buffer-overflow on stderr and exits 1.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *work(void *arg)
{
	static void *volatile keep[64];
	for (int i = 0; i < 2000; i++) {
		int k = (int)(((long)arg * 2000 + i) % 64);
		free(keep[k]);
		keep[k] = NULL;
		char *p = malloc((size_t)(i % 500) + 1);
		if (!p)
			abort();
		p[0] = (char)i;
		free(p);
	}
	return arg;
}

int main(int argc, char **argv)
{
	pthread_t t[4];
	for (long i = 0; i < 4; i++)
		if (pthread_create(&t[i], NULL, work, (void *)i))
			return 2;
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	char line[64];
	int len = snprintf(line, sizeof(line), "@ asan_prog blocks=%d\n", 4 * 2000);
	if (write(1, line, (size_t)len) != len)
		return 2;
	if (argc > 1 && !strcmp(argv[1], "overflow")) {
		volatile char *p = malloc(8);
		p[8] = 1; /* a volatile store: kept */
		free((void *)p);
	}
	return 0;
}
