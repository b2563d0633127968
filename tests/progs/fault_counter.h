/* A software counter of user-mode page faults that the caller's children
 * inherit (perf_event_open, as perf_event_paranoid 2 allows), for
 * child_faults and fault_count. A fault the kernel takes to populate
 * pages (madvise MADV_POPULATE_*) is not one. on_exec: counting starts at
 * the next exec (enable_on_exec), else now. The fd, or -1 where the
 * counter is not allowed; read(2) gives the count of the caller and of
 * its children that ended. */
#ifndef FAULT_COUNTER_H
#define FAULT_COUNTER_H
#include <linux/perf_event.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline int fault_counter_open(int on_exec)
{
	struct perf_event_attr at;
	memset(&at, 0, sizeof(at));
	at.size = sizeof(at);
	at.type = PERF_TYPE_SOFTWARE;
	at.config = PERF_COUNT_SW_PAGE_FAULTS;
	at.exclude_kernel = 1;
	at.exclude_hv = 1;
	at.inherit = 1;
	at.disabled = 1;
	at.enable_on_exec = on_exec ? 1 : 0;
	int fd = (int)syscall(SYS_perf_event_open, &at, 0, -1, -1, 0);
	if (fd >= 0 && !on_exec)
		ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	return fd;
}
#endif
