/*
 * young_child: processes while they are young (preload/init.c, YOUNG_NS,
 * YOUNG_FORK_RECS and YOUNG_IMAGE_RECS): no flusher thread yet, each
 * record written as it comes.
 *
 * Usage: young_child
 * The parent allocates (it has a flusher from then on), then forks:
 *  A: allocates 5 blocks of 1001..1005 bytes at once, prints
 *     "@ young who=A pid=P tasks=N age_us=T" (N: its threads, from
 *     /proc/self/task; T: microseconds since fork returned in the child,
 *     when it counted them)
 *     and blocks reading stdin (the parent's): the test looks at the trace
 *     meanwhile, then writes a line. A, long past young now, allocates a
 *     block of 1006 bytes, prints "@ young who=A2 tasks=N" and _exits.
 *  B: allocates and frees 300 blocks at once (more records than a young
 *     child writes through), prints "@ young who=B tasks=N", _exits.
 *  C: allocates 3 blocks, prints "@ young who=C tasks=N" and execs
 *     /bin/true.
 * Then it forks children that exec this program again ("young_child image
 * WHO"), whose new images are young as they start; their T counts from
 * the image's own constructor, which runs right after the preloaded
 * library's, where youth starts (the fork and the exec before it take
 * about 1.5 ms traced here, most of a youth):
 *  D: as A, with blocks of 1101..1106 bytes and lines D and D2 (a second
 *     line on stdin lets it go on; it allocates once 60 ms old, past an
 *     image's quiet time), then returns from main.
 *  E: as B, with 300 blocks of 2100.. bytes, line E (one thread still: an
 *     image has no flusher in its first 50 ms, IMAGE_QUIET_NS).
 *  F: allocates 3 blocks of 3101..3103 bytes, prints line F, returns.
 * The parent waits for each in turn and prints "@ done".
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct timespec t_fork; /* taken as fork returns in a child, or as an image starts */

/* A new image's start, for its T. */
__attribute__((constructor)) static void image_start(void)
{
	clock_gettime(CLOCK_MONOTONIC, &t_fork);
}

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

/* What a process does (kind 0: as A and D, 1: as B and E, 2: as C and
 * F), with blocks of base + 1.. bytes (B, E: base + 0..), printing line
 * `who`: 0, or the status to end with. */
static __attribute__((noinline)) int act(int kind, char who, size_t base)
{
	char name[3] = { who, 0, 0 };
	if (kind == 0) {
		for (size_t s = base + 1; s <= base + 5; s++)
			keep(s);
		say(name);
		char buf[16];
		if (read(0, buf, sizeof(buf)) <= 0)
			return 2;
		/* older than an image's quiet time (IMAGE_QUIET_NS, 50 ms),
		 * which the test's look at the trace may not have taken */
		long left = 60000 - since_fork_us();
		if (left > 0) {
			struct timespec ts = { 0, left * 1000 };
			nanosleep(&ts, NULL);
		}
		keep(base + 6);
		name[1] = '2';
		say(name);
	} else if (kind == 1) {
		for (int i = 0; i < 300; i++)
			free(keep(base + (size_t)i));
		say(name);
	} else {
		for (size_t s = base + 1; s <= base + 3; s++)
			keep(s);
		say(name);
	}
	return 0;
}

static __attribute__((noreturn)) void child(int who)
{
	int r = act(who, (char)('A' + who), 1000 * (size_t)(who + 1));
	if (who == 2 && !r) {
		execl("/bin/true", "true", (char *)NULL);
		r = 4;
	}
	_exit(r);
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "image") && argv[2][0] >= 'D' && argv[2][0] <= 'F') {
		int kind = argv[2][0] - 'D';
		return act(kind, argv[2][0], 1000 * (size_t)(kind + 1) + 100);
	}
	for (int i = 0; i < 50; i++)
		free(keep(100 + (size_t)i));

	for (int who = 0; who < 3; who++) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			/* the child's youth begins as our part of fork ends */
			clock_gettime(CLOCK_MONOTONIC, &t_fork);
			child(who);
		}
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
			return 1;
	}
	for (int who = 0; who < 3; who++) {
		char w[2] = { (char)('D' + who), 0 };
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			execl("/proc/self/exe", "young_child", "image", w, (char *)NULL);
			_exit(5);
		}
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
			return 1;
	}
	if (write(1, "@ done\n", 7) != 7)
		return 1;
	return 0;
}
