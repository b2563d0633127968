/*
 * synth: builds synthetic trace streams for the unit tests with the
 * viewer's writer, and the PASS/FAIL reporting of tests/run.sh.
 */
#ifndef FORKSCOPE_SYNTH_H
#define FORKSCOPE_SYNTH_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "writer.h"

static int synth_failed;

/* One check: "PASS name" or "FAIL name: why". */
static inline void synth_check(const char *name, int ok, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		printf("PASS %s\n", name);
		return;
	}
	synth_failed = 1;
	printf("FAIL %s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static inline char *synth_dir(void)
{
	char tmpl[] = "/tmp/fsk-unit.XXXXXX";
	char *d = mkdtemp(tmpl);

	if (!d) {
		perror("mkdtemp");
		exit(99);
	}
	return strdup(d);
}

static inline void synth_rmdir(const char *dir)
{
	char cmd[1100];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static inline void synth_header(struct writer *w, uint32_t pid, uint32_t ppid, uint32_t seq,
			 uint64_t start, uint64_t parent_start, uint32_t flags,
			 const char *exe, char *const *argv)
{
	struct fsk_header h = {
		.pid = pid, .ppid = ppid, .seq = seq, .page_size = 4096,
		.start_ns = start, .clock_id = 1, .flags = flags,
		.parent_start_ns = parent_start,
	};
	writer_header(w, &h, exe, argv);
}

static inline void synth_fork(struct writer *w, uint64_t ts, uint32_t child, uint16_t side)
{
	struct fsk_fork f = { .child_pid = child, .kind = FSK_FORK, .side = side };
	writer_rec(w, FSK_REC_FORK, 1, ts, &f, sizeof(f));
}

static inline void synth_alloc(struct writer *w, uint32_t tid, uint64_t ts, uint64_t addr,
			uint64_t size, uint16_t flags)
{
	struct fsk_alloc a = { .addr = addr, .size = size, .fn = FSK_FN_MALLOC, .flags = flags };
	writer_rec(w, FSK_REC_ALLOC, tid, ts, &a, sizeof(a));
}

static inline void synth_free(struct writer *w, uint64_t ts, uint64_t addr)
{
	struct fsk_free f = { .addr = addr, .fn = FSK_FN_FREE };
	writer_rec(w, FSK_REC_FREE, 1, ts, &f, sizeof(f));
}

static inline void synth_realloc(struct writer *w, uint64_t ts, uint64_t old, uint64_t new_addr,
			  uint64_t size)
{
	struct fsk_realloc r = { .old_addr = old, .new_addr = new_addr, .size = size,
				 .fn = FSK_FN_REALLOC };
	writer_rec(w, FSK_REC_REALLOC, 1, ts, &r, sizeof(r));
}

static inline void synth_exit(struct writer *w, uint64_t ts, int code, uint16_t how)
{
	struct fsk_exit x = { .code = code, .how = how };
	writer_rec(w, FSK_REC_EXIT, 1, ts, &x, sizeof(x));
}

static inline void synth_wait(struct writer *w, uint64_t ts, int32_t result, uint16_t state,
		       int32_t value, int core)
{
	struct fsk_wait x = { .pid_arg = -1, .result = result, .fn = FSK_WAIT_WAITPID,
			      .state = state, .value = value, .core = (uint8_t)core };
	writer_rec(w, FSK_REC_WAIT, 1, ts, &x, sizeof(x));
}

static inline void synth_end(struct writer *w, uint64_t ts, uint32_t reason)
{
	struct fsk_end e = { .reason = reason };
	writer_rec(w, FSK_REC_END, 1, ts, &e, sizeof(e));
}

static inline void synth_exec(struct writer *w, uint16_t type, uint64_t ts, uint32_t child,
		       uint16_t flags, const char *path, char *const *argv)
{
	struct fsk_exec x = { .child_pid = child, .fn = FSK_EXEC_EXECVE, .flags = flags };

	while (argv[x.argc])
		x.argc++;
	writer_begin(w, type, 1, ts);
	writer_put(w, &x, sizeof(x));
	writer_str(w, path);
	for (uint32_t i = 0; i < x.argc; i++)
		writer_str(w, argv[i]);
	writer_end(w);
}

/* CTX or CBASE: header-only context records of compact malloc records. */
static inline void synth_ctx(struct writer *w, uint16_t type, uint32_t tid, uint64_t ts)
{
	writer_begin(w, type, tid, ts);
	writer_end(w);
}

static inline void synth_cfree(struct writer *w, uint32_t dt, uint64_t addr_flags)
{
	struct fsk_cfree f = { .h = { FSK_REC_CFREE, sizeof(f), dt }, .addr = addr_flags };
	writer_put(w, &f, sizeof(f));
}

static inline void synth_calloc(struct writer *w, uint32_t dt, uint64_t addr_flags, uint32_t size,
				uint32_t stack, uint16_t fn)
{
	struct fsk_calloc a = { .h = { FSK_REC_CALLOC, sizeof(a), dt }, .addr = addr_flags,
				.size = size, .stack_fn = stack | (uint32_t)fn << 24 };
	writer_put(w, &a, sizeof(a));
}

static inline void synth_cmalloc(struct writer *w, uint32_t dt, uint64_t addr, uint32_t size,
				 int mmapped)
{
	struct fsk_cmalloc m = { .h = { FSK_REC_CMALLOC, sizeof(m), dt },
				 .word = addr >> 4 | (uint64_t)size << FSK_CM_ADDR_BITS |
					 (mmapped ? FSK_CM_MMAPPED : 0) };
	writer_put(w, &m, sizeof(m));
}

/* Tiny malloc records (trace.h), laid out here from the bit table. */
static inline void synth_tiny_malloc(struct writer *w, uint64_t addr, uint32_t size, int mmapped)
{
	uint64_t v = 0x8000 | 0x4000 | (mmapped ? 0x2000 : 0) | (size & 0x1fff) |
		     (addr >> 4) << 16 | (uint64_t)(size >> 13) << 59;
	writer_put(w, &v, 8);
}

static inline void synth_tiny_free(struct writer *w, uint64_t addr, int mmapped)
{
	uint64_t v = 0x8000 | (mmapped ? 0x2000 : 0) | (addr >> 4) << 16;
	writer_put(w, &v, 8);
}

/* Version 5 tiny and micro records (trace.h), laid out here from the bit
 * table; d: address delta in units of 16 bytes. */
static inline void synth_t5_free(struct writer *w, uint64_t addr, int mmapped)
{
	uint64_t v = 0x8000 | (mmapped ? 0x800 : 0) | (addr >> 4) << 16;
	writer_put(w, &v, 8);
}

static inline void synth_t5_malloc(struct writer *w, uint64_t addr, uint32_t size, int mmapped)
{
	uint64_t v = 0x8000 | 1 << 12 | (mmapped ? 0x800 : 0) | (size & 0x7ff) | (addr >> 4) << 16 |
		     (uint64_t)(size >> 11) << 59;
	writer_put(w, &v, 8);
}

static inline void synth_t5_alloc(struct writer *w, int64_t d, uint32_t size, uint32_t stack,
				  uint16_t fn)
{
	uint64_t v = 0x8000 | 2 << 12 | size | ((uint64_t)d & 0xffffff) << 16 | (uint64_t)stack << 40 |
		     (uint64_t)fn << 60;
	writer_put(w, &v, 8);
}

/* TLATER: malloc (size, same_stack) or free (size -1), dt ns later */
static inline void synth_t5_later(struct writer *w, int64_t d, uint32_t dt, int32_t size,
				  int same_stack)
{
	uint64_t v = 0x8000 | 3 << 12 | (uint64_t)dt << 16 | (uint64_t)d << 36;
	if (size >= 0)
		v |= 0x800 | (uint32_t)size | (same_stack ? 1ull << 35 : 0);
	writer_put(w, &v, 8);
}

static inline void synth_m_free(struct writer *w, int64_t d)
{
	uint32_t u = 0xc000 | ((uint32_t)d & 0xfff) | ((uint32_t)((uint64_t)d >> 12) & 0xffff) << 16;
	writer_put(w, &u, 4);
}

/* MMALLOC, or MSMALLOC (the previous allocation's stack) when same_stack */
static inline void synth_m_malloc(struct writer *w, int64_t d, uint32_t size, int same_stack)
{
	uint32_t u = 0xc000 | (same_stack ? 2 : 1) << 12 | size | ((uint32_t)d & 1) << 11 |
		     ((uint32_t)((uint64_t)d >> 1) & 0xffff) << 16;
	writer_put(w, &u, 4);
}

static inline void synth_m_pad(struct writer *w)
{
	uint32_t u = 0xf000;
	writer_put(w, &u, 4);
}

/* Writes bytes [0, n) of w (all when n is -1) as dir/<pid>.<seq>.fst. */
static inline void synth_save(const char *dir, uint32_t pid, uint32_t seq, const struct writer *w,
		       long n)
{
	char path[1100];
	int fd;

	snprintf(path, sizeof(path), "%s/%u.%u.fst", dir, pid, seq);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || w->err ||
	    write(fd, w->buf, n < 0 ? w->len : (size_t)n) != (ssize_t)(n < 0 ? w->len : (size_t)n)) {
		perror(path);
		exit(99);
	}
	close(fd);
}

#endif /* FORKSCOPE_SYNTH_H */
