/*
 * Fatal signals: a program that dies by SIGSEGV, SIGBUS, SIGABRT, SIGFPE or
 * SIGILL loses nothing it had buffered. Where the program left the default
 * action, we install a handler that writes out every buffer it can without
 * waiting (async-signal-safe: write() and atomics only), records the end,
 * puts the default action back and raises the signal again, so the exit
 * status and the core dump stay the program's. A handler the program
 * installs later simply replaces ours.
 */
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fsk.h"

static const int fatal[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };

static void on_fatal(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	int saved = errno;
	if (G.active && !t_vfork_child && !emit_ended()) { /* abort() recorded itself */
		proc_record_exit(sig, FSK_EXIT_SIGNAL, 0);
		emit_end(FSK_END_SIGNAL);
	}
	/* Default action back, then the same signal again: it stays pending
	 * while we run and is delivered on return, also for a fault that
	 * would otherwise just re-execute. */
	struct sigaction dfl = { 0 };
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	syscall(SYS_tgkill, getpid(), sys_gettid(), sig);
	errno = saved;
}

/* Called once per image from the constructor; fork children inherit the
 * handlers, exec resets them. */
void signals_init(void)
{
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
		struct sigaction old;
		if (sigaction(fatal[i], NULL, &old) < 0)
			continue;
		if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
			continue;
		struct sigaction sa = { 0 };
		sa.sa_sigaction = on_fatal;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
		sigfillset(&sa.sa_mask);
		sigaction(fatal[i], &sa, NULL);
	}
}
