/*
 * /proc/self/pagemap: 8 bytes per virtual page, read with pread in bounded
 * batches as tools/mm/page-types.c does. Reading every page of a region
 * costs in proportion to its virtual size, so where the kernel has the
 * PAGEMAP_SCAN ioctl (Linux 6.7) we first ask it for the runs of present
 * or swapped pages and read only those: the cost follows resident memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "fsk.h"
#include "scan.h"

/* From linux/fs.h of 6.7+; Debian 12's headers predate it. */
struct fsk_page_region {
	uint64_t start, end, categories;
};

struct fsk_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};

#define FSK_PAGEMAP_SCAN _IOWR('f', 16, struct fsk_pm_scan_arg)
#define FSK_PAGE_IS_PRESENT (1ull << 3)
#define FSK_PAGE_IS_SWAPPED (1ull << 4)
#define FSK_PAGE_IS_PFNZERO (1ull << 5)

int pagemap_runs(int fd, uint64_t start, uint64_t end, struct pagemap_run *out, int max,
		 uint64_t *next)
{
	struct fsk_page_region vec[64];
	if (max > 64)
		max = 64;
	struct fsk_pm_scan_arg a = {
		.size = sizeof(a),
		.start = start,
		.end = end,
		.vec = (uint64_t)(uintptr_t)vec,
		.vec_len = (uint64_t)max,
		.category_anyof_mask = FSK_PAGE_IS_PRESENT | FSK_PAGE_IS_SWAPPED,
		.return_mask = FSK_PAGE_IS_PRESENT | FSK_PAGE_IS_SWAPPED | FSK_PAGE_IS_PFNZERO,
	};
	long n;
	do
		n = ioctl(fd, FSK_PAGEMAP_SCAN, &a);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (long i = 0; i < n; i++) {
		out[i].start = vec[i].start;
		out[i].end = vec[i].end;
		out[i].present = (vec[i].categories & FSK_PAGE_IS_PRESENT) != 0;
		out[i].swapped = (vec[i].categories & FSK_PAGE_IS_SWAPPED) != 0;
		out[i].zero = (vec[i].categories & FSK_PAGE_IS_PFNZERO) != 0;
	}
	*next = a.walk_end ? a.walk_end : end;
	return (int)n;
}

int pagemap_read(int fd, uint64_t vpn, uint64_t *out, size_t n)
{
	size_t want = n * 8, got = 0;
	while (got < want) {
		ssize_t r = pread(fd, (char *)out + got, want - got, (off_t)(vpn * 8 + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO; /* a partial entry is an error, as in page-types */
		got += (size_t)r;
	}
	return (got % 8) ? -EIO : 0;
}
