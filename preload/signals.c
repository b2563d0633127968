/*
 * Fatal signals: a program that dies by SIGSEGV, SIGBUS, SIGABRT, SIGFPE or
 * SIGILL loses nothing it had buffered. For these five signals our handler
 * is always the kernel's action (unless the program ignores the signal),
 * and sigaction()/signal() are interposed so the program still sees, and
 * gets, exactly what it asked for:
 * - the program left the default action: we write out every buffer we can
 *   without waiting (async-signal-safe: write() and atomics only), record
 *   the end, put the default action back and raise the signal again, so
 *   the exit status and the core dump stay the program's;
 * - the program installed a handler (before our constructor or after it,
 *   with sigaction, signal, bsd_signal or sysv_signal): we flush, then call its handler with the
 *   same arguments, mask and errno it would have had untraced. Its
 *   SA_RESETHAND is emulated (one-shot, then the default action, which is
 *   ours again); SA_NODEFER, SA_ONSTACK, SA_RESTART and its mask go to the
 *   kernel as given.
 * sigaction's old action always reports the program's own action.
 */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fsk.h"

static const int fatal[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };
/* s_act has room for the fatal signals only: every other is passed on */
#define ACT_MAX (SIGSEGV + 1)
_Static_assert(SIGBUS < ACT_MAX && SIGABRT < ACT_MAX && SIGFPE < ACT_MAX && SIGILL < ACT_MAX,
	       "the fatal signals index s_act");

static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
static sighandler_t (*real_signal)(int, sighandler_t);
static sighandler_t (*real_sysv_signal)(int, sighandler_t);

/* Per fatal signal: on is set once our handler owns the kernel's action;
 * user is what the program asked for (its action as sigaction reports
 * it). Updated with every signal blocked in the updating thread. */
static struct {
	_Atomic int on;
	_Atomic int early; /* came while signals_init was taking it over */
	struct sigaction user;
} s_act[ACT_MAX];

static int is_fatal(int sig)
{
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		if (fatal[i] == sig)
			return 1;
	return 0;
}

/* Also called from the hooks: another library's constructor may set a
 * handler before ours runs (dlsym is still allowed then). */
static void signals_resolve(void)
{
	if (real_sigaction)
		return;
	resolve_all();
	real_signal = (sighandler_t(*)(int, sighandler_t))dlsym(RTLD_NEXT, "signal");
	real_sysv_signal = (sighandler_t(*)(int, sighandler_t))dlsym(RTLD_NEXT, "sysv_signal");
	real_sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
}

static int user_catches(const struct sigaction *sa)
{
	return sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN;
}

static void on_fatal(int sig, siginfo_t *si, void *uc);

/* Puts the kernel action for the program's action u: ignored stays
 * ignored; otherwise on_fatal, with the program's flags and mask when it
 * catches the signal, everything blocked while we die when it does not. */
static int kernel_set(int sig, const struct sigaction *u)
{
	if (u->sa_handler == SIG_IGN)
		return real_sigaction(sig, u, NULL);
	struct sigaction k = { 0 };
	k.sa_sigaction = on_fatal;
	if (user_catches(u)) {
		k.sa_mask = u->sa_mask;
		k.sa_flags = SA_SIGINFO | (u->sa_flags & (SA_ONSTACK | SA_RESTART | SA_NODEFER));
	} else {
		sigfillset(&k.sa_mask);
		k.sa_flags = SA_SIGINFO | SA_ONSTACK;
	}
	return real_sigaction(sig, &k, NULL);
}

static void die_default(int sig)
{
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
	real_sigaction(sig, &dfl, NULL);
	syscall(SYS_tgkill, getpid(), sys_gettid(), sig);
}

