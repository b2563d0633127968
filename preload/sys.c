/*
 * Thin system-call wrappers and a tiny formatter: what the hooks use
 * instead of stdio and string functions that might be interposed or
 * allocate. Every function here is async-signal-safe.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdarg.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fsk.h"

pid_t sys_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* fstat(2) itself. glibc's fstat is newfstatat(fd, "", AT_EMPTY_PATH),
 * whose kernel side first copies that empty path in from the caller's
 * memory (getname), and in a fork child faults in the page of libc that
 * holds it: half of the time of our fd checks (a bash loop's profile). */
int sys_fstat(int fd, struct stat *st)
{
#if defined(SYS_fstat) && (defined(__x86_64__) || defined(__aarch64__))
	/* where the kernel's struct stat is libc's */
	return (int)syscall(SYS_fstat, fd, st);
#else
	return fstat(fd, st);
#endif
}

/* Our own memory never comes from the traced heap: a private anonymous
 * mapping straight from the kernel, so no hook of ours sees it. */
void *sys_mmap(size_t len)
{
	long r = syscall(SYS_mmap, 0, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r < 0 && r > -4096)
		return NULL;
	return (void *)r;
}

void sys_munmap(void *p, size_t len)
{
	syscall(SYS_munmap, p, len);
}

/*
 * A page fork left shared costs the side that writes it first a fault and
 * a copy: 12 to 16 us here (a VM, where a fault is dear), of which the
 * copy is little. One MADV_POPULATE_WRITE makes the copies of a run of
 * pages for ~5 us a page (fork, then 8 pages written: 128 us as faults,
 * 48 us populated first). A fork's side writes the same pages of ours at
 * each fork, known in advance: copied in at once, each a run of its own.
 */
int sys_populate_off; /* FORKSCOPE_POPULATE=0, or no MADV_POPULATE_WRITE (before 5.14) */

/* pg[0..n): any address in each page, 0 for none. Sorted, as the runs of
 * contiguous pages they make (start and length), at most max; returns how
 * many. */
static int page_runs(uint64_t *pg, int n, struct iovec *runs, int max)
{
	for (int i = 0; i < n; i++)
		pg[i] &= ~4095ull;
	for (int i = 1; i < n; i++) /* a few dozen at most: insertion sort */
		for (int j = i; j > 0 && pg[j - 1] > pg[j]; j--) {
			uint64_t t = pg[j];
			pg[j] = pg[j - 1];
			pg[j - 1] = t;
		}
	int r = 0;
	for (int i = 0; i < n && r < max;) {
		uint64_t lo = pg[i], hi = lo + 4096;
		while (++i < n && pg[i] <= hi)
			if (pg[i] == hi)
				hi += 4096;
		if (lo) {
			runs[r].iov_base = (void *)(uintptr_t)lo;
			runs[r++].iov_len = hi - lo;
		}
	}
	return r;
}

/* The pages [a, b) by one madvise; errno is the caller's to keep. */
static void populate_run(uint64_t a, uint64_t b, long advice)
{
	if (syscall(SYS_madvise, a, b - a, advice) < 0 && errno == EINVAL)
		sys_populate_off = 1; /* before 5.14 */
}

/*
 * Several runs in one call: process_madvise(2) on the calling process
 * takes any advice since Linux 6.13, and PIDFD_SELF (6.14) spares the
 * pidfd. A call costs ~1 us here before its work, and a madvise a run
 * made 25 of the ~105 system calls of a traced fork of fork_bench (both
 * sides' pages of ours, the child's code pages): now 6 (strace -c). An
 * older kernel (EBADF, EINVAL, ENOSYS) or a seccomp filter that refuses
 * the call (EPERM) gets one madvise a run, as before. A run that is not
 * mapped ends the call there: the runs after it go one by one.
 */
int sys_pmadv; /* 0 not tried yet, 1 works, -1 not here */

