/*
 * samples/sample.h: the few helpers every sample shares.
 *
 * Each sample explains itself in plain sentences and, on lines of their
 * own, says the same facts in a form tests can parse:
 *
 *   @ KIND key=value key=value ...
 *
 * - "@ " starts the line; KIND is one word; values never contain spaces:
 *   decimal integers, 0x-prefixed hex addresses, or single words.
 * - Keys named pid or ppid, or ending in _pid, are process ids; keys ending
 *   in _ms are measured times in milliseconds; addresses are in hex. A test
 *   comparing a traced and an untraced run replaces those, and in the
 *   sentences hex addresses and measured sizes written "N KiB"; all other
 *   text must be the same in every run.
 * - Kinds used by more than one sample:
 *     @ proc role=NAME pid=N ppid=N
 *         a process introduces itself;
 *     @ wait pid=N status=0xHHHH exited=0|1 code=N signaled=0|1 sig=N core=0|1
 *         what the parent's waitpid() returned, decoded;
 *     @ expect pid=N exit=exited code=N | exit=signaled sig=N core=0|1|?
 *              [reaped_by_pid=N] [orphaned=0|1] [images=N] [zombie_min_ms=N]
 *              [malloc_min=N] [last_exe=PATH]
 *         what forkscope should record for process N ("?": the sample
 *         cannot know, e.g. a core pattern piped to a helper): images is
 *         the number of program images (execs + 1), malloc_min a lower
 *         bound of its malloc calls, last_exe the program it ran last.
 *
 * Everything is written with write(2), one line per call: nothing sits in
 * a stdio buffer when the process forks, so no line is printed twice and
 * lines of different processes never interleave inside a line.
 * exit_vs_exit.c uses printf on purpose, to show that buffer.
 */
#ifndef SAMPLE_H
#define SAMPLE_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline void sample_write(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* Prints a human sentence (printf format), in one write(). */
static inline void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	sample_write(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Prints one machine-readable line "@ KIND ...", in one write(). */
static inline void __attribute__((format(printf, 2, 3))) at(const char *kind, const char *fmt, ...)
{
	char buf[1024];
	int n = snprintf(buf, sizeof buf, "@ %s ", kind);
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	sample_write(buf, (size_t)n);
}

static inline void die(const char *what)
{
	say("%s: %s\n", what, strerror(errno));
	exit(99);
}

static inline void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* fork() that flushes stdio first, so a buffered line is not copied into
 * the child and printed twice; exits the sample if fork fails. */
static inline pid_t xfork(void)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	return pid;
}

/* waitpid() for one child, retried on EINTR; exits the sample on error. */
static inline int xwait(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	return status;
}

/* The state letter of a process from /proc/PID/stat (R, S, Z, ...), or '?'. */
static inline char proc_state(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	return p && p[1] == ' ' && p[2] ? p[2] : '?';
}

/*
 * Explains a wait status the way the notes draw it: only the low 16 bits
 * matter; bits 0-6 hold the signal that killed the child (0 if it exited),
 * bit 7 says whether it dumped core, bits 8-15 hold the exit code when the
 * signal bits are 0. Then prints the same through the <sys/wait.h> macros
 * and as an "@ wait" line.
 */
static inline void explain_status(pid_t pid, int status)
{
	int sig = status & 0x7f, core = (status & 0x80) != 0, code = (status >> 8) & 0xff;
	say("  waitpid(%d) status = 0x%04x: bits 0-6 = %d, bit 7 = %d, bits 8-15 = %d\n",
	    (int)pid, status, sig, core, code);
	if (WIFEXITED(status))
		say("  WIFEXITED: it exited normally; WEXITSTATUS = %d\n", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		say("  WIFSIGNALED: killed by signal %d (%s); WCOREDUMP = %d; "
		    "the exit code bits mean nothing here\n",
		    WTERMSIG(status), strsignal(WTERMSIG(status)), WCOREDUMP(status) ? 1 : 0);
	at("wait", "pid=%d status=0x%04x exited=%d code=%d signaled=%d sig=%d core=%d",
	   (int)pid, status, WIFEXITED(status) ? 1 : 0,
	   WIFEXITED(status) ? WEXITSTATUS(status) : 0,
	   WIFSIGNALED(status) ? 1 : 0, WIFSIGNALED(status) ? WTERMSIG(status) : 0,
	   WIFSIGNALED(status) && WCOREDUMP(status) ? 1 : 0);
}

#endif /* SAMPLE_H */
