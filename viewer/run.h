/* run: `forkscope run`. */
#ifndef FORKSCOPE_RUN_H
#define FORKSCOPE_RUN_H

#include <stdio.h>
#include <sys/types.h>

struct run_opts {
	const char *dir;
	int force, quiet;
	int malloc_on, faults_on, env_restore;
	unsigned long stack_depth, scan_ms;
	unsigned long sample_bytes;  /* --sample-bytes: 0 = record every call */
};

/* A started run: `run` waits for it at once, `live` while its viewer draws. */
struct run_job {
	struct run_opts o;
	char **cmd;             /* CMD ARGS..., inside the argv given */
	char *dir;              /* absolute trace directory */
	char *lib;
	int fd;                 /* the runner stream */
	int rules_fd;           /* the shared unwind rules (a memfd), or -1 */
	int env_set;            /* our own environment already holds CMD's */
	pid_t pid;              /* CMD */
};

/* argv[0] is "run" and argv[-1] the forkscope binary: the runner stream
 * records the whole command line. */
int run_main(int argc, char **argv);
void run_usage(FILE *f);

/* Parses run's options (argv[0] is the command name; usage prints --help
 * and follows option errors), creates the trace
 * directory and the runner stream and makes us CMD's subreaper. Returns -1
 * when j is ready, else the exit status for the caller (0 after --help, 2
 * after an error that it printed). */
int run_prepare(int argc, char **argv, void (*usage)(FILE *f), struct run_job *j);

/* Forks and execs CMD under the tracer; child (if not NULL) runs first in
 * the child, e.g. to redirect its output. 0, or -1 after a message. */
int run_spawn(struct run_job *j, void (*child)(void *arg), void *arg);

/* Reaps CMD and every orphan until none is left, closes the runner stream
 * and returns CMD's status as an exit status (128+N for signal N). May run
 * in a thread of its own: nothing else may write the runner stream then. */
int run_wait(struct run_job *j);

void run_job_free(struct run_job *j);

#endif /* FORKSCOPE_RUN_H */
