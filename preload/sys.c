/*
 * Thin system-call wrappers and a tiny formatter: what the hooks use
 * instead of stdio and string functions that might be interposed or
 * allocate. Every function here is async-signal-safe.
 */
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fsk.h"

pid_t sys_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
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

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
/*
 * A page fork left shared costs the side that writes it first a fault and
 * a copy: 12 to 16 us here (a VM, where a fault is dear), of which the
 * copy is little. One MADV_POPULATE_WRITE makes the copies of a run of
 * pages for ~5 us a page (fork, then 8 pages written: 128 us as faults,
 * 48 us populated first). A fork's side writes the same pages of ours at
 * each fork, known in advance: copied in at once, each a run of its own.
 */
static int s_populate_off; /* the kernel has no MADV_POPULATE_WRITE */

void sys_populate(uint64_t *pages, int n)
{
	if (s_populate_off || n <= 0)
		return;
	int saved = errno;
	for (int i = 0; i < n; i++)
		pages[i] &= ~4095ull;
	for (int i = 1; i < n; i++) /* a handful: insertion sort */
		for (int j = i; j > 0 && pages[j - 1] > pages[j]; j--) {
			uint64_t t = pages[j];
			pages[j] = pages[j - 1];
			pages[j - 1] = t;
		}
	for (int i = 0; i < n;) {
		uint64_t lo = pages[i], hi = lo + 4096;
		while (++i < n && pages[i] <= hi)
			if (pages[i] == hi)
				hi += 4096;
		if (!lo)
			continue;
		if (syscall(SYS_madvise, lo, hi - lo, MADV_POPULATE_WRITE) < 0 && errno == EINVAL) {
			s_populate_off = 1; /* before 5.14 */
			break;
		}
	}
	errno = saved;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
extern const ElfW(Ehdr) __ehdr_start __attribute__((visibility("hidden")));

static uint64_t s_code_len; /* of our read-only segments, from our base */

void sys_populate_code(int child)
{
	if (!s_code_len) {
		/* our program headers, from our ELF header as loaded (read
		 * where its page is mapped: in the parent) */
		const ElfW(Ehdr) *eh = &__ehdr_start;
		const ElfW(Phdr) *ph = (const void *)((const char *)eh + eh->e_phoff);
		uint64_t hi = 0;
		for (int i = 0; i < eh->e_phnum; i++)
			if (ph[i].p_type == PT_LOAD && !(ph[i].p_flags & PF_W) &&
			    ph[i].p_vaddr + ph[i].p_memsz > hi)
				hi = ph[i].p_vaddr + ph[i].p_memsz;
		s_code_len = (hi + 4095) & ~4095ull;
	}
	if (!child || s_populate_off || !s_code_len)
		return;
	int saved = errno;
	syscall(SYS_madvise, (uint64_t)(uintptr_t)&__ehdr_start, s_code_len, MADV_POPULATE_READ);
	errno = saved;
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
