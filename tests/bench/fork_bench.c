/* Bench workload: N x (fork, the child touches P pages and _exits, the
 * parent waits). Usage: fork_bench [forks] [pages] */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	int pages = argc > 2 ? atoi(argv[2]) : 16;
	char *mem = malloc((size_t)pages * 4096);
	for (int i = 0; i < pages; i++)
		mem[i * 4096] = 1;
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			for (int p = 0; p < pages; p++)
				mem[p * 4096] = 2;
			_exit(0);
		}
		int st;
		waitpid(pid, &st, 0);
	}
	free(mem);
	return 0;
}
