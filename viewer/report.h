/* report: `forkscope report` and the renderers `run` reuses. */
#ifndef FORKSCOPE_REPORT_H
#define FORKSCOPE_REPORT_H

#include <stdio.h>

#include "load.h"

int report_main(int argc, char **argv);
void report_usage(FILE *f);

/* The process tree with exits, lifetimes, zombies, orphans and malloc
 * totals, then warnings about dropped records and cut streams. */
void report_text(FILE *f, const struct load *l, const char *dir);

/* The address-space layout of the first processes with the ELF sections
 * of each mapping, then every process's region changes (`report` only:
 * too long for `run`'s summary). */
void report_space(FILE *f, const struct load *l);

/* The JSON document of `report --json` (see forkscope(1)). */
void report_json(FILE *f, const struct load *l, const char *dir);

/* Prints load's messages as "forkscope: ..." lines. */
void report_messages(FILE *f, const struct load *l);

/* Sizes and durations in human units: "4.0 KiB", "12 B", "1.5 ms". */
void report_bytes(char *buf, size_t n, uint64_t b);
void report_dur(char *buf, size_t n, uint64_t ns);

/* "exited 3", "killed by SIGSEGV (core dumped)", "exit unknown", ... */
void report_exit_str(const struct model_proc *p, char *buf, size_t n);

#endif /* FORKSCOPE_REPORT_H */
