/*
 * Changes of credentials, capabilities and namespaces. Nothing is
 * recorded; each hook only makes sure our flusher thread is not there
 * while the change happens (init_flusher_pause says why): glibc makes
 * every thread take a setuid-family change and aborts the process when
 * their results differ, capabilities and the keep-caps flag are per
 * thread, and unshare or setns of a user namespace refuses a process
 * with a second thread. A later record starts a new flusher, which has
 * the new credentials from its creator. errno and the result are the
 * real call's.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fsk.h"

#define CRED_HOOK(ret, name, params, args)                                      \
	FSK_EXPORT ret name params                                              \
	{                                                                       \
		static void *_Atomic real_;                                     \
		ret(*fn_) params = (ret(*) params)resolve_late(&real_, #name); \
		if (!fn_) {                                                     \
			errno = ENOSYS;                                         \
			return -1;                                              \
		}                                                               \
		int paused_ = init_flusher_pause();                             \
		ret ret_ = fn_ args;                                            \
		int err_ = errno;                                               \
		init_flusher_resume(paused_);                                   \
		errno = err_;                                                   \
		return ret_;                                                    \
	}

CRED_HOOK(int, setuid, (uid_t u), (u))
CRED_HOOK(int, setgid, (gid_t g), (g))
CRED_HOOK(int, seteuid, (uid_t u), (u))
CRED_HOOK(int, setegid, (gid_t g), (g))
CRED_HOOK(int, setreuid, (uid_t ru, uid_t eu), (ru, eu))
CRED_HOOK(int, setregid, (gid_t rg, gid_t eg), (rg, eg))
CRED_HOOK(int, setresuid, (uid_t ru, uid_t eu, uid_t su), (ru, eu, su))
CRED_HOOK(int, setresgid, (gid_t rg, gid_t eg, gid_t sg), (rg, eg, sg))
CRED_HOOK(int, setgroups, (size_t n, const gid_t *list), (n, list))
CRED_HOOK(int, capset, (void *hdr, void *data), (hdr, data))
CRED_HOOK(int, unshare, (int flags), (flags))
CRED_HOOK(int, setns, (int fd, int type), (fd, type))

/*
 * A seccomp filter (or strict mode) may refuse any system call of ours,
 * and a sandbox's filter kills the process for one it did not expect: a
 * program that allowed what it needs itself, then malloc'd, died of
 * SIGSYS under forkscope at our first fstat. So tracing of the image
 * stops before the filter is installed: the flusher ends, what is
 * buffered goes out with a NOTE and an END (FSK_END_STOPPED), and the
 * library is taken out of LD_PRELOAD in the environment, in place, so
 * that an image the process execs does not load it under the filter.
 */
static void seccomp_stop(void)
{
	if (t_guard || !G.active || t_vfork_child)
		return;
	int e = errno;
	t_guard = 1;
	init_flusher_pause(); /* never resumed: nothing is recorded any more */
	emit_stop("tracing stopped: the program installs a seccomp filter, which may refuse "
		  "forkscope's system calls; nothing of it after this is recorded");
	G.seccomp_stopped = 1; /* and execs from here leave us out (proc.c) */
	for (char **env = environ; env && *env; env++)
		env_unname(*env);
	t_guard = 0;
	errno = e;
}

/* syscall(2) itself, for SYS_seccomp (glibc has no wrapper: libseccomp
 * calls it so): the call is made here, not through glibc's. */
FSK_EXPORT long syscall(long nr, ...)
{
	va_list ap;
	va_start(ap, nr);
	long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
	long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
	va_end(ap);
	if (nr == SYS_seccomp && (a1 == SECCOMP_SET_MODE_STRICT || a1 == SECCOMP_SET_MODE_FILTER))
		seccomp_stop();
	long r;
	register long r10 __asm__("r10") = a4, r8 __asm__("r8") = a5, r9 __asm__("r9") = a6;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "0"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

/* Only the options that change what a thread may do with its
 * credentials, and seccomp (above); the rest (PR_SET_NAME: the flusher
 * names itself) pass. */
FSK_EXPORT int prctl(int option, ...)
{
	va_list ap;
	va_start(ap, option);
	unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long);
	unsigned long a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
	va_end(ap);
	static void *_Atomic real_prctl;
	int (*fn)(int, unsigned long, unsigned long, unsigned long, unsigned long) =
		(int (*)(int, unsigned long, unsigned long, unsigned long, unsigned long))resolve_late(
			&real_prctl, "prctl");
	if (!fn) {
		errno = ENOSYS;
		return -1;
	}
	int paused = 0;
	if (option == PR_SET_SECCOMP)
		seccomp_stop();
	if (!t_guard && (option == PR_SET_KEEPCAPS || option == PR_SET_SECUREBITS ||
			 option == PR_CAPBSET_DROP || option == PR_CAP_AMBIENT))
		paused = init_flusher_pause();
	int r = fn(option, a2, a3, a4, a5);
	int e = errno;
	init_flusher_resume(paused);
	errno = e;
	return r;
}
