/*
 * many_maps: more mappings than the first scan's buffers hold (its maps
 * entries, the scan output), so a later scan grows them. Maps N 8 KiB
 * anonymous mappings, alternately read-write (one page written) and
 * read-only (untouched), so no two neighbours merge; forks; the child
 * exits at once, the parent waits and exits.
 *
 * Usage: many_maps N
 * Prints "@ map addr=0x... resident=0|1" per mapping (the pages forkscope
 * must count resident in it at every later scan).
 */
#include "../../samples/sample.h"

#include <sys/mman.h>

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	for (int i = 0; i < n; i++) {
		int rw = i % 2 == 0;
		char *p = mmap(NULL, 8192, rw ? PROT_READ | PROT_WRITE : PROT_READ,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			die("mmap");
		if (rw)
			p[0] = 1;
		at("map", "addr=%p resident=%d", (void *)p, rw);
	}
	pid_t pid = xfork();
	if (pid == 0)
		_exit(0);
	int st = xwait(pid);
	at("wait", "pid=%d exited=%d code=%d", pid, WIFEXITED(st), WEXITSTATUS(st));
	return 0;
}
