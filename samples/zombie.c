/*
 * zombie: a child that has exited but has not been waited for.
 *
 * The notes: when a process ends, the kernel frees its memory but keeps
 * its exit status (and its pid) until the parent collects it with wait().
 * In between the process is a zombie: state Z in /proc and ps. "If the
 * parent never waits" the zombies pile up and pids run out; waiting is how
 * a parent both learns the result and lets the kernel free the entry.
 *
 * The child exits at once. The parent watches /proc until the child is a
 * zombie, sleeps 300 ms while it stays one, then reaps it with waitpid().
 *
 * What forkscope shows: the child's end, then about 300 ms later its
 * parent's WAIT: zombie time (zombie_ns) of at least 300 ms, reaped_by =
 * the parent, exit code 0.
 */
#include "sample.h"

#define ZOMBIE_MS 300

int main(void)
{
	say("parent %d: forking a child that exits at once\n", (int)getpid());
	at("proc", "role=parent pid=%d ppid=%d", (int)getpid(), (int)getppid());

	pid_t child = xfork();
	if (child == 0) {
		at("proc", "role=child pid=%d ppid=%d", (int)getpid(), (int)getppid());
		exit(0);
	}

	/* Until the child is dead but unreaped (no wait call: that would reap). */
	for (int i = 0; i < 5000 && proc_state(child) != 'Z'; i++)
		sleep_ms(1);
	char before = proc_state(child);
	say("parent: child %d has exited; its state is now %c (zombie). Not waiting for %d ms.\n",
	    (int)child, before, ZOMBIE_MS);
	sleep_ms(ZOMBIE_MS);
	char during = proc_state(child);
	say("parent: after %d ms it is still %c; now waitpid() collects it\n", ZOMBIE_MS, during);
	int status = xwait(child);
	char after = proc_state(child);
	say("parent: after waitpid() /proc/%d is %s\n", (int)child, after == '?' ? "gone" : "still there");
	explain_status(child, status);
	at("zombie", "pid=%d state_before=%c state_after_sleep=%c gone_after_wait=%d",
	   (int)child, before, during, after == '?');
	at("expect", "pid=%d ppid=%d exit=exited code=0 reaped_by_pid=%d orphaned=0 zombie_min_ms=%d",
	   (int)child, (int)getpid(), (int)getpid(), ZOMBIE_MS);
	return 0;
}
