/*
 * writer: encodes a stream (header and records) into a growing memory
 * buffer. `forkscope run` writes its runner stream with it; the unit tests
 * build synthetic traces with it. The preload has its own allocation-free
 * encoder; this one may use malloc.
 */
#ifndef FORKSCOPE_WRITER_H
#define FORKSCOPE_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "forkscope/trace.h"

struct writer {
	unsigned char *buf;
	size_t len, cap;
	size_t rec;             /* start of the open record */
	int err;                /* -ENOMEM or -E2BIG happened: output is invalid */
};

void writer_init(struct writer *w);
void writer_free(struct writer *w);

/* Header: magic, version, header_fixed, hdr_size and argc of *h are filled
 * in; the rest is the caller's. */
void writer_header(struct writer *w, const struct fsk_header *h, const char *exe,
		   char *const *argv);

/* A record: begin, put its fixed payload and strings, end (pads to 8 and
 * sets the size). */
void writer_begin(struct writer *w, uint16_t type, uint32_t tid, uint64_t ts_ns);
void writer_put(struct writer *w, const void *p, size_t n);
void writer_str(struct writer *w, const char *s);
void writer_end(struct writer *w);

/* begin + put + end */
void writer_rec(struct writer *w, uint16_t type, uint32_t tid, uint64_t ts_ns,
		const void *payload, size_t n);

/* Writes the buffer to fd and empties it: 0 or -errno. */
int writer_flush(struct writer *w, int fd);

#endif /* FORKSCOPE_WRITER_H */
