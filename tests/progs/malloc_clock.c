/* Malloc records around lifecycle records: ROUNDS times fork (the child
 * _exits), a malloc of 100000+i right after the fork, a burst of BURST
 * malloc/free pairs (sizes 7000+j) once the child is gone, waitpid, a
 * malloc of 200000+i right after the wait. tests/t_malloc_clock.py checks the order and times of the
 * records in the raw stream. Prints "@ counts rounds=R burst=B". */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 100;
	int burst = argc > 2 ? atoi(argv[2]) : 500;
	volatile char sink = 0;

	for (int i = 0; i < rounds; i++) {
		int fds[2];
		if (pipe(fds) < 0)
			return 1;
		pid_t pid = fork();
		if (pid == 0)
			_exit(i & 7);
		close(fds[1]);
		char *a = malloc(100000 + (size_t)i);
		char c;
		while (read(fds[0], &c, 1) > 0) /* EOF: the child is exiting */
			;
		close(fds[0]);
		/* the burst ends right before the WAIT: its last stamps are
		 * within a few microseconds of the clock the WAIT reads */
		for (int j = 0; j < burst; j++) {
			char *p = malloc(7000 + (size_t)j);
			p[0] = (char)j;
			sink = (char)(sink + p[0]);
			free(p);
		}
		int st;
		waitpid(pid, &st, 0);
		char *b = malloc(200000 + (size_t)i);
		a[0] = b[0] = 1;
		free(a);
		free(b);
	}
	printf("@ counts rounds=%d burst=%d\n", rounds, burst);
	return 0;
}
