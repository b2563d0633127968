/*
 * sigchain: a program with its own handlers for the fatal signals forkscope
 * also catches (issue 7). forkscope must flush, then hand the signal to the
 * program's handler with the program's siginfo, mask, flags and errno, and
 * sigaction/signal must report the program's own actions.
 *
 * Usage: sigchain CASE
 *   segv       SA_SIGINFO SIGSEGV handler on a real fault; it repairs the
 *              page and returns, the program goes on
 *   fpe        signal(SIGFPE): BSD semantics, the old handler returned
 *   resethand  SA_RESETHAND SIGABRT handler in a child that aborts after a
 *              malloc burst: the handler runs once, then the child dies
 *   nodefer    SA_NODEFER SIGBUS handler in a child; it _exits 7
 *   reraise    a crash reporter: a child's SIGSEGV handler prints, puts
 *              the default action back and returns; the fault happens
 *              again and kills the child (forkscope records that end)
 *   sysv       sysv_signal(SIGFPE) in a child: the handler runs once,
 *              then the default action kills the child at the next raise
 *   early      raise SIGILL: the handler libsig_early.so installed before
 *              forkscope's constructor ran
 *   ign        SIGFPE ignored: raise() returns, the program goes on
 * Each case prints what it saw; "@ expect" lines say what forkscope should
 * record; the exit status is 0 when the program saw what it expected.
 */
#include "../../samples/sample.h"

#include <signal.h>
#include <sys/mman.h>

void sig_early_handler(int sig);

static int g_fail;
static char *g_page;
static volatile sig_atomic_t g_calls;
static int g_errno_in, g_blocked_in, g_addr_ok, g_reset_in;

static void expect(int cond, const char *what)
{
	say("%s: %s\n", what, cond ? "yes" : "NO");
	if (!cond)
		g_fail = 1;
}

static void burst(int n)
{
	for (int i = 0; i < n; i++)
		if (!malloc(16 + i % 64))
			_exit(90);
}

static int blocked(int sig)
{
	sigset_t cur;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	return sigismember(&cur, sig);
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	g_calls++;
	g_errno_in = errno;
	g_addr_ok = sig == SIGSEGV && si->si_signo == SIGSEGV && si->si_addr == g_page;
	g_blocked_in = blocked(SIGSEGV) && blocked(SIGUSR2); /* SIGUSR2: sa_mask */
	mprotect(g_page, 4096, PROT_READ | PROT_WRITE);
	errno = 77; /* a handler may leave errno changed; untraced it stays so */
}

static void case_segv(void)
{
	burst(1000);
	g_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct sigaction sa = { 0 }, old;
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaction(SIGSEGV, &sa, &old);
	expect(old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO), "old SIGSEGV action was the default");
	sigaction(SIGSEGV, NULL, &old);
	expect(old.sa_sigaction == on_segv && (old.sa_flags & SA_SIGINFO) && sigismember(&old.sa_mask, SIGUSR2),
	       "sigaction reports our own SIGSEGV handler");
	errno = 1234;
	*(volatile char *)g_page = 1;
	int e = errno;
	expect(g_calls == 1, "the SIGSEGV handler ran once");
	expect(g_addr_ok, "it got the faulting address in siginfo");
	expect(g_errno_in == 1234, "it saw the program's errno");
	expect(e == 77, "errno after it is what it left");
	expect(g_blocked_in, "SIGSEGV and its sa_mask were blocked in it");
	at("expect", "pid=%d exit=exited code=0 malloc_min=1000", (int)getpid());
}

static void on_fpe(int sig)
{
	g_calls++;
	g_blocked_in = sig == SIGFPE && blocked(SIGFPE);
}

static void case_fpe(void)
{
	sighandler_t prev = signal(SIGFPE, on_fpe);
	expect(prev == SIG_DFL, "signal() returned the default as the old SIGFPE handler");
	raise(SIGFPE);
	raise(SIGFPE);
	expect(g_calls == 2, "the SIGFPE handler ran for both raises");
	expect(g_blocked_in, "SIGFPE was blocked in it");
	prev = signal(SIGFPE, SIG_DFL);
	expect(prev == on_fpe, "signal() returned our handler as the old one");
	at("expect", "pid=%d exit=exited code=0", (int)getpid());
}

static void on_abrt(int sig)
{
	struct sigaction cur;
	g_calls++;
	sigaction(sig, NULL, &cur);
	g_reset_in = cur.sa_handler == SIG_DFL;
	g_blocked_in = blocked(SIGABRT);
	say("SIGABRT handler: call %d, reset to default: %s, blocked: %s\n", (int)g_calls,
	    g_reset_in ? "yes" : "no", g_blocked_in ? "yes" : "no");
}

