/* deny_call: runs a command under a seccomp filter that fails one system
 * call with EPERM, as a container's default profile does for calls it
 * does not list, so that a test sees what the traced tree does without
 * that call. The filter is inherited by the command and everything it
 * runs (forkscope's runner and the traced program alike); NO_NEW_PRIVS
 * lets an unprivileged user install it.
 * Usage: deny_call process_madvise CMD [ARG...]
 * deny_call probe: installs nothing, prints "@ deny_call process_madvise=1"
 * when the kernel takes process_madvise(PIDFD_SELF, MADV_POPULATE_READ)
 * on the calling process (Linux 6.14), else =0.
 * tests/t_populate_calls.py */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#define PIDFD_SELF_THREAD_ (-10000) /* linux/pidfd.h, Linux 6.14 */
#define MADV_POPULATE_READ_ 22      /* Linux 5.14 */

static char page[4096] __attribute__((aligned(4096)));

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "probe") == 0) {
		struct iovec v = { page, sizeof(page) };
		long r = syscall(SYS_process_madvise, PIDFD_SELF_THREAD_, &v, 1, MADV_POPULATE_READ_, 0);
		printf("@ deny_call process_madvise=%d\n", r == (long)sizeof(page));
		return 0;
	}
	if (argc < 3 || strcmp(argv[1], "process_madvise") != 0) {
		fprintf(stderr, "usage: deny_call process_madvise CMD [ARG...]\n");
		return 2;
	}
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_madvise, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
		fprintf(stderr, "deny_call: seccomp: %s\n", strerror(errno));
		return 2;
	}
	execvp(argv[2], argv + 2);
	fprintf(stderr, "deny_call: %s: %s\n", argv[2], strerror(errno));
	return 127;
}
