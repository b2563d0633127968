/*
 * /proc/self/maps without stdio or malloc: read() in chunks into a buffer
 * of our own, one line at a time, each line parsed in place. A line that
 * does not parse is skipped, as htop does: the kernel's format is stable,
 * but a reader inside somebody else's process must not trust it blindly.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fsk.h"
#include "scan.h"

/* Grows one of our arrays by doubling; 0 or -ENOMEM (old contents kept). */
static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 256;
	while (ncap < need)
		ncap *= 2;
	ncap = ((ncap * elem + 4095) & ~(size_t)4095) / elem; /* the whole pages mapped */
	void *np = scan_map(ncap * elem);
	if (!np)
		return -ENOMEM;
	if (*p) {
		__builtin_memcpy(np, *p, *cap * elem);
		scan_unmap(*p, *cap * elem);
	}
	*p = np;
	*cap = ncap;
	return 0;
}

static const char *hex(const char *s, const char *end, uint64_t *v)
{
	uint64_t x = 0;
	const char *b = s;
	for (; s < end; s++) {
		unsigned c = (unsigned char)*s, d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			break;
		if (s - b >= 16)
			return NULL;
		x = x << 4 | d;
	}
	if (s == b)
		return NULL;
	*v = x;
	return s;
}

static const char *dec(const char *s, const char *end, uint64_t *v)
{
	uint64_t x = 0;
	const char *b = s;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (s - b >= 20)
			return NULL;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	if (s == b)
		return NULL;
	*v = x;
	return s;
}

static const char *expect(const char *s, const char *end, char c)
{
	return s && s < end && *s == c ? s + 1 : NULL;
}

/* "start-end perms offset major:minor inode   path" */
static int parse_line(struct maps_buf *mb, const char *s, const char *end)
{
	uint64_t start, stop, off, maj, min, ino;
	s = hex(s, end, &start);
	s = expect(s, end, '-');
	if (s)
		s = hex(s, end, &stop);
	s = expect(s, end, ' ');
	if (!s || end - s < 5 || stop <= start)
		return -EINVAL;
	uint16_t perms = 0;
	if (s[0] == 'r')
		perms |= FSK_P_READ;
	else if (s[0] != '-')
		return -EINVAL;
	if (s[1] == 'w')
		perms |= FSK_P_WRITE;
	else if (s[1] != '-')
		return -EINVAL;
	if (s[2] == 'x')
		perms |= FSK_P_EXEC;
	else if (s[2] != '-')
		return -EINVAL;
	if (s[3] == 's')
		perms |= FSK_P_SHARED;
	else if (s[3] != 'p')
		return -EINVAL;
	s = expect(s + 4, end, ' ');
	if (s)
		s = hex(s, end, &off);
	s = expect(s, end, ' ');
	if (s)
		s = hex(s, end, &maj);
	s = expect(s, end, ':');
	if (s)
		s = hex(s, end, &min);
	s = expect(s, end, ' ');
	if (s)
		s = dec(s, end, &ino);
	if (!s || (s < end && *s != ' '))
		return -EINVAL;
	while (s < end && *s == ' ')
		s++;
	size_t plen = (size_t)(end - s);
	if (grow((void **)&mb->ents, &mb->cap, mb->n + 1, sizeof(*mb->ents)) < 0 ||
	    grow((void **)&mb->pool, &mb->pool_cap, mb->pool_len + plen + 1, 1) < 0)
		return -ENOMEM;
	/* An entry and a path the last read wrote are only read where they
	 * are the same: most lines are the same from scan to scan, and a page
	 * of ours the last fork shared costs a copy when written (~12 us
	 * here; scan.c classifies the kind again, written where it changed).
	 * Not beyond what the last read wrote: a first read of a page not yet
	 * touched would map the zero page, a fault more before the write's. */
	int again = mb->n < mb->last_n;
	struct maps_ent *e = &mb->ents[mb->n++];
	uint32_t dev = (uint32_t)(maj << 20 | (min & 0xfffff));
	if (!again || e->start != start || e->end != stop || e->offset != off || e->inode != ino ||
	    e->dev != dev || e->perms != perms || e->path_off != (uint32_t)mb->pool_len ||
	    e->path_len != (uint32_t)plen) {
		e->start = start;
		e->end = stop;
		e->offset = off;
		e->inode = ino;
		e->dev = dev;
		e->perms = perms;
		e->kind = 0;
		e->path_off = (uint32_t)mb->pool_len;
		e->path_len = (uint32_t)plen;
	}
	char *to = mb->pool + mb->pool_len;
	if (mb->pool_len + plen >= mb->last_pool_len || to[plen] != 0 || __builtin_memcmp(to, s, plen)) {
		__builtin_memcpy(to, s, plen);
		to[plen] = 0;
	}
	mb->pool_len += plen + 1;
	return 0;
}

/* The kernel lists the gate area ([vsyscall] on x86-64, above every
 * user address) after the last VMA: a read that ends with its line has
 * reached the end of the file, and the read that would return 0 (a system
 * call and a walk of the list to its end) is saved, every scan. */
static int ends_with_gate(const char *start, const char *end)
{
#if defined(__x86_64__)
	static const char gate[] = "ffffffffff600000-";
	if (end - start < (long)sizeof(gate) || end[-1] != '\n')
		return 0;
	const char *l = end - 1;
	while (l > start && l[-1] != '\n')
		l--;
	return end - l > (long)sizeof(gate) && sys_strncmp(l, gate, sizeof(gate) - 1) == 0;
#else
	(void)start;
	(void)end;
	return 0;
#endif
}

int maps_read(struct maps_buf *mb, int fd)
{
	/* the last read's extent, also when it stopped short: the entries
	 * it parsed before are written */
	if (mb->n > mb->last_n)
		mb->last_n = mb->n;
	if (mb->pool_len > mb->last_pool_len)
		mb->last_pool_len = mb->pool_len;
	mb->n = 0;
	mb->pool_len = 0;
	if (!mb->io) {
		mb->io = scan_map_scratch(MAPS_IO_CAP);
		if (!mb->io)
			return -ENOMEM;
		mb->io_cap = MAPS_IO_CAP;
	}
	off_t at = 0;     /* pread: a kept fd is read again from its start */
	size_t have = 0;  /* bytes of an unfinished line at the start of io */
	int skipping = 0; /* inside an over-long line: drop to its newline */
	int err = 0;
	for (;;) {
		ssize_t r = pread(fd, mb->io + have, MAPS_IO_CHUNK, at);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		at += r;
		size_t len = have + (size_t)r;
		char *p = mb->io, *end = mb->io + len;
		for (;;) {
			/* libc's memchr: a byte loop here was a third of the parse */
			char *nl = memchr(p, '\n', (size_t)(end - p));
			if (!nl)
				break;
			if (!skipping && parse_line(mb, p, nl) == -ENOMEM) {
				err = -ENOMEM;
				break;
			}
			skipping = 0;
			p = nl + 1;
		}
		if (err)
			break;
		have = (size_t)(end - p);
		if (r > 0 && !have && !skipping && ends_with_gate(mb->io, end))
			break;
		if (r == 0) {
			if (have && !skipping)
				parse_line(mb, p, end); /* last line without newline */
			break;
		}
		if (have > MAPS_LINE_MAX) { /* keep the head, drop the rest */
			if (!skipping)
				parse_line(mb, p, p + MAPS_LINE_MAX);
			skipping = 1;
			have = 0;
		} else if (p != mb->io) {
			__builtin_memmove(mb->io, p, have);
		}
	}
	return err;
}
