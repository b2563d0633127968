/*
 * cases.h: what the test programs with one case per run (hostile.c,
 * hostile2.c) share: the program's own verdict, the "@ expect" line of a
 * reaped child, and main's dispatch. Include after samples/sample.h.
 */
#ifndef CASES_H
#define CASES_H

struct prog_case {
	const char *name;
	void (*run)(void);
};

static int g_fail; /* the program saw something it did not expect */

/* Checks a child's status against code and says what forkscope should
 * record for it (extra: more "@ expect" keys). */
static inline void expect_exit(pid_t pid, int status, int code, const char *extra)
{
	if (!WIFEXITED(status) || WEXITSTATUS(status) != code) {
		say("unexpected status 0x%04x for %d\n", status, (int)pid);
		g_fail = 1;
	}
	at("expect", "pid=%d ppid=%d exit=exited code=%d reaped_by_pid=%d orphaned=0 %s",
	   (int)pid, (int)getpid(), code, (int)getpid(), extra);
}

/* Runs the case named argv[1]; the exit status of main. */
static inline int run_case(const struct prog_case *cases, size_t n, int argc, char **argv,
			   const char *usage)
{
	const char *c = argc > 1 ? argv[1] : "";
	for (size_t i = 0; i < n; i++) {
		if (strcmp(c, cases[i].name) != 0)
			continue;
		at("proc", "role=main pid=%d ppid=%d", (int)getpid(), (int)getppid());
		cases[i].run();
		say("%s: %s\n", c, g_fail ? "the program saw something unexpected" : "done");
		return g_fail;
	}
	say("usage: %s\n", usage);
	return 2;
}

#endif