static void populate_runs(struct iovec *v, int n, long advice)
{
	int i = 0;
	if (n > 1 && sys_pmadv >= 0) {
		uint64_t total = 0;
		for (int k = 0; k < n; k++)
			total += v[k].iov_len;
		long r = syscall(SYS_process_madvise, SYS_PIDFD_SELF, v, n, advice, 0);
		if (r >= 0 && (uint64_t)r == total) {
			sys_pmadv = 1;
			return;
		}
		if (r < 0 && sys_pmadv == 0 &&
		    (errno == EBADF || errno == EINVAL || errno == ENOSYS || errno == EPERM)) {
			sys_pmadv = -1;
		} else {
			/* the runs it did, then the one it stopped at */
			for (uint64_t done = r > 0 ? (uint64_t)r : 0; i < n && done >= v[i].iov_len; i++)
				done -= v[i].iov_len;
			i++;
		}
	}
	for (; i < n && !sys_populate_off; i++)
		populate_run((uint64_t)(uintptr_t)v[i].iov_base,
			     (uint64_t)(uintptr_t)v[i].iov_base + v[i].iov_len, advice);
}

void sys_populate(uint64_t *pages, int n)
{
	if (sys_populate_off || n <= 0)
		return;
	int saved = errno;
	struct iovec v[FSK_HOT_MAX];
	populate_runs(v, page_runs(pages, n, v, FSK_HOT_MAX), MADV_POPULATE_WRITE);
	errno = saved;
}

/* The pages of [lo, lo + len) in one call: a range of one of our tables
 * about to be used a page at a time, each page a fault otherwise. */
void sys_populate_range(uint64_t lo, uint64_t len)
{
	uint64_t a = lo & ~4095ull, b = (lo + len + 4095) & ~4095ull;
	if (sys_populate_off || b <= a)
		return;
	int saved = errno;
	populate_run(a, b, MADV_POPULATE_WRITE);
	errno = saved;
}

extern const ElfW(Ehdr) __ehdr_start __attribute__((visibility("hidden")));

/* Our read-only segments (run 0), then the pages of libc and of the vDSO
 * that a fork child runs for us on its way to its first records (errno,
 * the clock, the calls of the stream, memcpy), found
 * once, sorted, as runs (start and length). fork
 * copies no page table of their mappings either, and the child's first
 * call into each cost it a fault that maps 16 pages around it: ~7 faults
 * a child, before this and our own code were populated first thing
 * (fork_bench, ASLR off: 41.3 -> 35.3 faults a fork, 2.21 -> 2.14 s for
 * 1000 forks, 21 alternating runs). */
struct iovec sys_code_iov[SYS_CODE_RUNS];
int sys_code_nruns;
#define VDSO_PAGES 4 /* at most, of the vDSO's code (2 on x86-64) */

static void code_runs_find(uint64_t self_lo, uint64_t self_hi)
{
	const void *const fn[] = {
		(const void *)__errno_location, (const void *)clock_gettime,
		(const void *)memcpy, (const void *)memmove, (const void *)memset,
		(const void *)close, (const void *)open, (const void *)openat, (const void *)pread,
		(const void *)write, (const void *)writev, (const void *)getpid, (const void *)getuid,
		(const void *)geteuid, (const void *)fcntl,
	};
	uint64_t pg[2 * (sizeof(fn) / sizeof(fn[0])) + VDSO_PAGES];
	int n = 0;
	for (size_t i = 0; i < sizeof(fn) / sizeof(fn[0]); i++) {
		uint64_t a = (uint64_t)(uintptr_t)fn[i];
		if (!a || (a >= self_lo && a < self_hi))
			continue; /* one of ours (interposed) */
		pg[n++] = a;
		pg[n++] = a + 256; /* a function that runs on into the next page */
	}
	/* the vDSO's code (its first PT_LOAD), where clock_gettime goes */
	const ElfW(Ehdr) *vd = (const void *)(uintptr_t)getauxval(AT_SYSINFO_EHDR);
	if (vd) {
		const ElfW(Phdr) *ph = (const void *)((const char *)vd + vd->e_phoff);
		for (int i = 0; i < vd->e_phnum; i++)
			if (ph[i].p_type == PT_LOAD) {
				uint64_t lo = (uint64_t)(uintptr_t)vd, len = ph[i].p_memsz;
				for (uint64_t o = 0; o < len && o < VDSO_PAGES * 4096ull; o += 4096)
					pg[n++] = lo + o;
				break;
			}
	}
	sys_code_iov[0].iov_base = (void *)(uintptr_t)self_lo;
	sys_code_iov[0].iov_len = ((self_hi + 4095) & ~4095ull) - self_lo;
	int nr = 1 + page_runs(pg, n, sys_code_iov + 1, SYS_CODE_RUNS - 1);
	sys_code_nruns = nr;
	/* whether the child may map them in one call (sys_pmadv): tried
	 * on them here, where they are all mapped already */
	if (!sys_pmadv && !sys_populate_off) {
		int saved = errno;
		populate_runs(sys_code_iov, nr, MADV_POPULATE_READ);
		errno = saved;
	}
}

