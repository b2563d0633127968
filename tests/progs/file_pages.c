/* Resident pages of private file mappings, counted by the program itself
 * from /proc/self/pagemap next to the scans forkscope makes.
 * Usage: file_pages FILE [nofork] (FILE: at least 4 MiB, read here, never
 * written). It maps FILE three times, private read-only and writable and
 * shared read-only, and private and shared anonymous memory and /dev/zero
 * (private, read-only); it reads a quarter of each (the writable one's
 * first page it writes too: a COW copy; the anonymous memory it writes),
 * and reads a small anonymous mapping (map=zw: the zero page), forks;
 * the child touches another quarter of each, writes all of zw, and ends
 * with _exit,
 * the parent waits and exits. Each side, right before its end, prints for
 * each mapping
 *   @ file_pages pid=P map=ro|rw|anon|sh|shanon|zero start=0x.. resident=N since_fork=M shared=S
 * N: its present pages then; M: those not present at the fork (the
 * child's fork scan is its parent's, taken just before it); S: those
 * still shared with the other side (anonymous, not exclusive); for the
 * /dev/zero mapping, whose pages are all the zero page, smaps's Rss and 0
 * (where the kernel maps no zero page, zero_page=0 on each line, every
 * mapping is counted from pagemap as the others are).
 * With "nofork" it prints right after the first quarter and exits: M is
 * then N (none of the mappings was there at its start), and it also reads
 * a small anonymous mapping (map=small: the zero page, by smaps's Rss),
 * and the two parts of a written anonymous mapping whose top third it
 * made read-only (map=split_rw, split_ro: one run of present pages).
 * With "rawfork" it
 * forks by a raw system call instead (raw_fork) and prints
 *   @ file_pages pid=P map=anon start=0x.. shared_with_raw_child=N
 * forkscope's exit scan must count the same (tests/t_file_pages.py). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGES 1024

static long ps;
/* Whether the kernel maps the shared zero page for a read of private
 * anonymous memory (a kernel may not: a VM booted with pvm_no_zero_page
 * gives each such read a page of its own, which then counts as any
 * page). Printed on every line as zero_page=0|1. */
static int zero_page = 1;

/* m's pagemap entries. Opened each time: an fd opened before the fork
 * reads the parent's. */
static void entries(const char *m, uint64_t *e)
{
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0 || pread(pm, e, PAGES * 8, (off_t)((uintptr_t)m / (uintptr_t)ps * 8)) != PAGES * 8) {
		perror("pagemap");
		exit(2);
	}
	close(pm);
}

static int is_present(uint64_t e)
{
	return (int)(e >> 63);
}

/* present, anonymous (not a file's: bit 61) and not exclusive (bit 56) */
static int is_shared(uint64_t e)
{
	return is_present(e) && !(e >> 61 & 1) && !(e >> 56 & 1);
}

static void present(const char *m, unsigned char *out)
{
	uint64_t e[PAGES];
	entries(m, e);
	for (int i = 0; i < PAGES; i++)
		out[i] = (unsigned char)is_present(e[i]);
}

static void touch(const char *m, int from, int to)
{
	volatile char sum = 0;
	for (int i = from; i < to; i += 3)
		sum += m[(long)i * ps];
	(void)sum;
}

static void report_n(const char *name, const char *m, const unsigned char *at_fork, int n)
{
	uint64_t e[PAGES];
	int res = 0, since = 0, shared = 0;
	entries(m, e);
	for (int i = 0; i < n; i++) {
		res += is_present(e[i]);
		since += is_present(e[i]) && !at_fork[i];
		shared += is_shared(e[i]);
	}
	printf("@ file_pages pid=%d map=%s start=%p resident=%d since_fork=%d shared=%d zero_page=%d\n",
	       (int)getpid(), name, (void *)m, res, since, shared, zero_page);
}

static void report(const char *name, const char *m, const unsigned char *at_fork)
{
	report_n(name, m, at_fork, PAGES);
}

/* The Rss of the mapping at m in /proc/self/smaps, in KiB; -1 if none. */
static long smaps_rss(const char *m)
{
	char line[512], head[64];
	long rss = -1;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");
	snprintf(head, sizeof(head), "%lx-", (unsigned long)(uintptr_t)m);
	while (f && fgets(line, sizeof(line), f)) {
		/* a mapping's line starts with its address (lower-case hex), a
		 * field's with its name ("Rss:") */
		if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f'))
			in = !strncmp(line, head, strlen(head));
		if (in && !strncmp(line, "Rss:", 4)) {
			rss = strtol(line + 4, NULL, 10);
			break;
		}
	}
	if (f)
		fclose(f);
	return rss;
}

/* A mapping only read (or, zw, read before the fork) whose pages are the
 * zero page, which is in no count: resident by /proc/self/smaps's Rss,
 * which leaves it out. Where the kernel maps no zero page its n pages are
 * counted as any others. */
static void report_zero(const char *name, const char *m, const unsigned char *at_fork, int n)
{
	if (!zero_page) {
		report_n(name, m, at_fork, n);
		return;
	}
	long rss = smaps_rss(m);
	printf("@ file_pages pid=%d map=%s start=%p resident=%ld since_fork=0 shared=0 zero_page=%d\n",
	       (int)getpid(), name, (void *)m, rss < 0 ? -1 : rss * 1024 / ps, zero_page);
}

/* A page of private anonymous memory, read: resident in smaps only when
 * the kernel gave it a page of its own. */
