/*
 * export: `forkscope export DIR --format chrome|collapsed|massif`, the
 * trace in formats other tools open: Chrome trace-event JSON (Perfetto,
 * chrome://tracing), folded stacks (flamegraph.pl, speedscope, inferno)
 * and valgrind massif's out-file (ms_print, massif-visualizer). The
 * exporters read the model (and the call-stack analysis built on it),
 * never records.
 */
#ifndef FORKSCOPE_EXPORT_H
#define FORKSCOPE_EXPORT_H

#include <stdint.h>
#include <stdio.h>

#include "load.h"

int export_main(int argc, char **argv);
void export_usage(FILE *f);

/* Chrome trace-event JSON of a loaded trace (export.c). */
void export_chrome(FILE *f, const struct load *l);

/* Folded stacks, root first, one "frame;frame;frame N" line per stack:
 * N = bytes allocated (cow = 0) or COW-faulted pages (cow = 1). Each line
 * starts with the process ("cmd [pid]"). Returns 0 or -ENOMEM
 * (export_stacks.c). */
int export_collapsed(FILE *f, const struct load *l, int cow);

/* A massif out-file of the live heap of process pid over time (0: the
 * process with the largest peak). 0, -ENOMEM, or -ESRCH when no such
 * traced process exists. */
int export_massif(FILE *f, const struct load *l, uint32_t pid);

#endif /* FORKSCOPE_EXPORT_H */
