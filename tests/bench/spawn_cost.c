/* spawn_cost: what an exec of a program costs in each of several
 * environments (make bench's per-image start cost). A loop in Python
 * adds its own ~0.5 ms and its noise to each exec; this one spawns the
 * program with posix_spawn and waits for it, nothing else.
 *
 * Usage: spawn_cost ROUNDS EXECS PROG [ARG...] -- CFG...
 *   CFG is "-" (the environment as it is) or NAME=VALUE[,NAME=VALUE...]
 *   added to it (a value may not hold a comma).
 * Each round runs EXECS execs of each configuration, taking the
 * configurations in turn exec by exec (from one that moves on at each
 * exec). Prints a line
 * per configuration: the medians over the rounds of the wall time and of
 * the children's user+system time per exec, and of the differences to
 * the first configuration's in the same round, in microseconds:
 *   CFG wall_us cpu_us wall_delta_us cpu_delta_us
 * Exit status 1 when a spawn fails or the program does not exit 0. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static double cpu_us(void)
{
	struct rusage r;
	getrusage(RUSAGE_CHILDREN, &r);
	return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 +
	       (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* environ plus the NAME=VALUE pairs of cfg (the string is cut up). */
static char **env_of(char *cfg)
{
	size_t n = 0, k = 0;
	while (environ[n])
		n++;
	char **e = calloc(n + strlen(cfg) / 2 + 2, sizeof(*e));
	if (!e)
		return NULL;
	if (strcmp(cfg, "-") != 0)
		for (char *s = strtok(cfg, ","); s; s = strtok(NULL, ","))
			e[k++] = s;
	for (size_t i = 0; i < n; i++) {
		size_t len = strcspn(environ[i], "=");
		int overridden = 0;
		for (size_t j = 0; j < k && !overridden; j++)
			overridden = strncmp(e[j], environ[i], len + 1) == 0;
		if (!overridden)
			e[k++] = environ[i];
	}
	e[k] = NULL;
	return e;
}

int main(int argc, char **argv)
{
	int sep = 4;
	while (sep < argc && strcmp(argv[sep], "--") != 0)
		sep++;
	int rounds = argc > 3 ? atoi(argv[1]) : 0, execs = argc > 3 ? atoi(argv[2]) : 0;
	int ncfg = argc - sep - 1;
	if (rounds < 1 || execs < 1 || sep >= argc || ncfg < 1) {
		fprintf(stderr, "usage: spawn_cost ROUNDS EXECS PROG [ARG...] -- CFG...\n");
		return 2;
	}
	argv[sep] = NULL;
	char **prog = argv + 3;
	char ***envs = calloc((size_t)ncfg, sizeof(*envs));
	double *wall = calloc((size_t)(ncfg * rounds), sizeof(double));
	double *cpu = calloc((size_t)(ncfg * rounds), sizeof(double));
	double *dw = calloc((size_t)rounds, sizeof(double)), *dc = calloc((size_t)rounds, sizeof(double));
	char **names = calloc((size_t)ncfg, sizeof(*names));
	if (!envs || !wall || !cpu || !dw || !dc || !names)
		return 1;
	for (int c = 0; c < ncfg; c++) {
		names[c] = strdup(argv[sep + 1 + c]);
		envs[c] = env_of(argv[sep + 1 + c]);
		if (!names[c] || !envs[c])
			return 1;
	}
	/* exec by exec in turn: a block of one configuration's execs after
	 * another's measured 50-90 us apart for the same library, by its
	 * place in the round; in turn from a first one that moves on at each
	 * exec, as a fixed order still left ~6 us between two copies */
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < execs; i++)
			for (int j = 0; j < ncfg; j++) {
				int c = (i + j) % ncfg;
				double c0 = cpu_us(), t0 = now_us();
				pid_t pid;
				int st;
				if (posix_spawn(&pid, prog[0], NULL, NULL, prog, envs[c]) != 0 ||
				    waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
					fprintf(stderr, "spawn_cost: %s failed under %s\n", prog[0], names[c]);
					return 1;
				}
				wall[c * rounds + r] += (now_us() - t0) / execs;
				cpu[c * rounds + r] += (cpu_us() - c0) / execs;
			}
	for (int c = 0; c < ncfg; c++) {
		for (int r = 0; r < rounds; r++) {
			dw[r] = wall[c * rounds + r] - wall[r];
			dc[r] = cpu[c * rounds + r] - cpu[r];
		}
		double mdw = median(dw, rounds), mdc = median(dc, rounds);
		printf("%s %.1f %.1f %.1f %.1f\n", names[c], median(wall + c * rounds, rounds),
		       median(cpu + c * rounds, rounds), mdw, mdc);
	}
	return 0;
}
