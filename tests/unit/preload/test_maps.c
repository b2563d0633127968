/*
 * Unit test of the preload's /proc/self/maps parser (preload/maps.c) read
 * after read into the same buffers, as scans do: a read leaves the entries
 * and paths the last read wrote untouched where they are the same (a page
 * written after a fork is a copy), and must still give exactly what a
 * fresh parse of the new text gives, whatever changed: a path longer or
 * shorter, a line gone or added, the list shorter then longer again, a
 * first line changed, many lines (the arrays grow), no lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fsk.h"
#include "scan.h"

static int failed;

static void check(const char *name, int ok, const char *why)
{
	printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name, ok ? "" : ": ", ok ? "" : why);
	failed |= !ok;
}

/* what maps.c takes from the scanner and the rest of the preload */
void *scan_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void *scan_map_scratch(size_t len)
{
	return scan_map(len);
}

void scan_unmap(void *p, size_t len)
{
	if (p)
		munmap(p, (len + 4095) & ~(size_t)4095);
}

int sys_strncmp(const char *a, const char *b, size_t n)
{
	return strncmp(a, b, n);
}

static int text_fd(const char *text)
{
	int fd = memfd_create("maps", 0);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		perror("memfd");
		exit(2);
	}
	return fd;
}

static void parse(struct maps_buf *mb, const char *text)
{
	int fd = text_fd(text);
	if (maps_read(mb, fd) < 0) {
		fprintf(stderr, "maps_read failed\n");
		exit(2);
	}
	close(fd);
	/* as scan.c's classify does: a kind on every entry */
	for (size_t i = 0; i < mb->n; i++)
		if (!mb->ents[i].kind)
			mb->ents[i].kind = (uint16_t)(i + 1);
}

/* mb (read again and again) as a fresh buffer's parse of text */
static void same(const char *name, struct maps_buf *mb, const char *text)
{
	struct maps_buf fresh;
	memset(&fresh, 0, sizeof(fresh));
	parse(mb, text);
	parse(&fresh, text);
	char why[256] = "";
	if (mb->n != fresh.n || mb->pool_len != fresh.pool_len)
		snprintf(why, sizeof(why), "%zu entries, %zu pool bytes; fresh %zu, %zu", mb->n, mb->pool_len,
			 fresh.n, fresh.pool_len);
	for (size_t i = 0; !why[0] && i < mb->n; i++) {
		const struct maps_ent *a = &mb->ents[i], *b = &fresh.ents[i];
		const char *pa = mb->pool + a->path_off, *pb = fresh.pool + b->path_off;
		if (a->start != b->start || a->end != b->end || a->offset != b->offset || a->inode != b->inode ||
		    a->dev != b->dev || a->perms != b->perms || a->path_off != b->path_off ||
		    a->path_len != b->path_len || strcmp(pa, pb) || strlen(pa) != a->path_len)
			snprintf(why, sizeof(why), "entry %zu: %lx-%lx '%s', fresh %lx-%lx '%s'", i,
				 (unsigned long)a->start, (unsigned long)a->end, pa, (unsigned long)b->start,
				 (unsigned long)b->end, pb);
	}
	check(name, !why[0], why);
	scan_unmap(fresh.ents, fresh.cap * sizeof(*fresh.ents));
	scan_unmap(fresh.pool, fresh.pool_cap);
	scan_unmap(fresh.io, fresh.io_cap);
}

#define L1 "55d0a0000000-55d0a0002000 r--p 00000000 fe:00 1234   /usr/bin/prog\n"
#define L2 "55d0a0002000-55d0a0005000 r-xp 00002000 fe:00 1234   /usr/bin/prog\n"
#define L3 "55d0a1000000-55d0a1021000 rw-p 00000000 00:00 0   [heap]\n"
#define L4 "7f0000000000-7f0000100000 rw-p 00000000 00:00 0 \n"
#define L5 "7f0000200000-7f0000228000 r--p 00000000 fe:00 99   /usr/lib/x86_64-linux-gnu/libc.so.6\n"
#define L6 "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0   [stack]\n"
#define GATE "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0   [vsyscall]\n"

int main(void)
{
	struct maps_buf mb;
	memset(&mb, 0, sizeof(mb));
	same("maps.first_read", &mb, L1 L2 L3 L4 L5 L6 GATE);
	same("maps.same_again", &mb, L1 L2 L3 L4 L5 L6 GATE);
	unsigned kinds = 0;
	for (size_t i = 0; i < mb.n; i++)
		kinds += mb.ents[i].kind == i + 1;
	check("maps.unchanged_kept", kinds == mb.n, "an entry the same as before was written");
	/* a heap grown in place, a path longer, then shorter: what follows moves */
	same("maps.grown_region", &mb,
	     L1 L2 "55d0a1000000-55d0a1042000 rw-p 00000000 00:00 0   [heap]\n" L4 L5 L6 GATE);
	same("maps.longer_path", &mb,
	     L1 L2 L3 L4 "7f0000200000-7f0000228000 r--p 00000000 fe:00 99   /usr/lib/x86_64-linux-gnu/libc.so.6.long-name\n" L6 GATE);
	same("maps.shorter_path", &mb, L1 L2 L3 L4 "7f0000200000-7f0000228000 r--p 00000000 fe:00 99   /l\n" L6 GATE);
	same("maps.line_gone", &mb, L1 L2 L4 L5 L6 GATE);
	same("maps.line_added", &mb, L1 L2 L3 L4 "7f0000180000-7f0000181000 rw-s 00000000 00:01 7   /dev/zero (deleted)\n" L5 L6 GATE);
	same("maps.first_changed", &mb, "55d0a0000000-55d0a0002000 r--p 00000000 fe:00 1235   /usr/bin/prog\n" L2 L3 L4 L5 L6 GATE);
	same("maps.shorter_list", &mb, L1 L6 GATE);
	same("maps.longer_again", &mb, L1 L2 L3 L4 L5 L6 GATE);
	/* many lines: the entries and the pool grow into new mappings */
	size_t cap = 400 * 128;
	char *big = malloc(cap), *p = big;
	for (int i = 0; i < 400; i++)
		p += sprintf(p, "7e%04x000000-7e%04x001000 rw-p 00000000 00:00 0   /tmp/file-%d-%s\n", i, i, i,
			     i % 3 ? "x" : "a-rather-long-name-to-fill-the-pool-of-paths");
	strcpy(p, GATE);
	same("maps.grown_arrays", &mb, big);
	big[strlen(big) / 2] = 'X'; /* a path changed in the middle */
	same("maps.grown_again", &mb, big);
	free(big);
	same("maps.empty", &mb, "");
	same("maps.after_empty", &mb, L1 L2 L3 L4 L5 L6 GATE);
	return failed;
}
