/* report_layout: the textbook layout of each process and the ELF sections
 * of its regions, for the text and JSON reports (report_layout.c). */
#ifndef FORKSCOPE_REPORT_LAYOUT_H
#define FORKSCOPE_REPORT_LAYOUT_H

#include <stdio.h>

#include "elfsect.h"
#include "load.h"

struct report_layout {
	struct elfsect es;
};

/* Takes the build-ids of l's MODULE records, so a file changed on disk
 * since the trace names no sections. */
void report_layout_init(struct report_layout *rl, const struct load *l);
void report_layout_free(struct report_layout *rl);

/* The sections in region k of scan s (an anonymous tail after an object:
 * its .bss), at most max in out; returns how many there are. *subkind:
 * "text", "rodata", "data", "bss" or NULL; *why: why an ELF object's
 * sections are unknown, or NULL. */
long report_layout_region(struct report_layout *rl, const struct model_scan *s, size_t k,
			  struct elfsect_hit *out, size_t max, const char **subkind,
			  const char **why);

/* The layout of the first processes, from their last scans. */
void report_layout_text(FILE *f, struct report_layout *rl, const struct model *m);

#endif /* FORKSCOPE_REPORT_LAYOUT_H */
