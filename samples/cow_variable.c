/*
 * cow_variable: one variable, one virtual address, two values.
 *
 * The notes (the bank account story): a global g_val = 1000 lives in the
 * data segment. After fork() parent and child map the same physical page
 * read-only. When the child writes 800, the CPU faults, the kernel copies
 * the page for the child (copy-on-write) and points the child's page table
 * at the copy. The child prints 800, the parent still prints 1000, and both
 * print the same virtual address: virtual addresses are per process; the
 * page tables map them to different physical pages.
 *
 * What forkscope shows: in the child, the data region holds a page that was
 * shared at fork and is now its own (unshared_pages >= 1, a COW fault at
 * the write below); in the parent the data page stays as it was.
 */
#include "sample.h"

int g_val = 1000; /* initialized, so it lives in .data, not .bss */

int main(void)
{
	int changed[2], done[2];
	if (pipe(changed) < 0 || pipe(done) < 0)
		die("pipe");
	say("parent: g_val = %d at %p\n", g_val, (void *)&g_val);
	at("proc", "role=parent pid=%d ppid=%d", (int)getpid(), (int)getppid());

	pid_t child = xfork();
	if (child == 0) {
		char c = 'x';
		say("child:  I see g_val = %d at %p\n", g_val, (void *)&g_val);
		g_val = 800; /* this write breaks copy-on-write for the page */
		say("child:  I set g_val = %d at %p\n", g_val, (void *)&g_val);
		at("proc", "role=child pid=%d ppid=%d", (int)getpid(), (int)getppid());
		at("var", "who=child pid=%d addr=%p value=%d", (int)getpid(), (void *)&g_val, g_val);
		/* Tell the parent, then stay alive until it has looked, so both
		 * copies of the page exist at the same time. */
		if (write(changed[1], &c, 1) != 1 || read(done[0], &c, 1) != 1)
			die("pipe");
		return 0;
	}

	char c;
	if (read(changed[0], &c, 1) != 1) /* the child has written by now */
		die("pipe");
	sleep_ms(100);
	say("parent: after the child's write I still see g_val = %d at %p\n", g_val, (void *)&g_val);
	at("var", "who=parent pid=%d addr=%p value=%d", (int)getpid(), (void *)&g_val, g_val);
	if (write(done[1], &c, 1) != 1)
		die("pipe");
	int status = xwait(child);
	explain_status(child, status);
	at("expect", "pid=%d ppid=%d exit=exited code=0 reaped_by_pid=%d orphaned=0",
	   (int)child, (int)getpid(), (int)getpid());
	return 0;
}
