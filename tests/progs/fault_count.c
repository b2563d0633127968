/* fault_count: runs a command and counts the page faults of its whole
 * tree with a software counter its processes inherit (perf_event_open,
 * user-mode faults only, as perf_event_paranoid 2 allows). A fault the
 * kernel takes to populate pages (madvise MADV_POPULATE_*) is not one,
 * where getrusage's ru_minflt counts each page populated as a fault.
 * Prints "@ fault_count faults=F rc=R" on stderr, faults=-1 where the
 * counter is not allowed; exits 0 when the command did.
 * Usage: fault_count CMD [ARG...] */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_counter.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: fault_count CMD [ARG...]\n");
		return 2;
	}
	int fd = fault_counter_open(1); /* from the command's exec on: not ours */
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		perror(argv[1]);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return 1;
	long long faults = -1;
	if (fd >= 0 && read(fd, &faults, sizeof(faults)) != (ssize_t)sizeof(faults))
		faults = -1;
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	fprintf(stderr, "@ fault_count faults=%lld rc=%d\n", faults, rc);
	return rc;
}
