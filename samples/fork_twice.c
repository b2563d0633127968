/*
 * fork_twice: fork() is called once and returns twice.
 *
 * The notes: fork() creates a second process from the first; both go on
 * from the same line of code, and the only thing that tells them apart is
 * the value fork() returns: 0 in the child, the child's pid in the parent
 * (-1 and no child if it failed). "if and else if both run."
 *
 * What forkscope shows: two processes, the child's ppid is the parent, a
 * FORK event on both sides with the same child pid, the child exiting with
 * code 0 and its parent reaping it (reaped_by = the parent).
 */
#include "sample.h"

int main(void)
{
	say("before fork(): one process, pid %d\n", (int)getpid());
	at("proc", "role=parent pid=%d ppid=%d", (int)getpid(), (int)getppid());

	pid_t ret = xfork();
	if (ret == 0) {
		/* The same code, but fork() gave this copy 0. */
		say("child:  fork() returned 0; I am pid %d and my parent is %d\n",
		    (int)getpid(), (int)getppid());
		at("proc", "role=child pid=%d ppid=%d", (int)getpid(), (int)getppid());
		at("fork", "side=child returned_pid=0");
		return 0;
	}

	/* Wait first so the child's lines always come before ours. */
	int status = xwait(ret);
	say("parent: fork() returned %d, the pid of my child\n", (int)ret);
	at("fork", "side=parent returned_pid=%d", (int)ret);
	explain_status(ret, status);
	at("expect", "pid=%d ppid=%d exit=exited code=0 reaped_by_pid=%d orphaned=0",
	   (int)ret, (int)getpid(), (int)getpid());
	return 0;
}
