/*
 * exit_vs_exit: exit() flushes stdio buffers, _exit() does not.
 *
 * The notes: exit() is a library function; before it asks the kernel to end
 * the process it runs atexit handlers and flushes every stdio stream. _exit()
 * is the system call itself: the process ends at once and whatever printf
 * left in the user-space buffer is lost. printf without a newline leaves its
 * text in that buffer (with a newline too, when stdout is a pipe or file).
 *
 * Two children each printf a sentence without a newline. The first ends
 * with exit(0) and its sentence appears; the second ends with _exit(0) and
 * its sentence never appears. Both exit with code 0.
 *
 * What forkscope shows: two children, both "exited 0", one by exit() and
 * one by _exit() (the EXIT record's "how"), both reaped by the parent.
 * This sample uses printf on purpose; it flushes before each fork() so the
 * children do not inherit (and print again) the parent's buffered text.
 */
#include "sample.h"

static pid_t child_prints(int use_exit)
{
	pid_t pid = xfork(); /* flushes stdout first */
	if (pid == 0) {
		if (use_exit) {
			printf("child %d: this sentence was printed by printf and flushed by exit()", (int)getpid());
			exit(0);
		}
		printf("child %d: this sentence is lost: _exit() does not flush", (int)getpid());
		_exit(0);
	}
	return pid;
}

int main(void)
{
	printf("parent %d: two children, each printf()s without a newline\n", (int)getpid());
	fflush(stdout); /* at() below writes directly: keep the order */
	at("proc", "role=parent pid=%d ppid=%d", (int)getpid(), (int)getppid());

	pid_t a = child_prints(1);
	int status = xwait(a);
	printf("\n"); /* ends the line the first child left open */
	printf("parent: child %d used exit(); its sentence is above\n", (int)a);
	fflush(stdout);
	explain_status(a, status);
	at("child", "pid=%d how=exit printed=1", (int)a);
	at("expect", "pid=%d ppid=%d exit=exited code=0 reaped_by_pid=%d orphaned=0", (int)a, (int)getpid(), (int)getpid());

	pid_t b = child_prints(0);
	status = xwait(b);
	printf("parent: child %d used _exit(); its sentence never reached the pipe\n", (int)b);
	fflush(stdout);
	explain_status(b, status);
	at("child", "pid=%d how=_exit printed=0", (int)b);
	at("expect", "pid=%d ppid=%d exit=exited code=0 reaped_by_pid=%d orphaned=0", (int)b, (int)getpid(), (int)getpid());
	return 0;
}
