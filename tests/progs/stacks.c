/*
 * stacks: allocations and leaks at known functions and lines, for the call
 * stack, symbol and leak checks (tests/t_stacks.py).
 *
 * Usage: stacks [LIBDIR]   (LIBDIR holds libstacks_lib.so; default: the
 * directory of this executable)
 *
 * It prints one "@ site" line per place the report must name:
 *   @ site name=N func=F file=stacks.c line=L bytes=B blocks=K leaked=0|1
 * and for a fork child "@ child pid=P". Everything else is freed. Output is
 * write(2) only, so stdio allocates nothing the checks would have to skip.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#include <stdarg.h>
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && write(1, buf, (size_t)n) < 0)
		_exit(99);
}

static inline void use(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static void site(const char *name, const char *func, const char *file, int line, long bytes,
		 int blocks, int leaked)
{
	say("@ site name=%s func=%s file=%s line=%d bytes=%ld blocks=%d leaked=%d\n", name, func,
	    file, line, bytes, blocks, leaked);
}

/* Three blocks of 1000 bytes from one line: one leak group of 3000. */
__attribute__((noinline)) static void *exe_leak(void)
{
	void *p = malloc(1000); int line = __LINE__;
	use(p);
	static int said;
	if (!said++)
		site("exe_leak", "exe_leak", "stacks.c", line, 3000, 3, 1);
	return p;
}

/* 200 allocations of 64 bytes, all freed: the busiest site by calls. */
__attribute__((noinline)) static void exe_churn(void)
{
	for (int i = 0; i < 200; i++) {
		void *p = malloc(64); int line = __LINE__;
		use(p);
		free(p);
		if (i == 0)
			site("exe_churn", "exe_churn", "stacks.c", line, 200 * 64, 200, 0);
	}
}

/* One big block, freed: the largest site by bytes. */
__attribute__((noinline)) static void exe_big(void)
{
	void *p = calloc(1, 1 << 20); int line = __LINE__;
	use(p);
	site("exe_big", "exe_big", "stacks.c", line, 1 << 20, 1, 0);
	free(p);
}

static volatile void *g_sig_block;
static volatile int g_sig_line;

/* A leak from inside a signal handler: the stack goes through the
 * kernel's signal frame. */
static void on_usr1(int sig)
{
	(void)sig;
	g_sig_block = malloc(77); g_sig_line = __LINE__;
	use((void *)g_sig_block);
}

__attribute__((noinline)) static void child_leak(void)
{
	void *p = malloc(123); int line = __LINE__;
	use(p);
	site("child_leak", "child_leak", "stacks.c", line, 123, 1, 1);
}

int main(int argc, char **argv)
{
	char dir[4096], path[4200];
	if (argc > 1) {
		snprintf(dir, sizeof(dir), "%s", argv[1]);
	} else {
		ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
		dir[n > 0 ? n : 0] = 0;
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = 0;
	}
	/* volatile bounds: an unrolled loop would call from three places */
	static volatile int three = 3, two = 2;
	for (int i = 0; i < three; i++)
		use(exe_leak());
	exe_churn();
	exe_big();

	snprintf(path, sizeof(path), "%s/libstacks_lib.so", dir);
	void *h = dlopen(path, RTLD_NOW);
	if (!h) {
		say("stacks: dlopen %s failed\n", path);
		return 3;
	}
	void *(*lib_leak)(size_t, int *) = (void *(*)(size_t, int *))dlsym(h, "lib_leak");
	int line = 0;
	for (int i = 0; i < two; i++)
		use(lib_leak(512, &line));
	site("lib_leak", "lib_leak", "stacks_lib.c", line, 1024, 2, 1);

	signal(SIGUSR1, on_usr1);
	raise(SIGUSR1);
	site("sig_leak", "on_usr1", "stacks.c", g_sig_line, 77, 1, 1);

	pid_t pid = fork();
	if (pid == 0) {
		child_leak();
		use(exe_leak()); /* an id inherited from the parent */
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	say("@ child pid=%d\n", (int)pid);
	return 0;
}
