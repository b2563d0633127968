/* A program that sandboxes itself, as sshd's privilege-separated child or
 * a browser's renderer does: once past forkscope's youth (its flusher
 * running), it installs a seccomp filter that kills the process on
 * openat, fstat and newfstatat (it needs none of them itself any more),
 * then allocates and prints. Usage: seccomp_self prctl|syscall (how the
 * filter is installed: prctl(PR_SET_SECCOMP) or syscall(SYS_seccomp), as
 * libseccomp does). Prints "@ seccomp_self sum=N preload_ours=0|1" (whether
 * LD_PRELOAD still names forkscope's library afterwards).
 *
 * seccomp_self exec|spawn: a launcher that builds its child's environment
 * itself (a copy of environ's strings, made before the filter), installs
 * a filter that kills on getppid (which neither it nor the child calls,
 * forkscope's constructor does), then execs or posix_spawns
 * "seccomp_self child" with that environment (spawn: and waits for it).
 * The child prints "@ seccomp_self child preload_ours=0|1" and exits 0.
 * tests/t_seccomp.py */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *volatile sink; /* or the compiler drops a malloc freed at once */

static long churn(int n)
{
	long sum = 0;
	for (int i = 0; i < n; i++) {
		char *p = malloc(100 + (size_t)i % 1000);
		p[0] = 1;
		sink = p;
		sum += p[0];
		free(p);
	}
	return sum;
}

static void *worker(void *arg)
{
	(void)arg;
	return (void *)churn(20000);
}

extern char **environ;

static int preload_ours(void)
{
	const char *pre = getenv("LD_PRELOAD");
	return pre && strstr(pre, "libforkscope") != NULL;
}

/* The child's environment, kept by the launcher: copies of the strings. */
static char **env_copy(void)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **e = calloc(n + 1, sizeof(*e));
	for (size_t i = 0; e && i < n; i++)
		e[i] = strdup(environ[i]);
	return e;
}

static int launch(const char *self, int spawn)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	char **env = env_copy();
	char *argv[] = { (char *)self, "child", NULL };
	if (!env)
		return 2;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
		perror("seccomp");
		return 2;
	}
	if (!spawn) {
		execve(self, argv, env);
		perror("execve");
		return 2;
	}
	pid_t pid;
	int st;
	if (posix_spawn(&pid, self, NULL, NULL, argv, env) || waitpid(pid, &st, 0) != pid) {
		perror("posix_spawn");
		return 2;
	}
	printf("@ seccomp_self launcher child_status=%d\n", st);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "child")) {
		printf("@ seccomp_self child preload_ours=%d\n", preload_ours());
		return 0;
	}
	if (argc > 1 && (!strcmp(argv[1], "exec") || !strcmp(argv[1], "spawn")))
		return launch(argv[0], !strcmp(argv[1], "spawn"));

	int via_syscall = argc > 1 && !strcmp(argv[1], "syscall");
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_newfstatat, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_fstat, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	long sum = churn(1000);
	printf("@ seccomp_self start\n"); /* stdout's fstat, before the filter */
	fflush(stdout);
	struct timespec ts = { 0, 5 * 1000 * 1000 }; /* past forkscope's youth */
	nanosleep(&ts, NULL);
	sum += churn(100);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    (via_syscall ? syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)
			 : prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))) {
		perror("seccomp");
		return 2;
	}
	pthread_t t;
	void *r;
	if (pthread_create(&t, NULL, worker, NULL) == 0 && pthread_join(t, &r) == 0)
		sum += (long)r;
	sum += churn(200000);
	printf("@ seccomp_self sum=%ld preload_ours=%d\n", sum, preload_ours());
	return 0;
}
