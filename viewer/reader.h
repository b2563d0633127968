/*
 * reader: decodes and validates trace streams (include/forkscope/trace.h).
 *
 * A stream is read through a resumable cursor: reader_next() returns the
 * records that are complete in the file now and remembers where it stopped,
 * so the same code serves a finished trace and a directory that is still
 * growing (the live viewer calls reader_dir_poll() and reader_next() again
 * later). Only reader_finish() decides that a partial header or record at
 * the end is a stream cut short rather than one still being written.
 *
 * The reader never trusts the file: every size, count and string length is
 * checked before use, and damage stops the stream at that offset while what
 * came before stays valid.
 */
#ifndef FORKSCOPE_READER_H
#define FORKSCOPE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "forkscope/trace.h"
#include "table.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "forkscope reads little-endian traces on little-endian hosts only"
#endif

#define READER_HDR_MAX (16u << 20) /* larger headers are corrupt */

enum reader_state {
	READER_HEADER,  /* waiting for a complete header */
	READER_RECORDS, /* header decoded; records follow */
	READER_EOF,     /* finished at a record boundary */
	READER_CUT,     /* finished inside a header or record: cut short */
	READER_CORRUPT, /* stopped at damage, see err_off and err */
};

struct reader_stream {
	char *path;             /* dir/name, for messages */
	const char *name;       /* the file name inside path */
	uint32_t pid, seq;      /* from the file name */
	int fd;                 /* -1 while released */
	enum reader_state state;
	struct fsk_header hdr;  /* valid from READER_RECORDS on */
	char *exe;              /* NUL-terminated, raw bytes otherwise */
	char **argv;            /* argc strings, then NULL */
	uint32_t argc;
	uint64_t off;           /* next unread byte: the resume point */
	uint64_t nrecs;         /* records returned so far */
	uint64_t err_off;       /* CORRUPT/CUT: where the damage starts */
	char err[96];           /* CORRUPT: what is wrong */
	unsigned char *buf;     /* window of the file at buf_off */
	size_t buf_cap, buf_len;
	uint64_t buf_off;
	/* compact malloc records: the current thread and each thread's base */
	uint32_t cur_tid;
	int cur_set;            /* a CTX or CBASE was seen */
	int cur_has_base;       /* ... and cur_tid has had a CBASE: cur_base */
	uint64_t cur_base;
	struct table bases;     /* tid + 1 -> its CBASE time */
	/* tiny records: the time of the current thread's last compact record;
	 * other threads' are in lasts (saved when the thread changes) */
	int cur_has_last;
	uint64_t cur_last;
	struct table lasts;     /* tid + 1 -> its last compact record's time */
	/* version 5: the address of the current thread's last compact record
	 * and the stack id of its last compact allocation; other threads'
	 * in laddrs and lstacks, as lasts */
	uint64_t cur_addr;
	uint32_t cur_stack;
	struct table laddrs, lstacks;
	/* cur_last, cur_has_last, cur_addr and cur_stack before the record
	 * reader_next last returned: what a mark of it keeps */
	uint64_t rec_last, rec_addr;
	uint32_t rec_stack;
	int rec_has_last;
	unsigned char cpay[sizeof(struct fsk_alloc)]; /* an expanded payload */
	uint64_t sample_bytes;  /* SAMPLE record (first record): mean N, else 0 */
	uint64_t nctx;          /* CTX records (and CBASE records that change
	                           the thread) consumed so far */
	/* a resumed copy (reader_stream_resume): smaller window, no fd kept
	 * between reads, path borrowed */
	int resumed;
	size_t window;          /* resumed: bytes to read at once */
};

/*
 * Where a record starts and the compact-record context in force there:
 * enough to decode the stream again from that record on, as long as no
 * CTX comes before the reading stops (a CTX looks up bases and last
 * times the copy does not have). merge.c keeps one per run of events.
 */
struct reader_mark {
	uint64_t off;
	uint64_t base;
	uint64_t last;
	uint64_t addr;
	uint32_t stack;
	uint32_t tid;
	uint8_t set, has_base, has_last;
};

/* One record as reader_next() returns it: payload is valid until the next
 * call on the same stream; len = size - 16. */
struct reader_rec {
	uint16_t type;
	uint16_t size;
	uint32_t tid;
	uint64_t ts_ns;
	uint64_t off;           /* file offset of the record header */
	const unsigned char *payload;
	uint32_t len;
};

/* Parses "<pid>.<seq>.fst"; 0 or -EINVAL. */
int reader_parse_name(const char *name, uint32_t *pid, uint32_t *seq);

/* Prepares dir/name for reading; the file is opened and the header decoded
 * by the first reader_next(). 0 or -errno. */
int reader_stream_open(struct reader_stream *s, const char *dir, const char *name);
void reader_stream_close(struct reader_stream *s);

/*
 * Returns 1 with the next complete record in *r, 0 when nothing more is
 * complete now (call again later, or reader_finish()), -1 when the stream
 * stopped at damage (state READER_CORRUPT). Record types the reader does
 * not know are returned too; callers skip them. Compact records come out
 * as the FREE and ALLOC they stand for (r->off and r->size still those of
 * the compact record); CTX and CBASE are consumed here.
 */
int reader_next(struct reader_stream *s, struct reader_rec *r);

/* No more data will come: reads what is left; a partial header or record
 * becomes READER_CUT. Releases the file and buffer. */
void reader_finish(struct reader_stream *s);

/* Closes the file and frees the read buffer but keeps the resume point:
 * a follower of thousands of streams calls it on idle ones. */
void reader_release(struct reader_stream *s);

/* The mark of the record at off that reader_next() just returned. */
void reader_mark_get(const struct reader_stream *s, uint64_t off, struct reader_mark *m);

/* Prepares c to read s again from m (s keeps its path, header and state;
 * c borrows the path). The window is smaller and the file is open only
 * while it is read, so thousands of resumed copies are cheap. Free with
 * reader_resume_end(). */
void reader_stream_resume(struct reader_stream *c, const struct reader_stream *s,
			  const struct reader_mark *m);
void reader_resume_end(struct reader_stream *c);

/* "what: path: offset N" for a CUT or CORRUPT stream; 0 if it is neither. */
int reader_message(const struct reader_stream *s, char *buf, size_t n);

/* Copies a fixed payload struct, zero-filling past the record's end. */
void reader_payload(const struct reader_rec *r, void *out, size_t n);

/*
 * Decodes the fsk_str at *pos of p[0..len) into a malloc'd NUL-terminated
 * copy (NUL bytes inside become '?') and advances *pos past its padding.
 * 0, -EINVAL if it runs past len, -ENOMEM.
 */
int reader_str(const unsigned char *p, uint32_t len, uint32_t *pos, char **out);

/* Decodes n strings at *pos into a malloc'd NULL-terminated array. */
int reader_strv(const unsigned char *p, uint32_t len, uint32_t *pos, uint32_t n,
		char ***out);
void reader_strv_free(char **v);

/* A deep copy of a NULL-terminated array (NULL gives an empty one). */
char **reader_strv_dup(char *const *v);

/* The streams of a trace directory, sorted by (pid, seq). */
struct reader_dir {
	char *path;
	struct reader_stream **streams;
	size_t n, cap;
};

int reader_dir_open(struct reader_dir *d, const char *path);

/* Opens the streams that appeared since the last call; returns how many,
 * or -errno when the directory cannot be read. Pointers to streams stay
 * valid, indexes may shift. */
int reader_dir_poll(struct reader_dir *d);
void reader_dir_close(struct reader_dir *d);

#endif /* FORKSCOPE_READER_H */
