/*
 * stack_fork: call stacks across forks, for tests/t_stack_fork.py. A fork
 * child shares the stack ids of its parent and siblings (trace.h, "Stack
 * ids"); this program makes a parent, a child, a grandchild and a second
 * child allocate from stacks a relative had before and from new ones,
 * the parent and the child (and the child and the grandchild) interning
 * new stacks at the same time:
 *
 *   step 0  parent: pa; a thread tl (still running, its records possibly
 *           still in its buffer, at the fork)
 *   step 1  parent: forks the child
 *   step 2  parent: pp          child: pa, pc, a thread tl
 *   step 3  child: forks the grandchild
 *   step 4  child: pd           grandchild: pa, pc, pg, a thread tl
 *   step 5  each waits for its child and the thread it started
 *   step 6  parent: forks the second child
 *   step 7  second child: pc (its sibling's stack)   parent: waits for it
 *
 * Every allocation comes from the one call of step() in main, so a stack
 * a process had before its fork is the very same stack (the same return
 * addresses) in the child. Each process prints the bytes each call chain
 * allocated:
 *   @ expect pid=P chain=main;step;pa;leaf bytes=N
 * (its functions from this file, outermost first), and "@ proc role=R
 * pid=P ppid=Q". Output is write(2) only.
 */
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../samples/sample.h"
#include "chains.h"

#define K 200                           /* blocks per chain and process */

enum { PARENT, CHILD, GRAND, SECOND };

static int g_role = PARENT;
static const char *const g_names[] = { "parent", "child", "grandchild", "second" };

static inline void use(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* K blocks of size bytes from one call site, all freed */
__attribute__((noinline)) static void leaf(size_t size)
{
	for (int i = 0; i < K; i++) {
		void *p = malloc(size);
		use(p);
		free(p);
	}
}

/* One function per chain, each with its own block size. */
#define CHAIN(name, size)                                          \
	__attribute__((noinline)) static void name(void)           \
	{                                                          \
		leaf(size);                                        \
		expect("main;step;" #name ";leaf", (long)K * size); \
		__asm__ volatile("");                              \
	}
CHAIN(pa, 24)
CHAIN(pp, 40)
CHAIN(pc, 56)
CHAIN(pd, 72)
CHAIN(pg, 88)

static int g_hold[2];                   /* the parent's thread waits on it */
static int g_ready[2];                  /* ... after saying it is done here */

__attribute__((noinline)) static void tl(void)
{
	leaf(104);
	expect("thread_main;tl;leaf", (long)K * 104);
	__asm__ volatile("");
}

__attribute__((noinline)) static void *thread_main(void *arg)
{
	char c;
	tl();
	if (arg && (write(g_ready[1], "x", 1) != 1 || read(g_hold[0], &c, 1) < 0))
		die("pipe io");
	return NULL;
}

static pthread_t g_thread;
static pid_t g_child;

__attribute__((noinline)) static void step(int i)
{
	int r = g_role;
	if ((i == 0 && r == PARENT) || (i == 2 && r == CHILD) || (i == 4 && r == GRAND))
		pa();
	if ((i == 0 && r == PARENT) || (i == 2 && r == CHILD) || (i == 4 && r == GRAND))
		if (pthread_create(&g_thread, NULL, thread_main, r == PARENT ? g_hold : NULL))
			die("pthread_create");
	if ((i == 1 && r == PARENT) || (i == 3 && r == CHILD) || (i == 6 && r == PARENT)) {
		char c;
		/* the parent's thread is done with the lock of expect() */
		if (i == 1 && read(g_ready[0], &c, 1) != 1)
			die("read");
		g_child = fork();
		if (g_child < 0)
			die("fork");
		if (!g_child) {
			g_role = r == CHILD ? GRAND : i == 1 ? CHILD : SECOND;
			g_nexp = 0; /* what the parent allocated is the parent's */
			g_child = 0;
			at("proc", "role=%s pid=%d ppid=%d", g_names[g_role], (int)getpid(), (int)getppid());
			return;
		}
	}
	if (i == 2 && r == PARENT) {
		pp();
		if (write(g_hold[1], "x", 1) != 1)
			die("write");
	}
	if ((i == 2 && r == CHILD) || (i == 4 && r == GRAND) || (i == 7 && r == SECOND))
		pc();
	if (i == 4 && r == CHILD)
		pd();
	if (i == 4 && r == GRAND)
		pg();
	if ((i == 5 && r != SECOND) || (i == 7 && r == PARENT)) {
		int st;
		if (g_child && waitpid(g_child, &st, 0) != g_child)
			die("waitpid");
		if (i == 5)
			pthread_join(g_thread, NULL);
	}
}

int main(void)
{
	if (pipe(g_hold) || pipe(g_ready))
		die("pipe");
	at("proc", "role=parent pid=%d ppid=%d", (int)getpid(), (int)getppid());
	for (int i = 0; i < 8; i++)
		step(i);
	expect_say();
	return 0;
}