void sys_populate_code_prepare(void)
{
	if (sys_code_nruns)
		return;
	/* our program headers, from our ELF header as loaded */
	const ElfW(Ehdr) *eh = &__ehdr_start;
	const ElfW(Phdr) *ph = (const void *)((const char *)eh + eh->e_phoff);
	uint64_t hi = 0;
	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD && !(ph[i].p_flags & PF_W) && ph[i].p_vaddr + ph[i].p_memsz > hi)
			hi = ph[i].p_vaddr + ph[i].p_memsz;
	uint64_t lo = (uint64_t)(uintptr_t)eh;
	code_runs_find(lo, lo + hi);
}

size_t sys_strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

int sys_strncmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i] != b[i] || !a[i])
			return (unsigned char)a[i] - (unsigned char)b[i];
	}
	return 0;
}

char *sys_stpcpy(char *d, const char *s, const char *end)
{
	while (*s && d < end - 1)
		*d++ = *s++;
	*d = 0;
	return d;
}

char *sys_utoa(char *d, uint64_t v, const char *end)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n && d < end - 1)
		*d++ = tmp[--n];
	*d = 0;
	return d;
}

int sys_write_all(int fd, const void *buf, size_t len)
{
	return sys_write2_all(fd, NULL, 0, buf, len);
}

int sys_write2_all(int fd, const void *a, size_t alen, const void *b, size_t blen)
{
	struct iovec v[2] = { { (void *)a, alen }, { (void *)b, blen } };
	return sys_writev_all(fd, v, 2);
}

/* All of v[0..n), empty pieces skipped, in as few calls as the kernel
 * allows; v is used up. 0 or -errno. */
int sys_writev_all(int fd, struct iovec *v, int n)
{
	while (n > 0 && !v->iov_len) {
		v++;
		n--;
	}
	while (n > 0) {
		ssize_t w = n > 1 ? writev(fd, v, n) : write(fd, v->iov_base, v->iov_len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		size_t left = (size_t)w;
		while (n > 0 && left >= v->iov_len) {
			left -= v->iov_len;
			v++;
			n--;
		}
		if (n > 0) {
			v->iov_base = (char *)v->iov_base + left;
			v->iov_len -= left;
		}
	}
	return 0;
}

void sys_say(const char *first, ...)
{
	char line[512];
	char *p = line, *end = line + sizeof(line) - 1;
	int saved = errno;
	va_list ap;
	p = sys_stpcpy(p, "forkscope: ", end);
	va_start(ap, first);
	for (const char *s = first; s; s = va_arg(ap, const char *))
		p = sys_stpcpy(p, s, end);
	va_end(ap);
	*p++ = '\n';
	sys_write_all(2, line, (size_t)(p - line));
	errno = saved;
}
