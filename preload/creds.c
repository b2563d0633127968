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
#include <sys/prctl.h>

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

/* Only the options that change what a thread may do with its
 * credentials; the rest (PR_SET_NAME: the flusher names itself) pass. */
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
	if (!t_guard && (option == PR_SET_KEEPCAPS || option == PR_SET_SECUREBITS ||
			 option == PR_CAPBSET_DROP || option == PR_CAP_AMBIENT))
		paused = init_flusher_pause();
	int r = fn(option, a2, a3, a4, a5);
	int e = errno;
	init_flusher_resume(paused);
	errno = e;
	return r;
}
