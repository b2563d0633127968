/* Bench workload: the parent fills M MiB, C children each write every 4th
 * page, the parent waits. Usage: cow_bench [MiB] [children] */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 256;
	int kids = argc > 2 ? atoi(argv[2]) : 4;
	size_t len = mib << 20;
	char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 1;
	memset(mem, 1, len);
	for (int k = 0; k < kids; k++) {
		if (fork() == 0) {
			for (size_t off = 0; off < len; off += 4 * 4096)
				mem[off] = 2;
			_exit(0);
		}
	}
	while (wait(NULL) > 0)
		;
	return 0;
}
