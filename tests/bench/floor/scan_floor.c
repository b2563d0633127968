/*
 * scan_floor: the least an in-process tracer that scans every image of a
 * process tree must add to it (make bench's floor of the rows other than
 * the malloc ones, and of the per-image start cost). Preloaded as forkscope is,
 * it records nothing; it only does, the plainest way, what forkscope's
 * scans need from the kernel and writes a file per image:
 *  - an exec'd image (constructor): reads /proc/self/maps, asks pagemap
 *    for the present pages (one PAGEMAP_SCAN over the whole address
 *    space), creates its file in FLOOR_DIR and writes a 256-byte header
 *    and the scan: a 64-byte record ("SCAN", the region count) and one
 *    of 64 bytes per region;
 *  - fork: the parent scans before it, and also reads the pagemap entries
 *    of its present private writable pages (whether each is exclusive:
 *    the COW baseline), with kept fds; the child opens a page-fault
 *    sampler (perf_event_open and a 9-page ring, as forkscope's default
 *    precise COW attribution does; the parent holds one from its first
 *    fork on), creates its file and writes the parent's records there;
 *    the parent writes them to its own;
 *  - execve, exit and _exit: the same scan with the entries (what COW
 *    broke), written to the image's file.
 * A vfork child (posix_spawn's too) is left alone until it execs, as
 * forkscope leaves it.
 * No allocation, wait, signal or thread tracking, no stacks, no parsing
 * beyond each region's bounds and permissions, no diffing: a real tracer
 * does more. On a kernel without PAGEMAP_SCAN (before 6.7) the present
 * pages come from reading every region's entries.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sampler.h"

/* linux/fs.h of 6.7 on: Debian 12's headers predate it */
struct floor_region {
	uint64_t start, end, categories;
};
struct floor_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define FLOOR_PAGEMAP_SCAN _IOWR('f', 16, struct floor_scan_arg)
#define FLOOR_PAGE_IS_PRESENT (1ull << 3)

#define MAX_REGIONS 1024
#define REC 64

static struct {
	uint64_t start, end;
	int cow; /* private and writable: its pages can be shared after fork */
} s_reg[MAX_REGIONS];
static int s_nreg;
static char s_io[256 * 1024];
static char s_out[REC + REC * MAX_REGIONS];
static size_t s_out_len;
static uint64_t s_ent[4096];
static struct floor_region s_vec[256];
static int s_mfd = -1, s_pfd = -1, s_file = -1, s_sampler, s_seq;
static pid_t s_pid; /* the process the state is of: not a vfork child */
static char s_dir[512];
static pid_t (*s_fork)(void);
static int (*s_execve)(const char *, char *const[], char *const[]);
static void (*s_exit)(int);

