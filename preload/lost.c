/*
 * lost: says once per trace, on stderr, that events are being lost, what
 * and from when. A process says it at most once (s_said, inherited by fork
 * children); across the processes of a trace the marker of
 * forkscope/lost.h decides. Without /dev/shm every process that loses
 * events says it once (better too often than silent).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "forkscope/lost.h"
#include "fsk.h"

static _Atomic int s_said;

/* "HH:MM:SS.mmm" of now, UTC, into buf[13]. */
static void lost_clock(char *buf)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t s = (uint64_t)ts.tv_sec % 86400, ms = (uint64_t)ts.tv_nsec / 1000000;
	uint64_t v[4] = { s / 3600, s / 60 % 60, s % 60, ms };
	char *p = buf;
	for (int i = 0; i < 4; i++) {
		if (i == 3)
			*p++ = (char)('0' + v[i] / 100);
		*p++ = (char)('0' + v[i] / 10 % 10);
		*p++ = (char)('0' + v[i] % 10);
		*p++ = i < 2 ? ':' : i == 2 ? '.' : 0;
	}
}

void lost_say(const char *what, const char *path, int err)
{
	if (atomic_exchange(&s_said, 1))
		return;
	int saved = errno;
	const char *dir = G.dir[0] ? G.dir : path;
	char marker[128];
	fsk_lost_marker(marker, sizeof(marker), (uint32_t)getuid(), dir);
	int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		errno = saved;
		return;
	}
	if (fd >= 0)
		close(fd);
	char num[24], pid[24], when[16];
	sys_utoa(num, (uint64_t)(err < 0 ? -err : err), num + sizeof(num));
	sys_utoa(pid, (uint64_t)getpid(), pid + sizeof(pid));
	lost_clock(when);
	sys_say(what, " ", path, " (errno ", num, "): the trace misses events from ", when,
		" UTC on, first in pid ", pid, "; the programs run on untraced there (said once)",
		(char *)NULL);
	errno = saved;
}
