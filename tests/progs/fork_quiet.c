/* A process that forks, without a thread of its own (tests/t_fork_quiet.py,
 * preload/init.c init_fork_quiet).
 *
 *  1. ROUNDS times: fork (the child _exits), PER mallocs of 3000+i bytes
 *     (kept), waitpid, then the number of this process's threads; prints
 *     "@ loop rounds=R most=N" (N: the most threads seen).
 *  2. At once, while forks are recent: a burst of BURST malloc/free pairs
 *     of 5000 bytes, then SPARSE mallocs of 6100+k bytes 2 ms apart, each
 *     printed as "@ sparse k=K before=NS after=NS" with CLOCK_MONOTONIC
 *     read around the call.
 *  3. A child that waits for word from here, sleeps 30 ms and then looks
 *     at this process's stream file ($FORKSCOPE_DIR/PID.0.fst): here,
 *     after the fork, its size, MARKS mallocs of 7000+j bytes, the size
 *     through a pipe, and a waitpid that blocks (the file is the one of
 *     the highest N: this image's). The child prints
 *     "@ visible before=B after=A" (bytes; -1 when there is no such file,
 *     as in an untraced run).
 *  4. QUIET_MS without a fork, LATE mallocs of 8000+j bytes, then the
 *     number of threads: "@ after threads=N".
 * Ends with "@ done". */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 30
#define PER 20
#define BURST 200
#define SPARSE 6
#define MARKS 200
#define LATE 100
#define QUIET_MS 120

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void sleep_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&t, &t) != 0)
		;
}

static int threads(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The size of the stream of pid's current image: its highest PID.N.fst. */
static long stream_size(pid_t pid)
{
	const char *dir = getenv("FORKSCOPE_DIR");
	char path[4096];
	struct stat st;
	long size = -1;
	for (int n = 0; dir && n < 8; n++) {
		snprintf(path, sizeof(path), "%s/%d.%d.fst", dir, (int)pid, n);
		if (stat(path, &st) == 0)
			size = (long)st.st_size;
	}
	return size;
}

static void *volatile sink; /* the compiler may not drop a malloc */

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	int most = 0;
	for (int r = 0; r < ROUNDS; r++) {
		pid_t c = fork();
		if (c == 0)
			_exit(0);
		for (int i = 0; i < PER; i++)
			sink = malloc(3000 + (size_t)i);
		waitpid(c, NULL, 0);
		int n = threads();
		most = n > most ? n : most;
	}
	printf("@ loop rounds=%d most=%d\n", ROUNDS, most);

	for (int i = 0; i < BURST; i++) {
		sink = malloc(5000);
		free(sink);
	}
	for (int k = 0; k < SPARSE; k++) {
		sleep_ms(2);
		uint64_t before = now_ns();
		sink = malloc(6100 + (size_t)k);
		uint64_t after = now_ns();
		printf("@ sparse k=%d before=%llu after=%llu\n", k, (unsigned long long)before,
		       (unsigned long long)after);
	}

	int fds[2];
	if (pipe(fds) != 0)
		return 1;
	pid_t me = getpid(), c = fork();
	if (c == 0) {
		long before;
		close(fds[1]);
		if (read(fds[0], &before, sizeof(before)) != (ssize_t)sizeof(before))
			_exit(2);
		sleep_ms(30); /* the parent blocks in waitpid by then */
		printf("@ visible before=%ld after=%ld\n", before, stream_size(me));
		_exit(0);
	}
	close(fds[0]);
	long before = stream_size(me);
	for (int j = 0; j < MARKS; j++)
		sink = malloc(7000 + (size_t)j);
	if (write(fds[1], &before, sizeof(before)) != (ssize_t)sizeof(before))
		return 1;
	int status = 0;
	waitpid(c, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return 1;

	sleep_ms(QUIET_MS);
	for (int j = 0; j < LATE; j++)
		sink = malloc(8000 + (size_t)j);
	printf("@ after threads=%d\n", threads());
	printf("@ done\n");
	return 0;
}
