/*
 * regions: how a process's address space changes, one change at a time.
 *
 * The notes: the kernel keeps a process's memory as a list of regions
 * (mappings), each a range of pages with permissions and a backing (a file,
 * or anonymous memory). mmap adds a region, munmap removes pages of one,
 * mremap grows, shrinks or moves one, mprotect changes its permissions.
 * The heap is the region that ends at the program break: brk/sbrk move the
 * break, and malloc does so itself for small blocks; for big blocks malloc
 * maps a region of their own and unmaps it at free. The stack grows down
 * on demand as calls nest, and every thread gets a stack region of its own.
 *
 * The program makes each of those changes in turn and, after each one,
 * forks a child that exits at once and waits for it: fork and wait are
 * calls after which forkscope scans the address space at once, so every
 * change lands in a scan of its own (a change undone before the next scan
 * would not be visible). Its own mappings live inside a PROT_NONE
 * reservation (which scans do not list), so the kernel cannot merge them
 * with a neighbour.
 *
 * For each change it prints what forkscope should report as a region
 * event: "@ change what=WHAT kind=KIND cause=CAUSE start=.. end=..
 * [old_start=.. old_end=..] [perms=.. old_perms=..]" (a key that is missing
 * is not known to the program, e.g. where the heap starts).
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

#include "sample.h"

#define K64 (64 * 1024)
#define RESERVE (16 << 20)
#define FRAME (16 * 1024)
#define DEPTH 64

static uintptr_t g_low_sp = UINTPTR_MAX;

static uintptr_t page_up(uintptr_t v)
{
	uintptr_t ps = (uintptr_t)sysconf(_SC_PAGESIZE);
	return (v + ps - 1) & ~(ps - 1);
}

/* A fork and a wait: forkscope scans after each of them. */
static void checkpoint(const char *after)
{
	pid_t pid = xfork();
	if (pid == 0)
		_exit(0);
	xwait(pid);
	say("  (checkpoint after %s: fork and wait, forkscope scans here)\n", after);
}

static void touch(char *p, size_t len)
{
	for (size_t i = 0; i < len; i += 4096)
		p[i] = 1;
}

static long recurse(int level)
{
	volatile char frame[FRAME];
	for (int i = 0; i < FRAME; i += 512)
		frame[i] = (char)level;
	if ((uintptr_t)frame < g_low_sp)
		g_low_sp = (uintptr_t)frame;
	long sum = level < DEPTH ? recurse(level + 1) : 0;
	return sum + frame[0]; /* the level: the sum is 1 + 2 + ... + DEPTH */
}

static int g_up[2], g_down[2]; /* thread -> main, main -> thread */
static uintptr_t g_thread_sp;

