/*
 * Address-space scans inside the traced process: /proc/self/maps parsing
 * (maps.c), /proc/self/pagemap reading (pagemap.c) and the scan itself with
 * its COW baseline (scan.c). Everything here runs with t_guard set, never
 * allocates from the program's heap and never calls a function we
 * interpose: memory comes from scan_map (raw mmap, registered as ours).
 */
#ifndef FORKSCOPE_PRELOAD_SCAN_H
#define FORKSCOPE_PRELOAD_SCAN_H

#include <stddef.h>
#include <stdint.h>

/* One line of /proc/self/maps. The path lives in the parser's pool. */
struct maps_ent {
	uint64_t start, end, offset, inode;
	uint32_t dev;          /* major << 20 | minor, as fsk_region.dev */
	uint16_t perms;        /* FSK_P_* */
	uint16_t kind;         /* filled by scan.c */
	uint32_t path_off;     /* into maps_buf.pool */
	uint32_t path_len;
};

/* The parser's growable storage (our own mappings, reused across scans). */
struct maps_buf {
	struct maps_ent *ents;
	size_t n, cap;         /* entries */
	char *pool;
	size_t pool_len, pool_cap;
	size_t last_n, last_pool_len; /* what the last read wrote */
	char *io;              /* read() chunk plus one carried partial line */
	size_t io_cap;
};

/* maps_read's io buffer: one read() chunk plus one carried partial line
 * (longer lines, paths, are cut). */
#define MAPS_IO_CHUNK (64u * 1024u)
#define MAPS_LINE_MAX (8u * 1024u)
#define MAPS_IO_CAP (MAPS_IO_CHUNK + MAPS_LINE_MAX)

/* Reads /proc/self/maps, open as fd, from its start into mb (malformed
 * lines are skipped); maps its own io buffer when mb has none. 0 or
 * -errno. */
int maps_read(struct maps_buf *mb, int fd);
static inline const char *maps_path(const struct maps_buf *mb, const struct maps_ent *e)
{
	return mb->pool + e->path_off;
}

/* pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) */
#define PM_PRESENT   (1ull << 63)
#define PM_SWAPPED   (1ull << 62)
#define PM_FILE      (1ull << 61) /* file page or shared anonymous */
#define PM_EXCLUSIVE (1ull << 56) /* mapped by exactly one process */
#define PM_PFN_MASK  ((1ull << 55) - 1)

/* A run of pages whose PAGEMAP_SCAN categories are equal. */
struct pagemap_run {
	uint64_t start, end;   /* addresses */
	uint32_t present, swapped, zero;
};

/* Finds the runs of present or swapped pages in [start, end) with the
 * PAGEMAP_SCAN ioctl: fills at most max runs, sets *next to where the
 * walk stopped. Returns the number of runs, or -errno (-ENOTTY: the
 * kernel lacks it; then the caller reads every page). */
int pagemap_runs(int fd, uint64_t start, uint64_t end, struct pagemap_run *out, int max,
		 uint64_t *next);
/* Reads n entries from virtual page vpn on; 0 or -errno (short = -EIO). */
int pagemap_read(int fd, uint64_t vpn, uint64_t *out, size_t n);

/* ---- scan.c ---- */
/* Raw anonymous mapping registered as ours; NULL on failure. */
void *scan_map(size_t len);
/* The same, for contents that only matter within one scan: empty in a
 * fork child. */
void *scan_map_scratch(size_t len);
void scan_unmap(void *p, size_t len);

#endif