static void on_fatal(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	if (!atomic_load(&s_act[sig].on)) {
		/* signals_init has installed us but not yet read what the
		 * program had: it raises the signal again once it knows */
		atomic_store(&s_act[sig].early, 1);
		errno = saved;
		return;
	}
	struct sigaction u = s_act[sig].user;
	if (!user_catches(&u)) {
		die_default(sig);
		errno = saved;
		return;
	}
	if ((u.sa_flags & SA_RESETHAND) && !t_vfork_child) {
		s_act[sig].user.sa_handler = SIG_DFL;
		kernel_set(sig, &s_act[sig].user);
	}
	if (G.active && !t_vfork_child)
		emit_flush_all(0);
	errno = saved;
	if (u.sa_flags & SA_SIGINFO)
		u.sa_sigaction(sig, si, uc);
	else
		u.sa_handler(sig);
}

int signals_caught(int sig)
{
	return is_fatal(sig) && atomic_load(&s_act[sig].on) && user_catches(&s_act[sig].user);
}

FSK_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	signals_resolve();
	if (sig <= 0 || sig >= ACT_MAX || !atomic_load(&s_act[sig].on))
		return real_sigaction(sig, act, old);
	int saved = errno;
	if (t_vfork_child) {
		/* Our memory is the parent's: the kernel action is the child's. */
		int r = real_sigaction(sig, act, old);
		if (r == 0 && old && old->sa_sigaction == on_fatal)
			*old = s_act[sig].user;
		return r;
	}
	sigset_t all, mask;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &mask);
	struct sigaction prev = s_act[sig].user;
	int r = 0;
	if (act) {
		r = kernel_set(sig, act);
		if (r == 0)
			s_act[sig].user = *act;
	}
	int err = errno;
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	if (r < 0) {
		errno = err;
		return -1;
	}
	if (old)
		*old = prev;
	errno = saved;
	return 0;
}

/* signal() and its variants as sigaction calls with their semantics. */
static sighandler_t signals_set(int sig, sighandler_t handler, int flags, int block_self)
{
	struct sigaction sa = { 0 }, old;
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	if (block_self)
		sigaddset(&sa.sa_mask, sig);
	sa.sa_flags = flags;
	if (sigaction(sig, &sa, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

/* glibc's signal() and bsd_signal(): BSD semantics, the signal blocked in
 * its handler, system calls restarted. */
FSK_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	signals_resolve();
	if (sig <= 0 || sig >= ACT_MAX || !atomic_load(&s_act[sig].on))
		return real_signal(sig, handler);
	return signals_set(sig, handler, SA_RESTART, 1);
}

FSK_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler)
{
	return signal(sig, handler);
}

/* System V semantics: one-shot, not blocked in its handler. */
FSK_EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler)
{
	signals_resolve();
	if (sig <= 0 || sig >= ACT_MAX || !atomic_load(&s_act[sig].on))
		return real_sysv_signal(sig, handler);
	return signals_set(sig, handler, SA_RESETHAND | SA_NODEFER, 0);
}

/* Called once per image from the constructor; fork children inherit the
 * handlers and this table, exec resets both. A handler set before we got
 * here (another library's constructor) is taken over like a later one.
 * One rt_sigaction per signal sets our action for the default and reads
 * the one it replaces: after exec that is the default, or SIG_IGN
 * inherited from the parent, which a second call puts back (as does a
 * handler's flags and mask). A signal in between is held (s_act.early)
 * and raised again once the program's action is known and ours, so it
 * meets that action: ignored, the default (death), or the handler. */
void signals_init(void)
{
	signals_resolve();
	struct sigaction ours = { 0 };
	ours.sa_sigaction = on_fatal;
	sigfillset(&ours.sa_mask);
	ours.sa_flags = SA_SIGINFO | SA_ONSTACK; /* kernel_set for the default */
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
		int sig = fatal[i];
		struct sigaction cur;
		if (real_sigaction(sig, &ours, &cur) < 0)
			continue;
		s_act[sig].user = cur;
		if (cur.sa_handler != SIG_DFL && kernel_set(sig, &cur) < 0)
			real_sigaction(sig, &cur, NULL); /* the program's, untouched */
		else
			atomic_store(&s_act[sig].on, 1);
		if (atomic_exchange(&s_act[sig].early, 0))
			syscall(SYS_tgkill, getpid(), sys_gettid(), sig);
	}
}
