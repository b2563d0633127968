/*
 * prefork: a server that forks workers after building a big table.
 *
 * The notes: after fork() parent and children share every page until one
 * of them writes to it; only then is that page copied (copy-on-write).
 * Prefork servers (Redis BGSAVE, gunicorn, PHP-FPM, Python multiprocessing)
 * rely on this: workers can read the parent's data for free, and each page
 * they write costs a private copy.
 *
 * The parent fills a TABLE_MIB table (all pages resident), then forks
 * WORKERS workers. Each worker reads every page of the table and writes
 * every WRITE_EVERY-th page, then exits with code 0. The parent waits for
 * them all.
 *
 * What forkscope shows: WORKERS children of the parent, each reaped by it;
 * in each worker, the table's region (anon, from malloc's mmap) with
 * TABLE pages shared at fork and pages/WRITE_EVERY of them unshared
 * (COW broken, attributed to the write in worker()), the rest still
 * shared; reading broke nothing.
 */
#include "sample.h"

#define TABLE_MIB 32
#define WORKERS 4
#define WRITE_EVERY 4

static long worker(unsigned char *table, long pages, long page)
{
	long sum = 0;
	for (long p = 0; p < pages; p++)        /* read everything: no copy */
		for (long off = 0; off < page; off += 256)
			sum += table[p * page + off];
	long wrote = 0;
	for (long p = 0; p < pages; p += WRITE_EVERY) { /* each write: a copy */
		table[p * page] ^= 1;
		wrote++;
	}
	at("worker", "pid=%d ppid=%d read_pages=%ld wrote_pages=%ld", (int)getpid(), (int)getppid(),
	   pages, wrote);
	return sum;
}

int main(void)
{
	long page = sysconf(_SC_PAGESIZE);
	long size = (long)TABLE_MIB << 20, pages = size / page;
	unsigned char *table = malloc(size);
	if (!table)
		die("malloc");
	for (long i = 0; i < size; i++)
		table[i] = (unsigned char)(i * 7);
	say("parent %d: built a %d MiB table at %p (%ld pages), forking %d workers\n",
	    (int)getpid(), TABLE_MIB, (void *)table, pages, WORKERS);
	at("proc", "role=parent pid=%d ppid=%d", (int)getpid(), (int)getppid());
	at("table", "addr=%p size=%ld pages=%ld write_every=%d workers=%d",
	   (void *)table, size, pages, WRITE_EVERY, WORKERS);

	int go[2]; /* workers start together, once all exist */
	if (pipe(go) < 0)
		die("pipe");
	pid_t kids[WORKERS];
	for (int w = 0; w < WORKERS; w++) {
		kids[w] = xfork();
		if (kids[w] == 0) {
			char c;
			close(go[1]);
			if (read(go[0], &c, 1) != 0) /* EOF: the parent closed it */
				die("pipe");
			worker(table, pages, page);
			exit(0);
		}
	}
	close(go[1]);
	int status[WORKERS];
	for (int w = 0; w < WORKERS; w++)
		status[w] = xwait(kids[w]);
	/* Printed after all waits: the workers' own lines come in any order,
	 * but they all come before these. */
	for (int w = 0; w < WORKERS; w++) {
		at("wait", "pid=%d status=0x%04x", (int)kids[w], status[w]);
		at("expect", "pid=%d ppid=%d exit=exited code=0 reaped_by_pid=%d orphaned=0",
		   (int)kids[w], (int)getpid(), (int)getpid());
	}
	say("parent: all %d workers done; each copied about %ld of the %ld pages it shared\n",
	    WORKERS, pages / WRITE_EVERY, pages);
	free(table);
	return 0;
}