static void case_resethand(void)
{
	pid_t pid = xfork();
	if (pid == 0) {
		struct sigaction sa = { 0 };
		sa.sa_handler = on_abrt;
		sa.sa_flags = SA_RESETHAND;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGABRT, &sa, NULL);
		burst(3000);
		abort();
	}
	int st = xwait(pid);
	expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "the child died of SIGABRT after its handler");
	at("expect", "pid=%d ppid=%d exit=signaled sig=%d core=? reaped_by_pid=%d malloc_min=3000",
	   (int)pid, (int)getpid(), SIGABRT, (int)getpid());
	at("expect", "pid=%d exit=exited code=0", (int)getpid());
}

static void on_bus(int sig)
{
	if (sig == SIGBUS && !blocked(SIGBUS))
		say("SIGBUS handler: not blocked (SA_NODEFER), exiting 7\n");
	_exit(7);
}

static void case_nodefer(void)
{
	pid_t pid = xfork();
	if (pid == 0) {
		struct sigaction sa = { 0 };
		sa.sa_handler = on_bus;
		sa.sa_flags = SA_NODEFER;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGBUS, &sa, NULL);
		burst(500);
		raise(SIGBUS);
		_exit(1);
	}
	int st = xwait(pid);
	expect(WIFEXITED(st) && WEXITSTATUS(st) == 7, "the child's SIGBUS handler exited 7");
	at("expect", "pid=%d ppid=%d exit=exited code=7 reaped_by_pid=%d malloc_min=500",
	   (int)pid, (int)getpid(), (int)getpid());
	at("expect", "pid=%d exit=exited code=0", (int)getpid());
}

static void on_segv_report(int sig)
{
	say("crash reporter: signal %d, dying with the default action\n", sig);
	signal(sig, SIG_DFL);
}

static void case_reraise(void)
{
	pid_t pid = xfork();
	if (pid == 0) {
		signal(SIGSEGV, on_segv_report);
		burst(2000);
		*(volatile char *)mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) = 1;
		_exit(1);
	}
	int st = xwait(pid);
	expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "the child died of SIGSEGV after its reporter");
	at("expect", "pid=%d ppid=%d exit=signaled sig=%d core=? reaped_by_pid=%d malloc_min=2000",
	   (int)pid, (int)getpid(), SIGSEGV, (int)getpid());
	at("expect", "pid=%d exit=exited code=0", (int)getpid());
}

static void on_fpe_once(int sig)
{
	g_calls++;
	say("SIGFPE one-shot handler: blocked in it: %s\n", blocked(sig) ? "yes" : "no");
}

static void case_sysv(void)
{
	pid_t pid = xfork();
	if (pid == 0) {
		sysv_signal(SIGFPE, on_fpe_once);
		burst(700);
		raise(SIGFPE);
		say("after the first SIGFPE: handler calls %d\n", (int)g_calls);
		raise(SIGFPE);
		_exit(1);
	}
	int st = xwait(pid);
	expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGFPE, "the child died of the second SIGFPE");
	at("expect", "pid=%d ppid=%d exit=signaled sig=%d core=? reaped_by_pid=%d malloc_min=700",
	   (int)pid, (int)getpid(), SIGFPE, (int)getpid());
	at("expect", "pid=%d exit=exited code=0", (int)getpid());
}

static void case_early(void)
{
	struct sigaction cur;
	sigaction(SIGILL, NULL, &cur);
	expect(cur.sa_handler == sig_early_handler, "sigaction reports the library's SIGILL handler");
	raise(SIGILL);
	at("expect", "pid=%d exit=exited code=0", (int)getpid());
}

static void case_ign(void)
{
	struct sigaction sa = { 0 }, cur;
	sa.sa_handler = SIG_IGN;
	sigaction(SIGFPE, &sa, NULL);
	raise(SIGFPE);
	sigaction(SIGFPE, NULL, &cur);
	expect(cur.sa_handler == SIG_IGN, "SIGFPE ignored, and reported so");
	at("expect", "pid=%d exit=exited code=0", (int)getpid());
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*run)(void);
	} cases[] = {
		{ "segv", case_segv },		 { "fpe", case_fpe },	{ "resethand", case_resethand },
		{ "nodefer", case_nodefer }, { "reraise", case_reraise }, { "sysv", case_sysv },
		{ "early", case_early },     { "ign", case_ign },
	};
	for (size_t i = 0; argc == 2 && i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (strcmp(argv[1], cases[i].name) == 0) {
			cases[i].run();
			return g_fail;
		}
	}
	fprintf(stderr, "usage: sigchain segv|fpe|resethand|nodefer|reraise|sysv|early|ign\n");
	return 2;
}
