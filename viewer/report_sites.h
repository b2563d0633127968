/* report_sites: the call-stack part of `forkscope report`: allocation
 * sites, peak, leaks and mmap sites per process, symbolized, as text or
 * as the per-process "leaks" and "sites" keys of the JSON report. */
#ifndef FORKSCOPE_REPORT_SITES_H
#define FORKSCOPE_REPORT_SITES_H

#include <stdio.h>

#include "load.h"
#include "sites.h"
#include "symbols.h"

struct report_sites {
	struct sites sites;
	struct symbols sym;
	int ok;                 /* built; else the keys are empty */
};

/* Builds sites and the symbolizer for a loaded trace; on ENOMEM ok = 0. */
void report_sites_init(struct report_sites *rs, const struct load *l);
void report_sites_free(struct report_sites *rs);

/* `"leaks": [...], "sites": {...}` of model process index proc. */
void report_sites_json(FILE *f, struct report_sites *rs, size_t proc);

/* FRAME objects of a stack as a JSON array ([] for STACKS_NONE). */
void report_sites_json_frames(FILE *f, struct report_sites *rs, size_t stack);

/* Per process: peak and its stack, top sites by bytes and by calls, leaks,
 * mmap sites; then what the symbolizer could not do. */
void report_sites_text(FILE *f, struct report_sites *rs, const struct model *m);

/* "func (file:line)" or "module+0xoff" of frame k of a stack into buf
 * (the innermost logical frame of that address). */
void report_sites_frame_str(struct report_sites *rs, size_t stack, uint32_t k, char *buf, size_t n);

#endif /* FORKSCOPE_REPORT_SITES_H */
