/*
 * chains.h: what the call-stack test programs (stack_cache.c,
 * stack_fork.c) share: the bytes each call chain of their own functions
 * allocated, said at the end as
 *   @ expect pid=P chain=main;a;f bytes=N
 * Include after samples/sample.h.
 */
#ifndef CHAINS_H
#define CHAINS_H

#include <pthread.h>
#include <string.h>
#include <unistd.h>

struct expect {
	char chain[256];
	long bytes;
};
static struct expect g_exp[64];
static int g_nexp;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static inline void expect(const char *chain, long bytes)
{
	pthread_mutex_lock(&g_lock);
	int i = 0;
	while (i < g_nexp && strcmp(g_exp[i].chain, chain))
		i++;
	if (i == g_nexp) {
		if (g_nexp == 64)
			die("expect table full");
		snprintf(g_exp[i].chain, sizeof(g_exp[i].chain), "%s", chain);
		g_exp[i].bytes = 0;
		g_nexp++;
	}
	g_exp[i].bytes += bytes;
	pthread_mutex_unlock(&g_lock);
}

/* Says what this process allocated, and forgets it (a fork child then
 * says only its own). */
static inline void expect_say(void)
{
	for (int i = 0; i < g_nexp; i++)
		at("expect", "pid=%d chain=%s bytes=%ld", (int)getpid(), g_exp[i].chain, g_exp[i].bytes);
	g_nexp = 0;
}

#endif /* CHAINS_H */