static uint64_t hex(const char **p)
{
	uint64_t v = 0;
	for (;; (*p)++) {
		char c = **p;
		if (c >= '0' && c <= '9')
			v = v * 16 + (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (uint64_t)(c - 'a' + 10);
		else
			return v;
	}
}

static void read_maps(void)
{
	size_t have = 0;
	ssize_t r;
	while (have < sizeof(s_io) - 1 && (r = pread(s_mfd, s_io + have, sizeof(s_io) - 1 - have, (off_t)have)) > 0)
		have += (size_t)r;
	s_io[have] = 0;
	s_nreg = 0;
	for (const char *p = s_io; *p && s_nreg < MAX_REGIONS;) {
		uint64_t start = hex(&p);
		p++;
		uint64_t end = hex(&p);
		p++; /* "rwxp" */
		s_reg[s_nreg].start = start;
		s_reg[s_nreg].end = end;
		s_reg[s_nreg].cow = p[1] == 'w' && p[3] == 'p';
		s_nreg++;
		const char *nl = strchr(p, '\n');
		if (!nl)
			break;
		p = nl + 1;
	}
}

static void read_entries(uint64_t start, uint64_t end)
{
	for (uint64_t a = start; a < end;) {
		uint64_t n = (end - a) / 4096;
		if (n > 4096)
			n = 4096;
		if (pread(s_pfd, s_ent, n * 8, (off_t)(a / 4096 * 8)) <= 0)
			return;
		a += n * 4096;
	}
}

/* The entries of the present pages of the private writable regions, from
 * runs[0..n): one read per region, from its first present page to its
 * last. */
static void cow_entries(const struct floor_region *runs, long n)
{
	for (int i = 0; i < s_nreg; i++) {
		if (!s_reg[i].cow)
			continue;
		uint64_t lo = UINT64_MAX, hi = 0;
		for (long k = 0; k < n; k++) {
			if (runs[k].end <= s_reg[i].start || runs[k].start >= s_reg[i].end)
				continue;
			uint64_t a = runs[k].start > s_reg[i].start ? runs[k].start : s_reg[i].start;
			uint64_t b = runs[k].end < s_reg[i].end ? runs[k].end : s_reg[i].end;
			lo = a < lo ? a : lo;
			hi = b > hi ? b : hi;
		}
		if (lo < hi)
			read_entries(lo, hi);
	}
}

static void scan(int entries)
{
	if (s_mfd < 0)
		s_mfd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (s_pfd < 0)
		s_pfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (s_mfd < 0 || s_pfd < 0)
		return;
	read_maps();
	struct floor_scan_arg a = { .size = sizeof(a), .start = 0, .end = 0x7ffffffff000ull,
				    .vec = (uint64_t)(uintptr_t)s_vec, .vec_len = 256,
				    .category_anyof_mask = FLOOR_PAGE_IS_PRESENT,
				    .return_mask = FLOOR_PAGE_IS_PRESENT };
	for (;;) {
		long n = ioctl(s_pfd, FLOOR_PAGEMAP_SCAN, &a);
		if (n < 0) { /* no PAGEMAP_SCAN: every region's entries */
			for (int i = 0; i < s_nreg; i++)
				read_entries(s_reg[i].start, s_reg[i].end);
			break;
		}
		if (entries)
			cow_entries(s_vec, n);
		if (n < 256 || !a.walk_end || a.walk_end >= a.end)
			break;
		a.start = a.walk_end;
	}
	/* a record that starts the scan, then one per region */
	memset(s_out, 0, REC);
	memcpy(s_out, "SCAN", 4);
	memcpy(s_out + 4, &s_nreg, sizeof(s_nreg));
	s_out_len = REC + (size_t)s_nreg * REC;
	memset(s_out + REC, 1, (size_t)s_nreg * REC);
}

static void put_num(char **p, unsigned long v)
{
	char tmp[24];
	int n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while (v /= 10);
	while (n)
		*(*p)++ = tmp[--n];
}

static void file_open(void)
{
	char path[sizeof(s_dir) + 64], *p = path;
	size_t dl = strlen(s_dir);
	memcpy(p, s_dir, dl);
	p += dl;
	*p++ = '/';
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t); /* an exec keeps the pid */
	put_num(&p, (unsigned long)getpid());
	*p++ = '.';
	put_num(&p, (unsigned long)t.tv_sec * 1000000000ul + (unsigned long)t.tv_nsec);
	*p++ = '.';
	put_num(&p, (unsigned long)s_seq++);
	memcpy(p, ".flo", 5);
	s_file = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	char header[256] = "FLOOR";
	if (s_file >= 0 && write(s_file, header, sizeof(header)) < 0) {
		close(s_file);
		s_file = -1;
	}
}

static void file_put(void)
{
	if (s_file >= 0 && s_out_len && write(s_file, s_out, s_out_len) < 0)
		s_file = -1;
}

__attribute__((constructor)) static void floor_init(void)
{
	s_fork = (pid_t(*)(void))dlsym(RTLD_NEXT, "fork");
	s_execve = (int (*)(const char *, char *const[], char *const[]))dlsym(RTLD_NEXT, "execve");
	s_exit = (void (*)(int))dlsym(RTLD_NEXT, "_exit");
	const char *d = getenv("FLOOR_DIR");
	if (!d || strlen(d) >= sizeof(s_dir))
		return;
	strcpy(s_dir, d);
	s_pid = getpid();
	int e = errno;
	scan(0);
	file_open();
	file_put();
	errno = e;
}

/* Whether this process may scan: not a vfork child (posix_spawn's or a
 * program's), which runs in its parent's memory until it execs, where
 * forkscope does nothing either. */
static int ours(void)
{
	return s_file >= 0 && getpid() == s_pid;
}

__attribute__((destructor)) static void floor_fini(void)
{
	if (!ours())
		return;
	int e = errno;
	scan(1);
	file_put();
	errno = e;
}

pid_t fork(void)
{
	if (!ours())
		return s_fork();
	int e = errno;
	if (!s_sampler) {
		floor_sampler(64);
		s_sampler = 1;
	}
	scan(1);
	errno = e;
	pid_t pid = s_fork();
	e = errno;
	if (pid == 0) {
		s_pid = getpid();
		close(s_mfd); /* they name the parent's mm */
		close(s_pfd);
		s_mfd = s_pfd = -1;
		close(s_file);
		s_seq = 0;
		floor_sampler(8);
		file_open();
	}
	file_put();
	errno = e;
	return pid;
}

int execve(const char *path, char *const argv[], char *const envp[])
{
	if (ours()) {
		int e = errno;
		scan(1);
		file_put();
		errno = e;
	}
	return s_execve(path, argv, envp);
}

void _exit(int status)
{
	if (ours()) {
		scan(1);
		file_put();
	}
	s_exit(status);
	for (;;)
		syscall(SYS_exit_group, status);
}
