/*
 * orphan: the parent exits first; the child lives on with a new parent.
 *
 * The notes: every process has a parent that must wait() for it. When a
 * parent ends before its child, the child becomes an orphan and is adopted:
 * by init (pid 1), or by the nearest ancestor that declared itself a
 * "child subreaper" (prctl PR_SET_CHILD_SUBREAPER), which `forkscope run`
 * does, so that it can reap and record orphans. The adopter reaps the
 * orphan when it ends, so it never stays a zombie.
 *
 * What forkscope shows: the parent exits 0 (reaped by whoever started it),
 * the child is marked orphaned, its ppid changes from the parent to the
 * adopter (forkscope's runner), and the runner reaps it (reaped_by).
 */
#include "sample.h"

int main(void)
{
	int ready[2];
	if (pipe(ready) < 0)
		die("pipe");
	pid_t parent = getpid();
	say("parent %d: forking a child, then exiting without waiting for it\n", (int)parent);
	at("proc", "role=parent pid=%d ppid=%d", (int)parent, (int)getppid());

	pid_t child = xfork();
	if (child == 0) {
		char c = 'x';
		say("child %d: my parent is %d\n", (int)getpid(), (int)getppid());
		at("proc", "role=child pid=%d ppid=%d", (int)getpid(), (int)getppid());
		if (write(ready[1], &c, 1) != 1)
			die("pipe");
		/* Wait (at most 5 s) until the kernel gives us a new parent. */
		for (int i = 0; i < 5000 && getppid() == parent; i++)
			sleep_ms(1);
		sleep_ms(50);
		say("child %d: my parent %d is gone; my new parent is %d\n",
		    (int)getpid(), (int)parent, (int)getppid());
		at("orphan", "pid=%d old_ppid=%d new_ppid=%d", (int)getpid(), (int)parent, (int)getppid());
		return 0;
	}

	char c;
	if (read(ready[0], &c, 1) != 1) /* the child has printed its first line */
		die("pipe");
	at("expect", "pid=%d exit=exited code=0 orphaned=0", (int)parent);
	at("expect", "pid=%d ppid=%d exit=exited code=0 orphaned=1", (int)child, (int)parent);
	say("parent %d: exiting now, leaving child %d behind\n", (int)parent, (int)child);
	return 0;
}
