/*
 * scan_cost: memory of a known shape for the address-space scans.
 *
 * scan_cost cost MIB [SPARSE_GIB] [ROUNDS]
 *   maps MIB MiB (inside a SPARSE_GIB GiB MAP_NORESERVE reservation when
 *   given, so virtual size >> resident), touches every page, then ROUNDS
 *   times forks a child that _exits at once and reaps it: each round makes
 *   a FORK_PARENT scan (with a new COW baseline) and a WAIT scan. The
 *   scans' SCAN_END.cost_ns over the resident size is the cost per GiB.
 *   Prints "@ mem addr=0x.. mib=N virt_gib=N".
 * scan_cost smaps PAGES WRITTEN
 *   maps PAGES pages, touches them, forks; the child writes WRITTEN of them,
 *   prints its /proc/self/smaps (read with read() into a mapping made after
 *   the fork, so nothing else of the program changes) and _exits: its EXIT
 *   scan follows at once, to be compared with that smaps.
 *   Prints "@ mem addr=0x.. pages=N written=N" and, from the child,
 *   "@ proc role=child pid=N", then "@ smaps-begin", smaps, "@ smaps-end".
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096

static void say(const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(1, s, n);
		if (w <= 0)
			_exit(3);
		s += w;
		n -= (size_t)w;
	}
}

static int cost(int argc, char **argv)
{
	size_t mib = argc > 2 ? strtoul(argv[2], NULL, 0) : 256;
	size_t virt_gib = argc > 3 ? strtoul(argv[3], NULL, 0) : 0;
	int rounds = argc > 4 ? atoi(argv[4]) : 5;
	size_t len = mib << 20;
	size_t vlen = virt_gib ? virt_gib << 30 : len;
	char *base = mmap(NULL, vlen, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return 2;
	/* Sparse: resident pages spread over the whole reservation. */
	size_t step = virt_gib ? (vlen / len) * PAGE : PAGE;
	for (size_t off = 0, n = 0; n < len / PAGE && off < vlen; off += step, n++)
		base[off] = 1;
	char buf[160];
	snprintf(buf, sizeof buf, "@ mem addr=%p mib=%zu virt_gib=%zu\n", (void *)base, mib, virt_gib);
	say(buf, strlen(buf));
	for (int i = 0; i < rounds; i++) {
		pid_t p = fork();
		if (p == 0)
			_exit(0);
		if (p < 0 || waitpid(p, NULL, 0) != p)
			return 1;
	}
	return 0;
}

static int smaps(int argc, char **argv)
{
	int pages = argc > 2 ? atoi(argv[2]) : 256;
	int written = argc > 3 ? atoi(argv[3]) : 37;
	/* PROT_NONE guards on both sides: the kernel cannot merge the buffer
	 * with a neighbouring anonymous mapping, so its region is exactly it. */
	char *g = mmap(NULL, (size_t)(pages + 2) * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g == MAP_FAILED || written > pages)
		return 2;
	char *m = g + PAGE;
	if (mprotect(m, (size_t)pages * PAGE, PROT_READ | PROT_WRITE) < 0)
		return 2;
	memset(m, 7, (size_t)pages * PAGE);
	char buf[160];
	snprintf(buf, sizeof buf, "@ mem addr=%p pages=%d written=%d\n", (void *)m, pages, written);
	say(buf, strlen(buf));
	pid_t p = fork();
	if (p < 0)
		return 2;
	if (p == 0) {
		for (int i = 0; i < written; i++)
			m[(size_t)i * PAGE] = 9;
		size_t cap = 4 << 20, len = 0;
		char *out = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int fd = open("/proc/self/smaps", O_RDONLY);
		if (out == MAP_FAILED || fd < 0)
			_exit(2);
		ssize_t r;
		while (len < cap && (r = read(fd, out + len, cap - len)) > 0)
			len += (size_t)r;
		close(fd);
		int n = snprintf(buf, sizeof buf, "@ proc role=child pid=%d\n@ smaps-begin\n", (int)getpid());
		say(buf, (size_t)n);
		say(out, len);
		say("@ smaps-end\n", 12);
		_exit(0);
	}
	int st;
	return waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "cost"))
		return cost(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "smaps"))
		return smaps(argc, argv);
	fprintf(stderr, "usage: scan_cost cost MIB [SPARSE_GIB] [ROUNDS] | smaps PAGES WRITTEN\n");
	return 2;
}
