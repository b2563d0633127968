/*
 * vfork_stack: the call stack of a vfork, taken in the parent when the
 * child has exec'd or exited. spawn_one() calls vfork; outer() calls
 * spawn_one(); main calls outer() from three places, then once more through
 * deep() at DEEP levels of recursion. The children exec /bin/true, or
 * _exit(N) without exec.
 *
 * Prints "@ fn name=NAME addr=0xA" for spawn_one, outer, deep and main
 * (runtime addresses, for the test to place return addresses), then
 * "@ child pid=P status=S via=outer|deep" after each reaping, then
 * "@ done".
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEEP 10

__attribute__((noinline)) static pid_t spawn_one(int code)
{
	pid_t p = vfork();
	if (p == 0) {
		if (code == 0)
			execl("/bin/true", "true", (char *)NULL);
		_exit(code);
	}
	__asm__ volatile("" ::: "memory"); /* no tail call: keep the frame */
	return p;
}

static void reap(pid_t p, const char *via)
{
	int st = 0;
	if (p < 0 || waitpid(p, &st, 0) != p) {
		perror("vfork_stack: vfork/waitpid");
		exit(1);
	}
	printf("@ child pid=%d status=%d via=%s\n", (int)p, WIFEXITED(st) ? WEXITSTATUS(st) : -1, via);
	fflush(stdout);
}

__attribute__((noinline)) static pid_t outer(int code)
{
	pid_t p = spawn_one(code);
	__asm__ volatile("" ::: "memory");
	return p;
}

__attribute__((noinline)) static pid_t deep(int level, int code)
{
	pid_t p = level > 1 ? deep(level - 1, code) : spawn_one(code);
	__asm__ volatile("" ::: "memory");
	return p;
}

int main(void)
{
	printf("@ fn name=spawn_one addr=%p\n", (void *)spawn_one);
	printf("@ fn name=outer addr=%p\n", (void *)outer);
	printf("@ fn name=deep addr=%p\n", (void *)deep);
	printf("@ fn name=main addr=%p\n", (void *)main);
	fflush(stdout);
	/* three call sites: three stacks that differ in main's frame only */
	reap(outer(0), "outer");
	reap(outer(1), "outer");
	reap(outer(2), "outer");
	reap(deep(DEEP, 4), "deep");
	printf("@ done\n");
	return 0;
}
