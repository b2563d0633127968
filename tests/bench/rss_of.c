/* Bench helper: runs CMD and prints its peak RSS in KiB (ru_maxrss from
 * wait4). vfork shares this small launcher's memory until the exec, so
 * the figure is the program's own, not a copy of a big parent's (Python's
 * subprocess would report its own 14 MiB for /bin/true). RSS_OF_PRELOAD=LIB
 * preloads LIB into CMD only, not into this launcher, whose pages would
 * otherwise count too. Usage: rss_of CMD [ARG...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs("usage: rss_of CMD [ARG...]\n", stderr);
		return 2;
	}
	extern char **environ;
	char **env = environ;
	const char *pre = getenv("RSS_OF_PRELOAD");
	if (pre) { /* built before vfork: the child may only exec */
		size_t n = 0;
		while (environ[n])
			n++;
		env = calloc(n + 2, sizeof(*env));
		char *var = malloc(strlen(pre) + sizeof("LD_PRELOAD="));
		if (!env || !var)
			return 2;
		memcpy(env, environ, n * sizeof(*env));
		env[n] = strcat(strcpy(var, "LD_PRELOAD="), pre);
	}
	pid_t pid = vfork();
	if (pid == 0) {
		execvpe(argv[1], argv + 1, env);
		_exit(127);
	}
	if (pid < 0) {
		perror("rss_of: vfork");
		return 2;
	}
	int st;
	struct rusage ru;
	if (wait4(pid, &st, 0, &ru) < 0) {
		perror("rss_of: wait4");
		return 2;
	}
	printf("%ld\n", ru.ru_maxrss);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