static int kernel_zero_page(void)
{
	char *p = mmap(NULL, (size_t)ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	volatile char c = p[0];
	(void)c;
	long rss = smaps_rss(p);
	munmap(p, (size_t)ps);
	return rss == 0;
}

enum { RO, RW, ANON, SH, SHANON, ZERO, NMAPS };
static const char *const names[NMAPS] = { "ro", "rw", "anon", "sh", "shanon", "zero" };

/* Reads every third page of [from, to) of each mapping, or writes every
 * page of it, of anonymous memory. */
static void touch_all(char *const *m, int from, int to)
{
	for (int k = 0; k < NMAPS; k++)
		if (k == ANON || k == SHANON)
			for (int i = from; i < to; i++)
				m[k][(long)i * ps] = 1;
		else
			touch(m[k], from, to);
}

static void report_all(char *const *m, unsigned char (*at_fork)[PAGES])
{
	for (int k = 0; k < NMAPS; k++)
		if (k == ZERO)
			report_zero(names[k], m[k], at_fork[k], PAGES);
		else
			report(names[k], m[k], at_fork[k]);
	fflush(stdout);
}

/* A fork our hook does not see (a raw system call, as daemon() makes
 * one inside glibc): the child keeps the anonymous pages shared for a
 * second; meanwhile the parent, past forkscope's youth, maps a region
 * (which its flusher's next tick scans for) and counts the pages it
 * shares, as pagemap says. */
static void *volatile sink; /* or the compiler drops a malloc freed at once */

static int raw_fork(char *anon)
{
	/* past the image's first 50 ms, which it spends without a flusher */
	struct timespec young = { 0, 60 * 1000 * 1000 }, tick = { 0, 600 * 1000 * 1000 };
	nanosleep(&young, NULL);
	sink = malloc(100); /* the flusher starts */
	free(sink);
	fflush(stdout);
	long pid = syscall(SYS_fork);
	if (pid < 0)
		return 2;
	if (pid == 0) {
		struct timespec life = { 1, 0 };
		nanosleep(&life, NULL);
		syscall(SYS_exit_group, 0);
	}
	char *more = mmap(NULL, 16 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (more == MAP_FAILED)
		return 2;
	more[0] = 1;
	nanosleep(&tick, NULL);
	uint64_t e[PAGES];
	int shared = 0;
	entries(anon, e);
	for (int i = 0; i < PAGES; i++)
		shared += is_shared(e[i]);
	int st;
	waitpid((pid_t)pid, &st, 0);
	printf("@ file_pages pid=%d map=anon start=%p shared_with_raw_child=%d\n", (int)getpid(), (void *)anon,
	       shared);
	return 0;
}

int main(int argc, char **argv)
{
	ps = sysconf(_SC_PAGESIZE);
	zero_page = kernel_zero_page();
	int fd = argc > 1 ? open(argv[1], O_RDONLY) : -1;
	int zfd = open("/dev/zero", O_RDONLY);
	int nofork = argc > 2 && !strcmp(argv[2], "nofork");
	int rawfork = argc > 2 && !strcmp(argv[2], "rawfork");
	if (fd < 0 || zfd < 0) {
		perror("open");
		return 2;
	}
	size_t len = PAGES * (size_t)ps;
	char *m[NMAPS] = {
		[RO] = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0),
		[RW] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0),
		[ANON] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
		[SH] = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0),
		[SHANON] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0),
		[ZERO] = mmap(NULL, len, PROT_READ, MAP_PRIVATE, zfd, 0),
	};
	for (int k = 0; k < NMAPS; k++)
		if (m[k] == MAP_FAILED) {
			perror("mmap");
			return 2;
		}
	static unsigned char at_fork[NMAPS][PAGES]; /* none was there at the start */
	touch_all(m, 0, PAGES / 4);
	m[RW][0] = 1; /* its first page becomes anonymous */
	if (nofork) {
		/* and a small anonymous mapping only read: the zero page */
		char *small = mmap(NULL, 32 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (small == MAP_FAILED)
			return 2;
		touch(small, 0, 32);
		/* and two neighbouring regions whose present pages are one run
		 * (the kernel's runs go across regions): 48 written pages, the
		 * top 16 made read-only */
		char *split = mmap(NULL, 48 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (split == MAP_FAILED)
			return 2;
		memset(split, 1, 48 * (size_t)ps);
		if (mprotect(split + 32 * ps, 16 * (size_t)ps, PROT_READ) < 0)
			return 2;
		report_all(m, at_fork);
		report_zero("small", small, at_fork[0], 32);
		report_n("split_rw", split, at_fork[0], 32);
		report_n("split_ro", split + 32 * ps, at_fork[0], 16);
		return 0;
	}
	if (rawfork)
		return raw_fork(m[ANON]);
	for (int k = 0; k < NMAPS; k++)
		present(m[k], at_fork[k]);
	/* and a small anonymous mapping only read before the fork: the zero
	 * page, which the child then writes (map=zw: first touches, no
	 * copy-on-write; the parent's is resident in no count) */
	char *zw = mmap(NULL, 32 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (zw == MAP_FAILED)
		return 2;
	volatile char sum = 0;
	for (int i = 0; i < 32; i++)
		sum += zw[(long)i * ps];
	static const unsigned char none[PAGES];
	static unsigned char zw_at[PAGES]; /* pages of its own without the zero page */
	present(zw, zw_at);
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return 2;
	if (pid == 0) {
		touch_all(m, PAGES / 2, 3 * PAGES / 4);
		memset(zw, 1, 32 * (size_t)ps);
		report_all(m, at_fork);
		report_n("zw", zw, zero_page ? none : zw_at, 32);
		fflush(stdout);
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		return 1;
	report_all(m, at_fork);
	report_zero("zw", zw, zw_at, 32);
	return 0;
}
