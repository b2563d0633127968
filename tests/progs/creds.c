/*
 * creds: a program that changes its credentials or namespaces once it is
 * old enough to have forkscope's flusher thread (tests/t_creds.py).
 *
 * Usage: creds unshare|setpriv
 * Allocates, sleeps 60 ms and allocates again (a traced image then has its
 * flusher: an image goes without one for its first 50 ms), prints "@ threads before=N" (N from /proc/self/status), then
 *   unshare: unshares a user namespace, which needs a process of one
 *            thread;
 *   setpriv: where it runs as root, does what `setpriv --reuid --regid`
 *            does: keeps its capabilities across the uid change
 *            (PR_SET_KEEPCAPS), setresuid to 65534, raises CAP_SETGID
 *            again (capset) and setresgids to 65534; glibc makes every
 *            thread take both changes and aborts when their results
 *            differ.
 * Prints "@ creds what=W result=R uid=U gid=G" (R: 0, an errno name, or
 * "not-root") and exits 0.
 */
#include <errno.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

int capget(cap_user_header_t hdr, cap_user_data_t data);
int capset(cap_user_header_t hdr, const cap_user_data_t data);

static const char *res(int r)
{
	return r == 0 ? "0" : strerrorname_np(errno);
}

static int threads(void)
{
	char line[256];
	int n = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	void *keep[64];
	for (int i = 0; i < 64; i++)
		keep[i] = malloc(32 + (size_t)i);
	struct timespec ms = { 0, 60 * 1000 * 1000 };
	nanosleep(&ms, NULL);
	for (int i = 0; i < 64; i++) {
		free(keep[i]);
		keep[i] = malloc(64);
	}
	printf("@ threads before=%d\n", threads());
	fflush(stdout);
	const char *r = "?";
	if (!strcmp(what, "unshare")) {
		r = res(unshare(CLONE_NEWUSER));
	} else if (!strcmp(what, "setpriv")) {
		if (geteuid() != 0) {
			r = "not-root";
		} else {
			prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
			r = res(setresuid(65534, 65534, 65534));
			/* the uid change cleared the effective set: CAP_SETGID again */
			struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
			struct __user_cap_data_struct d[2];
			if (capget(&h, d) == 0) {
				d[0].effective |= 1u << CAP_SETGID;
				capset(&h, d);
			}
			if (!strcmp(r, "0"))
				r = res(setresgid(65534, 65534, 65534));
		}
	} else {
		return 2;
	}
	for (int i = 0; i < 64; i++)
		free(keep[i]);
	printf("@ creds what=%s result=%s uid=%d gid=%d\n", what, r, (int)getuid(), (int)getgid());
	return 0;
}
