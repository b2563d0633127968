/*
 * young_child: fork children while they are young (preload/init.c,
 * CHILD_YOUNG_NS and CHILD_YOUNG_RECS): no flusher thread yet, each record
 * written as it comes.
 *
 * Usage: young_child
 * The parent allocates (it has a flusher from then on), then forks:
 *  A: allocates 5 blocks of 1001..1005 bytes at once, prints
 *     "@ young who=A pid=P tasks=N age_us=T" (N: its threads, from
 *     /proc/self/task; T: microseconds since just before the fork, when it
 *     counted them)
 *     and blocks reading stdin (the parent's): the test looks at the trace
 *     meanwhile, then writes a line. A, long past young now, allocates a
 *     block of 1006 bytes, prints "@ young who=A2 tasks=N" and _exits.
 *  B: allocates and frees 300 blocks at once (more records than a young
 *     child writes through), prints "@ young who=B tasks=N", _exits.
 *  C: allocates 3 blocks, prints "@ young who=C tasks=N" and execs
 *     /bin/true.
 * The parent waits for each in turn and prints "@ done".
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct timespec t_fork; /* taken right before each fork */

static long since_fork_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t_fork.tv_sec) * 1000000L + (t.tv_nsec - t_fork.tv_nsec) / 1000;
}

static int tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The block stays allocated: live at exit, so the report shows it. */
static __attribute__((noinline)) void *keep(size_t n)
{
	char *p = malloc(n);
	if (!p)
		abort();
	p[0] = 1;
	return p;
}

static void say(const char *who)
{
	/* counted before printing: stdio's buffer is a malloc too */
	long age = since_fork_us();
	int n = tasks();
	char line[128];
	int len = snprintf(line, sizeof(line), "@ young who=%s pid=%d tasks=%d age_us=%ld\n", who,
			   (int)getpid(), n, age);
	if (write(1, line, (size_t)len) != len)
		_exit(3);
}

static __attribute__((noreturn)) void child(int who)
{
	if (who == 0) {
		for (size_t s = 1001; s <= 1005; s++)
			keep(s);
		say("A");
		char buf[16];
		if (read(0, buf, sizeof(buf)) <= 0)
			_exit(2);
		keep(1006);
		say("A2");
	} else if (who == 1) {
		for (int i = 0; i < 300; i++)
			free(keep(2000 + (size_t)i));
		say("B");
	} else {
		for (size_t s = 3001; s <= 3003; s++)
			keep(s);
		say("C");
		execl("/bin/true", "true", (char *)NULL);
		_exit(4);
	}
	_exit(0);
}

int main(void)
{
	for (int i = 0; i < 50; i++)
		free(keep(100 + (size_t)i));

	for (int who = 0; who < 3; who++) {
		clock_gettime(CLOCK_MONOTONIC, &t_fork);
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0)
			child(who);
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
			return 1;
	}
	if (write(1, "@ done\n", 7) != 7)
		return 1;
	return 0;
}
