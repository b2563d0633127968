/* child_faults: the page faults of N fork children (each returns from
 * fork, writes P pages of the heap its parent wrote, and _exits) and of
 * their parent, counted by a software counter
 * the children inherit (perf_event_open, user-mode faults only, as
 * perf_event_paranoid 2 allows). A fault the kernel takes to populate
 * pages (madvise MADV_POPULATE_*) is not one: it is what forkscope's
 * fork does in place of the faults each side would take at its first
 * write to our pages and at its first call into our code, libc's and the
 * vDSO's (preload/proc.c, fork_populate; preload/sys.c). Prints
 * "@ child_faults forks=N pages=P faults=F", or faults=-1 where the
 * counter is not allowed. Usage: child_faults [forks [pages]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_counter.h"

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 50;
	int pages = argc > 2 ? atoi(argv[2]) : 0;
	char *mem = pages > 0 ? malloc((size_t)pages * 4096) : NULL;
	if (pages > 0 && !mem)
		return 1;
	for (int p = 0; p < pages; p++)
		mem[p * 4096] = 1;
	int fd = fault_counter_open(0);
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			for (int p = 0; p < pages; p++)
				mem[p * 4096] = 2; /* a copy-on-write fault each */
			_exit(0);
		}
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
			return 1;
	}
	long long faults = -1;
	if (fd >= 0) {
		ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
		if (read(fd, &faults, sizeof(faults)) != (ssize_t)sizeof(faults))
			faults = -1;
	}
	printf("@ child_faults forks=%d pages=%d faults=%lld\n", n, pages, faults);
	free(mem);
	return 0;
}
