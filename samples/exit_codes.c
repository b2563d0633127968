/*
 * exit_codes: how a child's end reaches its parent through the wait status.
 *
 * The notes: a process ends in one of three ways: it ran to the end and
 * its result is right, it ran to the end and its result is wrong (both
 * give an exit code, 0 meaning success), or it was stopped abnormally by a
 * signal (then the exit code means nothing). waitpid() fills an int whose
 * low 16 bits are a bitmap: bits 0-6 the killing signal (0 if none), bit 7
 * "core dumped", bits 8-15 the exit code. So an exit code is one byte:
 * exit(256) is seen as 0. (One of the notes writes (st>8)&0xFFF; the right
 * expression is (st>>8)&0xFF, which is what WEXITSTATUS does.)
 *
 * The parent starts one child per case, one after the other, waits for it
 * and decodes the status by hand and with the macros:
 *   exit(0), exit(3), exit(255), exit(256);
 *   return 7 from main, in a fresh image: the child execs this program
 *   again with the argument "ret7";
 *   killed by SIGKILL; SIGSEGV with core dumps off (RLIMIT_CORE 0);
 *   SIGSEGV with core dumps on (in a scratch directory, removed after);
 *   abort() (SIGABRT, core dumps off).
 *
 * What forkscope shows: each child's exit code or signal and core flag,
 * equal to what this parent decoded; the "ret7" child has two images (this
 * program, then this program again with "ret7"); all reaped by the parent.
 */
#include "sample.h"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>

static void no_core(void)
{
	struct rlimit rl = { 0, 0 };
	setrlimit(RLIMIT_CORE, &rl);
}

/* volatile: the compiler may not assume the pointer is NULL and drop or
 * rewrite the store; the CPU must really touch address 0. */
static int *volatile g_nowhere = NULL;

static void crash(void)
{
	*g_nowhere = 42; /* SIGSEGV: nothing is mapped at address 0 */
}

/*
 * Whether a core dump in dir is to be expected: "1", "0", or "?" when the
 * kernel hands cores to a helper program (core_pattern starting with '|')
 * or writes them elsewhere, which this program cannot see.
 */
static const char *core_expected(void)
{
	struct rlimit rl;
	char pat[256] = "";
	if (getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_max == 0)
		return "0";
	FILE *f = fopen("/proc/sys/kernel/core_pattern", "r");
	if (f) {
		if (!fgets(pat, sizeof pat, f))
			pat[0] = 0;
		fclose(f);
	}
	if (pat[0] == '|' || pat[0] == '/' || pat[0] == 0)
		return "?";
	return "1";
}

/* Removes the scratch directory and the core file the kernel may have left
 * in it (no system("rm -rf"): that would add processes to the tree). */
static void remove_scratch(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];
	while (d && (e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	if (rmdir(dir) != 0)
		say("could not remove %s\n", dir);
}

struct kase {
	const char *name;
	const char *expect; /* the tail of the "@ expect" line */
};

static const struct kase cases[] = {
	{ "exit0", "exit=exited code=0" },
	{ "exit3", "exit=exited code=3" },
	{ "exit255", "exit=exited code=255" },
	{ "exit256", "exit=exited code=0" },
	{ "ret7", "exit=exited code=7 images=2" },
	{ "sigkill", "exit=signaled sig=9 core=0" },
	{ "segv", "exit=signaled sig=11 core=0" },
	{ "segv_core", NULL }, /* decided at run time */
	{ "abort", "exit=signaled sig=6 core=0" },
};

/* What the child of one case does; never returns. */
static void run_case(const char *name, const char *self, const char *scratch)
{
	at("proc", "role=%s pid=%d ppid=%d", name, (int)getpid(), (int)getppid());
	if (!strcmp(name, "exit0"))
		exit(0);
	if (!strcmp(name, "exit3"))
		exit(3);
	if (!strcmp(name, "exit255"))
		exit(255);
	if (!strcmp(name, "exit256"))
		exit(256); /* only the low byte survives: the parent sees 0 */
	if (!strcmp(name, "ret7")) {
		execl(self, self, "ret7", (char *)NULL);
		die("execl");
	}
	if (!strcmp(name, "sigkill"))
		kill(getpid(), SIGKILL);
	if (!strcmp(name, "segv")) {
		no_core();
		crash();
	}
	if (!strcmp(name, "segv_core")) {
		struct rlimit rl;
		if (getrlimit(RLIMIT_CORE, &rl) == 0) {
			rl.rlim_cur = rl.rlim_max; /* as much as we are allowed */
			setrlimit(RLIMIT_CORE, &rl);
		}
		if (chdir(scratch) != 0)
			die("chdir");
		crash();
	}
	if (!strcmp(name, "abort")) {
		no_core();
		abort();
	}
	_exit(98); /* not reached */
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "ret7")) {
		/* The exec'd image: same pid, new program, returns from main. */
		say("child %d: a new image of the program; returning 7 from main\n", (int)getpid());
		return 7;
	}

	char scratch[] = "/tmp/exit_codes.XXXXXX";
	if (!mkdtemp(scratch))
		die("mkdtemp");
	const char *core_on = core_expected();
	/* The child's core (if any) is written in its working directory. */
	say("parent %d: starting one child per way to end\n", (int)getpid());
	at("proc", "role=parent pid=%d ppid=%d", (int)getpid(), (int)getppid());

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct kase *k = &cases[i];
		pid_t pid = xfork();
		if (pid == 0)
			run_case(k->name, "/proc/self/exe", scratch);
		int status = xwait(pid);
		say("case %s (child %d):\n", k->name, (int)pid);
		explain_status(pid, status);
		char tail[80];
		if (k->expect)
			snprintf(tail, sizeof tail, "%s", k->expect);
		else
			snprintf(tail, sizeof tail, "exit=signaled sig=11 core=%s", core_on);
		at("expect", "pid=%d ppid=%d %s reaped_by_pid=%d orphaned=0 case=%s",
		   (int)pid, (int)getpid(), tail, (int)getpid(), k->name);
	}
	remove_scratch(scratch);
	return 0;
}
