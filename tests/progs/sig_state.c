/*
 * sig_state: prints the SigIgn and SigBlk lines of /proc/self/status, the
 * signal dispositions and mask it was exec'd with. Linked statically, so
 * that no preloaded library runs in it first (forkscope's flusher thread
 * makes glibc catch its SIGSETXID): t_run_spawn compares what
 * `forkscope run` hands its command with what a plain exec hands it.
 */
#include <stdio.h>
#include <string.h>

int main(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	if (!f) {
		perror("/proc/self/status");
		return 1;
	}
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "SigIgn:", 7) || !strncmp(line, "SigBlk:", 7))
			fputs(line, stdout);
	fclose(f);
	return 0;
}
