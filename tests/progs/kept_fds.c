/*
 * kept_fds: the /proc/self/maps and /proc/self/pagemap fds the tracer
 * keeps open between a process's scans (preload/scan.c, kept_open).
 *
 * Usage: kept_fds DIR
 * Forks three children; each lists its fds and prints
 *   "@ child n=N parent_fds=K own_ok=O"
 * K: fds that name its parent's maps or pagemap (/proc/PPID/...), which
 * a child must not hold; O: 1 when the files the parent put on the kept
 * numbers (below) are still there in the child. After the first child the parent finds the fds
 * naming its own maps and pagemap and prints "@ kept maps=M pagemap=P"
 * (-1: none, as untraced), then puts files of its own (DIR/a, DIR/b,
 * holding "AAAA" and "BBBB") on those numbers with dup2 and forks the
 * second child: its prefork scan must notice and open its own again, and
 * never close, move or read the program's files there. Then it checks
 * them: "@ tamper ok=1" when both still hold their file at offset 0.
 * Then it closes every fd from 3 up (close_range) and forks the third.
 * Ends with "@ done".
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* fds of this process naming /proc/PID/NAME */
static int fd_naming(int pid, const char *name)
{
	char want[64], path[300], link[256];
	snprintf(want, sizeof(want), "/proc/%d/%s", pid, name);
	DIR *d = opendir("/proc/self/fd");
	int found = -1;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = 0;
			if (!strcmp(link, want) && atoi(e->d_name) != dirfd(d))
				found = atoi(e->d_name);
		}
	}
	if (d)
		closedir(d);
	return found;
}

static int s_m = -1, s_p = -1; /* the numbers the parent's own files took */

static int still_own(int fd, const char *text);

static void child(int n)
{
	int pp = getppid();
	int k = (fd_naming(pp, "maps") >= 0) + (fd_naming(pp, "pagemap") >= 0);
	char *p = malloc(5000); /* a record, and a page the child writes */
	p[0] = 1;
	int own = (s_m < 0 || still_own(s_m, "AAAA")) && (s_p < 0 || still_own(s_p, "BBBB"));
	printf("@ child n=%d parent_fds=%d own_ok=%d\n", n, k, own);
	fflush(stdout);
	free(p);
	_exit(0);
}

static void fork_one(int n)
{
	pid_t c = fork();
	if (c == 0)
		child(n);
	if (c < 0 || waitpid(c, NULL, 0) != c)
		exit(1);
}

static int own_file(const char *dir, const char *name, const char *text)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, 4) != 4 || lseek(fd, 0, SEEK_SET) != 0)
		exit(1);
	return fd;
}

static int still_own(int fd, const char *text)
{
	char b[8] = { 0 };
	return fcntl(fd, F_GETFD) >= 0 && lseek(fd, 0, SEEK_CUR) == 0 && pread(fd, b, 8, 0) == 4 &&
	       !memcmp(b, text, 4);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	char *keep = malloc(100000);
	memset(keep, 1, 100000);
	fork_one(1);
	int m = fd_naming(getpid(), "maps"), p = fd_naming(getpid(), "pagemap");
	printf("@ kept maps=%d pagemap=%d\n", m, p);
	fflush(stdout);
	int a = own_file(argv[1], "a", "AAAA"), b = own_file(argv[1], "b", "BBBB");
	if (m >= 0 && dup2(a, m) != m)
		return 1;
	if (p >= 0 && dup2(b, p) != p)
		return 1;
	s_m = m;
	s_p = p;
	fork_one(2);
	s_m = s_p = -1;
	int ok = (m < 0 || still_own(m, "AAAA")) && (p < 0 || still_own(p, "BBBB")) && still_own(a, "AAAA") &&
		 still_own(b, "BBBB");
	printf("@ tamper ok=%d\n", ok);
	fflush(stdout);
	syscall(SYS_close_range, 3u, ~0u, 0u);
	fork_one(3);
	printf("@ done\n");
	free(keep);
	return 0;
}
