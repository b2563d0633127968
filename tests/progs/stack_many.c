/*
 * stack_many: thousands of distinct call stacks, interned by several
 * threads at once and across a fork, for tests/t_stack_fork.py (the intern
 * table of preload/unwind.c grows by tables as it fills).
 *
 * walk(code) reaches leaf(code) through BITS calls of a() or b(), bit i of
 * code choosing the i-th (a for 0, b for 1): 2^BITS stacks under each
 * root, and leaf allocates size(code) bytes once. The parent runs THREADS
 * threads (thread_main) that walk every code at once, half of them in the
 * other order; then it forks, and
 *   the child runs one thread_main (the same stacks again: its parent's
 *   ids) and walks every code under c_root (new stacks);
 *   the parent walks every code under p_root (new stacks too, interned
 *   at the same time as the child's).
 * Each process says "@ many pid=P threads=T roots=R bits=B" (T thread_main
 * walks, R the root it walked under from main); the test derives every
 * chain and its bytes from that. Output is write(2) only.
 */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../samples/sample.h"

#define BITS 12
#define CODES (1u << BITS)
#define THREADS 4

static inline void use(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

__attribute__((noinline)) static void leaf(unsigned code)
{
	void *p = malloc(16 + (code % 61) * 8);
	use(p);
	free(p);
}

static void a(unsigned code, int level);
static void b(unsigned code, int level);

#define STEP(name)                                         \
	__attribute__((noinline)) static void name(unsigned code, int level) \
	{                                                  \
		if (level == BITS)                         \
			leaf(code);                        \
		else if (code >> level & 1)                \
			b(code, level + 1);                \
		else                                       \
			a(code, level + 1);                \
		__asm__ volatile("");                      \
	}
STEP(a)
STEP(b)

__attribute__((noinline)) static void walk(unsigned code)
{
	if (code & 1)
		b(code, 1);
	else
		a(code, 1);
	__asm__ volatile("");
}

__attribute__((noinline)) static void *thread_main(void *arg)
{
	int down = (int)(long)arg & 1;
	for (unsigned i = 0; i < CODES; i++)
		walk(down ? CODES - 1 - i : i);
	return NULL;
}

__attribute__((noinline)) static void p_root(void)
{
	for (unsigned i = 0; i < CODES; i++)
		walk(i);
	__asm__ volatile("");
}

__attribute__((noinline)) static void c_root(void)
{
	for (unsigned i = 0; i < CODES; i++)
		walk(i);
	__asm__ volatile("");
}

static void threads(int n)
{
	pthread_t t[THREADS];
	for (int i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, thread_main, (void *)(long)i))
			die("pthread_create");
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

int main(void)
{
	threads(THREADS);
	pid_t c = fork();
	if (c < 0)
		die("fork");
	if (!c) {
		threads(1);
		c_root();
		at("many", "pid=%d threads=1 roots=c_root bits=%d", (int)getpid(), BITS);
		return 0;
	}
	p_root();
	int st;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		die("child");
	at("many", "pid=%d threads=%d roots=p_root bits=%d", (int)getpid(), THREADS, BITS);
	return 0;
}
