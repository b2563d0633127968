/*
 * sig_inherit: the fatal signals forkscope takes over (SIGSEGV, SIGBUS,
 * SIGABRT, SIGFPE, SIGILL) as a program finds them at start, which is
 * the default or SIG_IGN inherited across exec from its parent (the test
 * starts it with some ignored). Traced and untraced it must print the
 * same: the action sigaction reports for each, the kernel's ignored set
 * (/proc/self/status SigIgn: an ignored signal stays ignored in the
 * kernel, not caught by forkscope), that a raise of an ignored one
 * returns, that an image it execs inherits the same ignored set, and that
 * once it puts the default back the signal kills a child.
 *
 * Usage: sig_inherit [ignore]  ignore: SIGSEGV, SIGBUS and SIGFPE are
 *                               ignored, then the program execs itself
 * (its fork child execs it again with "image": the second image)
 */
#include "../../samples/sample.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

static const int fatal[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };

static void show_actions(const char *who)
{
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
		struct sigaction old;
		if (sigaction(fatal[i], NULL, &old) < 0)
			die("sigaction");
		const char *what = old.sa_handler == SIG_DFL ? "default"
				   : old.sa_handler == SIG_IGN ? "ignored" : "handler";
		at("action", "who=%s sig=%d is=%s", who, fatal[i], what);
	}
}

/* The kernel's view: SigIgn of /proc/self/status, the five signals' bits. */
static void show_kernel_ignored(const char *who)
{
	int fd = open("/proc/self/status", O_RDONLY);
	if (fd < 0)
		die("open /proc/self/status");
	char buf[8192];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		die("read /proc/self/status");
	buf[n] = 0;
	const char *p = strstr(buf, "SigIgn:");
	if (!p)
		die("no SigIgn line");
	unsigned long long mask = strtoull(p + 7, NULL, 16), ours = 0;
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		ours |= mask & (1ull << (fatal[i] - 1));
	at("kernel", "who=%s ignored=0x%llx", who, ours);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "ignore") == 0) {
		signal(SIGSEGV, SIG_IGN);
		signal(SIGBUS, SIG_IGN);
		signal(SIGFPE, SIG_IGN);
		execl(argv[0], argv[0], (char *)NULL);
		die("exec");
	}
	const char *who = argc > 1 ? "image2" : "image1";
	show_actions(who);
	show_kernel_ignored(who);
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
		struct sigaction old;
		sigaction(fatal[i], NULL, &old);
		if (old.sa_handler == SIG_IGN) {
			raise(fatal[i]);
			at("raised", "who=%s sig=%d survived=1", who, fatal[i]);
		}
	}
	if (argc > 1)
		return 0;

	/* The second image: exec'd by a fork child, inherits what is ignored. */
	pid_t pid = xfork();
	if (pid == 0) {
		execl(argv[0], argv[0], "image", (char *)NULL);
		_exit(127);
	}
	int st = xwait(pid);
	at("wait", "who=image2 exited=%d code=%d", WIFEXITED(st), WIFEXITED(st) ? WEXITSTATUS(st) : -1);

	/* SIGFPE back to the default: signal() returns what it was, and a
	 * child that raises it dies of it. */
	sighandler_t prev = signal(SIGFPE, SIG_DFL);
	at("restore", "sig=%d was=%s", SIGFPE,
	   prev == SIG_IGN ? "ignored" : prev == SIG_DFL ? "default" : "handler");
	pid = xfork();
	if (pid == 0) {
		raise(SIGFPE);
		_exit(3);
	}
	st = xwait(pid);
	at("wait", "who=raiser signaled=%d sig=%d", WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	show_kernel_ignored("after");
	return 0;
}
