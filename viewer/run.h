/* run: `forkscope run`. */
#ifndef FORKSCOPE_RUN_H
#define FORKSCOPE_RUN_H

#include <stdio.h>

/* argv[0] is "run" and argv[-1] the forkscope binary: the runner stream
 * records the whole command line. */
int run_main(int argc, char **argv);
void run_usage(FILE *f);

#endif /* FORKSCOPE_RUN_H */