static void *thread_main(void *arg)
{
	volatile char here = 0;
	char c;
	(void)arg;
	g_thread_sp = (uintptr_t)&here;
	if (write(g_up[1], "s", 1) != 1) /* tell main the stack exists */
		return NULL;
	while (read(g_down[0], &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static void maps_steps(void)
{
	char *r = mmap(NULL, RESERVE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		die("mmap reservation");
	char *a = r + (1 << 20), *b = r + (4 << 20);

	char *m = mmap(a, K64, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (m != a)
		die("mmap");
	touch(a, K64);
	say("mmap: 64 KiB of anonymous memory at %p\n", (void *)a);
	at("change", "what=added kind=anon cause=mmap start=%p end=%p perms=rw-p", (void *)a,
	   (void *)(a + K64));
	checkpoint("mmap");

	/* Room above it (the reservation's pages there go), then grow in place. */
	if (munmap(a + K64, K64) < 0 || mremap(a, K64, 2 * K64, 0) != a)
		die("mremap grow");
	touch(a, 2 * K64);
	say("mremap: grown in place to 128 KiB\n");
	at("change", "what=grown kind=anon cause=mremap start=%p end=%p old_start=%p old_end=%p",
	   (void *)a, (void *)(a + 2 * K64), (void *)a, (void *)(a + K64));
	checkpoint("mremap grow");

	if (mremap(a, 2 * K64, 3 * K64, MREMAP_MAYMOVE | MREMAP_FIXED, b) != b)
		die("mremap move");
	touch(b, 3 * K64);
	say("mremap: moved to %p and grown to 192 KiB\n", (void *)b);
	at("change", "what=moved kind=anon cause=mremap start=%p end=%p old_start=%p old_end=%p",
	   (void *)b, (void *)(b + 3 * K64), (void *)a, (void *)(a + 2 * K64));
	checkpoint("mremap move");

	if (mprotect(b, K64, PROT_READ) < 0)
		die("mprotect");
	say("mprotect: its first 64 KiB read-only\n");
	at("change", "what=prot kind=anon cause=mprotect start=%p end=%p perms=r--p old_perms=rw-p",
	   (void *)b, (void *)(b + K64));
	checkpoint("mprotect");

	if (munmap(b + 2 * K64, K64) < 0)
		die("munmap tail");
	say("munmap: its last 64 KiB\n");
	at("change", "what=shrunk kind=anon cause=munmap start=%p end=%p old_start=%p old_end=%p",
	   (void *)(b + K64), (void *)(b + 2 * K64), (void *)(b + K64), (void *)(b + 3 * K64));
	checkpoint("munmap of the tail");

	if (munmap(b, K64) < 0)
		die("munmap");
	say("munmap: the read-only part, all of it\n");
	at("change", "what=removed kind=anon cause=munmap start=%p end=%p perms=r--p", (void *)b,
	   (void *)(b + K64));
	checkpoint("munmap");
}

static void heap_steps(void)
{
	/* Blocks up to 1 MiB from the heap, so one malloc moves the break. */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	uintptr_t b0 = (uintptr_t)sbrk(0);
	char *blk = malloc(512 * 1024);
	uintptr_t b1 = (uintptr_t)sbrk(0);
	if (!blk || b1 <= b0)
		die("malloc did not move the break");
	touch(blk, 512 * 1024);
	say("malloc(512 KiB): the break moved up by %lu KiB\n", (unsigned long)(b1 - b0) / 1024);
	at("change", "what=grown kind=heap cause=malloc end=%#lx old_end=%#lx",
	   (unsigned long)page_up(b1), (unsigned long)page_up(b0));
	checkpoint("malloc");

	if (sbrk(K64) == (void *)-1)
		die("sbrk");
	uintptr_t b2 = (uintptr_t)sbrk(0);
	say("sbrk(64 KiB): the program moves the break itself\n");
	at("change", "what=grown kind=heap cause=sbrk end=%#lx old_end=%#lx",
	   (unsigned long)page_up(b2), (unsigned long)page_up(b1));
	checkpoint("sbrk");

	if (brk((void *)b1) < 0)
		die("brk");
	say("brk: and back where malloc left it\n");
	at("change", "what=shrunk kind=heap cause=brk end=%#lx old_end=%#lx",
	   (unsigned long)page_up(b1), (unsigned long)page_up(b2));
	checkpoint("brk");

	char *big = malloc(4 << 20);
	if (!big)
		die("malloc 4 MiB");
	touch(big, 4 << 20);
	say("malloc(4 MiB): a mapping of its own\n");
	at("change", "what=added kind=anon cause=malloc block=%p size=%d", (void *)big, 4 << 20);
	checkpoint("big malloc");
	uintptr_t big_at = (uintptr_t)big;
	free(big);
	say("free: unmapped again\n");
	at("change", "what=removed kind=anon cause=malloc block=%#lx size=%d", (unsigned long)big_at,
	   4 << 20);
	checkpoint("free");
	free(blk);
}

int main(void)
{
	at("proc", "role=main pid=%d ppid=%d", (int)getpid(), (int)getppid());
	/* The heap exists before the first change (volatile: the compiler
	 * may not drop the pair). Its first appearance is malloc's doing. */
	uintptr_t b0 = (uintptr_t)sbrk(0);
	char *volatile first = malloc(1);
	uintptr_t b1 = (uintptr_t)sbrk(0);
	if (b1 > b0) {
		say("malloc(1): the heap appears, up to the new break\n");
		at("change", "what=added kind=heap cause=malloc end=%#lx", (unsigned long)page_up(b1));
	}
	free(first);
	checkpoint("start");

	maps_steps();
	heap_steps();

	long sum = recurse(1);
	say("recursion %d levels deep, %d KiB each (sum %ld): the stack grew\n", DEPTH,
	    FRAME / 1024, sum);
	at("change", "what=grown kind=stack cause=stack_growth lowest=%#lx", (unsigned long)g_low_sp);
	checkpoint("recursion");

	pthread_t t;
	char c;
	if (pipe(g_up) < 0 || pipe(g_down) < 0 || pthread_create(&t, NULL, thread_main, NULL) != 0)
		die("pthread_create");
	if (read(g_up[0], &c, 1) != 1)
		die("read");
	say("a thread started, with a stack of its own\n");
	at("change", "what=added kind=thread_stack cause=thread_start inside=%#lx",
	   (unsigned long)g_thread_sp);
	checkpoint("thread start");
	if (write(g_down[1], "e", 1) != 1)
		die("write");
	pthread_join(t, NULL);
	return 0;
}
