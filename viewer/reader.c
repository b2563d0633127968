/* reader: stream decoding and validation, see reader.h. */
#include "reader.h"
#include "vec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READER_BUF (128u << 10) /* >= FSK_REC_MAX */
#define READER_BUF_RESUMED (32u << 10)

/* Fixed payload bytes each known record type needs before any strings. */
static const uint32_t reader_min_len[FSK_REC_TYPE_COUNT] = {
	[FSK_REC_ALLOC] = sizeof(struct fsk_alloc),
	[FSK_REC_FREE] = sizeof(struct fsk_free),
	[FSK_REC_REALLOC] = sizeof(struct fsk_realloc),
	[FSK_REC_BRK] = sizeof(struct fsk_brk),
	[FSK_REC_MAP] = sizeof(struct fsk_map),
	[FSK_REC_FORK] = sizeof(struct fsk_fork),
	[FSK_REC_SPAWN] = sizeof(struct fsk_exec) + 4,
	[FSK_REC_EXEC] = sizeof(struct fsk_exec) + 4,
	[FSK_REC_EXEC_FAIL] = sizeof(struct fsk_exec_fail),
	[FSK_REC_EXIT] = sizeof(struct fsk_exit),
	[FSK_REC_WAIT] = sizeof(struct fsk_wait),
	[FSK_REC_THREAD] = sizeof(struct fsk_thread),
	[FSK_REC_STACK] = sizeof(struct fsk_stack),
	[FSK_REC_DROPPED] = sizeof(struct fsk_dropped),
	[FSK_REC_NOTE] = sizeof(struct fsk_note) + 4,
	[FSK_REC_END] = sizeof(struct fsk_end),
	[FSK_REC_SCAN] = sizeof(struct fsk_scan),
	[FSK_REC_REGION] = sizeof(struct fsk_region) + 4,
	[FSK_REC_SCAN_END] = sizeof(struct fsk_scan_end),
	[FSK_REC_FAULT] = sizeof(struct fsk_fault),
	[FSK_REC_MODULE] = sizeof(struct fsk_module) + 4,
	/* CTX and CBASE are a bare header; CFREE/CALLOC are checked apart */
};

int reader_parse_name(const char *name, uint32_t *pid, uint32_t *seq)
{
	unsigned long long v[2];
	const char *p = name;

	for (int i = 0; i < 2; i++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v[i] = 0;
		while (*p >= '0' && *p <= '9') {
			v[i] = v[i] * 10 + (unsigned)(*p++ - '0');
			if (v[i] > UINT32_MAX)
				return -EINVAL;
		}
		if (*p++ != '.')
			return -EINVAL;
	}
	if (strcmp(p - 1, FSK_STREAM_SUFFIX) != 0)
		return -EINVAL;
	*pid = (uint32_t)v[0];
	*seq = (uint32_t)v[1];
	return 0;
}

int reader_stream_open(struct reader_stream *s, const char *dir, const char *name)
{
	size_t dl = strlen(dir), nl = strlen(name);

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	if (reader_parse_name(name, &s->pid, &s->seq) < 0)
		return -EINVAL;
	s->path = malloc(dl + nl + 2);
	if (!s->path)
		return -ENOMEM;
	memcpy(s->path, dir, dl);
	s->path[dl] = '/';
	memcpy(s->path + dl + 1, name, nl + 1);
	s->name = s->path + dl + 1;
	return 0;
}

void reader_release(struct reader_stream *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	free(s->buf);
	s->buf = NULL;
	s->buf_cap = s->buf_len = 0;
	s->buf_off = 0;
}

void reader_stream_close(struct reader_stream *s)
{
	reader_release(s);
	free(s->path);
	free(s->exe);
	table_free(&s->bases);
	table_free(&s->lasts);
	table_free(&s->laddrs);
	table_free(&s->lstacks);
	reader_strv_free(s->argv);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

static void reader_corrupt(struct reader_stream *s, uint64_t off, const char *what)
{
	s->state = READER_CORRUPT;
	s->err_off = off;
	snprintf(s->err, sizeof(s->err), "%s", what);
}

/*
 * Makes bytes [off, off+n) available in s->buf; returns a pointer to them,
 * or NULL when the file does not hold them yet (or on a read error, which
 * is reported as corruption).
 */
static const unsigned char *reader_window(struct reader_stream *s, uint64_t off, size_t n)
{
	if (s->buf && off >= s->buf_off && off + n <= s->buf_off + s->buf_len)
		return s->buf + (off - s->buf_off);
	if (s->fd < 0) {
		s->fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (s->fd < 0) {
			char what[80];
			snprintf(what, sizeof(what), "cannot open: %s", strerror(errno));
			reader_corrupt(s, off, what);
			return NULL;
		}
	}
	if (n > s->buf_cap || !s->buf) {
		size_t want = s->resumed ? s->window : READER_BUF;
		size_t cap = n > want ? n : want;
		unsigned char *nb = realloc(s->buf, cap);
		if (!nb) {
			reader_corrupt(s, off, "out of memory");
			return NULL;
		}
		s->buf = nb;
		s->buf_cap = cap;
	}
	s->buf_off = off;
	s->buf_len = 0;
	while (s->buf_len < s->buf_cap) {
		ssize_t r = pread(s->fd, s->buf + s->buf_len, s->buf_cap - s->buf_len,
				  (off_t)(off + s->buf_len));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			reader_corrupt(s, off, strerror(errno));
			return NULL;
		}
		if (r == 0)
			break;
		s->buf_len += (size_t)r;
	}
	if (s->resumed) {
		close(s->fd);
		s->fd = -1;
	}
	return s->buf_len >= n ? s->buf : NULL;
}

/* Skips one fsk_str without copying it: 0, or -1 if it runs past len. */
static int reader_str_skip(const unsigned char *p, uint32_t len, uint32_t *pos)
{
	uint32_t n;

	if (*pos > len || len - *pos < 4)
		return -1;
	memcpy(&n, p + *pos, 4);
	if (n > len - *pos - 4)
		return -1;
	*pos += 4 + n;
	*pos += (4 - (*pos & 3)) & 3;
	if (*pos > len)
		*pos = len; /* padding may be cut by the record's end */
	return 0;
}

int reader_str(const unsigned char *p, uint32_t len, uint32_t *pos, char **out)
{
	uint32_t start = *pos, n;

	*out = NULL;
	if (reader_str_skip(p, len, pos) < 0)
		return -EINVAL;
	memcpy(&n, p + start, 4);
	*out = malloc((size_t)n + 1);
	if (!*out)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		char c = (char)p[start + 4 + i];
		(*out)[i] = c ? c : '?';
	}
	(*out)[n] = 0;
	return 0;
}

int reader_strv(const unsigned char *p, uint32_t len, uint32_t *pos, uint32_t n,
		char ***out)
{
	char **v;

	*out = NULL;
	if (n > len / 4) /* every string needs at least its length word */
		return -EINVAL;
	v = calloc((size_t)n + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		int e = reader_str(p, len, pos, &v[i]);
		if (e < 0) {
			reader_strv_free(v);
			return e;
		}
	}
	*out = v;
	return 0;
}

char **reader_strv_dup(char *const *v)
{
	size_t n = 0;
	char **c;

	while (v && v[n])
		n++;
	c = calloc(n + 1, sizeof(*c));
	if (!c)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		c[i] = strdup(v[i]);
		if (!c[i]) {
			reader_strv_free(c);
			return NULL;
		}
	}
	return c;
}

void reader_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

void reader_payload(const struct reader_rec *r, void *out, size_t n)
{
	size_t k = r->len < n ? r->len : n;

	memcpy(out, r->payload, k);
	memset((char *)out + k, 0, n - k);
}

/* Header: returns 1 when decoded, 0 when incomplete, -1 when corrupt. */
static int reader_header(struct reader_stream *s)
{
	const unsigned char *p = reader_window(s, 0, 16);
	struct fsk_header h;
	uint32_t pos, fixed;

	if (!p)
		return s->state == READER_CORRUPT ? -1 : 0;
	memcpy(&h, p, 16);
	if (memcmp(h.magic, FSK_MAGIC, 8) != 0)
		return reader_corrupt(s, 0, "not a forkscope stream (bad magic)"), -1;
	if (h.version < 1 || h.version > FSK_VERSION) { /* 1 lacks compact records only */
		snprintf(s->err, sizeof(s->err), "unsupported format version %u", h.version);
		s->state = READER_CORRUPT;
		s->err_off = 8;
		return -1;
	}
	if (h.header_fixed < (h.version < 4 ? FSK_HEADER_V3 : sizeof(h)) || h.header_fixed % 8)
		return reader_corrupt(s, 10, "impossible header size"), -1;
	if (h.hdr_size % 8 || h.hdr_size < (uint64_t)h.header_fixed + 4 ||
	    h.hdr_size > READER_HDR_MAX)
		return reader_corrupt(s, 12, "impossible header size"), -1;
	p = reader_window(s, 0, h.hdr_size);
	if (!p)
		return s->state == READER_CORRUPT ? -1 : 0;
	fixed = h.header_fixed < sizeof(h) ? h.header_fixed : sizeof(h);
	memset(&h, 0, sizeof(h)); /* an older header has no stack_table */
	memcpy(&h, p, fixed);
	if (h.pid != s->pid)
		return reader_corrupt(s, 16, "header pid differs from the file name"), -1;
	if (h.seq != s->seq)
		return reader_corrupt(s, 24, "header seq differs from the file name"), -1;
	pos = h.header_fixed;
	if (reader_str(p, h.hdr_size, &pos, &s->exe) < 0)
		return reader_corrupt(s, h.header_fixed, "bad exe string in header"), -1;
	if (reader_strv(p, h.hdr_size, &pos, h.argc, &s->argv) < 0)
		return reader_corrupt(s, pos, "bad argv in header"), -1;
	s->argc = h.argc;
	s->hdr = h;
	s->off = h.hdr_size;
	s->state = READER_RECORDS;
	return 1;
}

/* Checks the strings and arrays a known record carries: 0 or -1. */
static int reader_check_body(const struct reader_rec *r)
{
	uint32_t pos, n;

	switch (r->type) {
	case FSK_REC_SPAWN:
	case FSK_REC_EXEC:
		memcpy(&n, r->payload + offsetof(struct fsk_exec, argc), 4);
		pos = sizeof(struct fsk_exec);
		if (n > r->len / 4 || reader_str_skip(r->payload, r->len, &pos) < 0)
			return -1;
		for (uint32_t i = 0; i < n; i++)
			if (reader_str_skip(r->payload, r->len, &pos) < 0)
				return -1;
		return 0;
	case FSK_REC_NOTE:
		pos = sizeof(struct fsk_note);
		return reader_str_skip(r->payload, r->len, &pos);
	case FSK_REC_REGION:
		pos = sizeof(struct fsk_region);
		return reader_str_skip(r->payload, r->len, &pos);
	case FSK_REC_MODULE:
		pos = sizeof(struct fsk_module);
		return reader_str_skip(r->payload, r->len, &pos);
	case FSK_REC_STACK:
		memcpy(&n, r->payload + offsetof(struct fsk_stack, depth), 4);
		return (uint64_t)n * 8 <= r->len - sizeof(struct fsk_stack) ? 0 : -1;
	default:
		return 0;
	}
}

/* CTX or CBASE makes tid the current thread: the last compact time of the
 * thread it replaces is kept for its next tiny record. A CBASE that
 * changes the thread counts as a CTX (nctx): a resumed copy has no table
 * of last times to look it up in. 1 when the thread changed, 0 when not,
 * -1 on error. */
static int reader_switch(struct reader_stream *s, uint32_t tid)
{
	uint64_t key = (uint64_t)s->cur_tid + 1, v;
	if (s->cur_set && s->cur_tid != tid && s->cur_has_last &&
	    (table_put(&s->lasts, key, s->cur_last, NULL) < 0 ||
	     table_put(&s->laddrs, key, s->cur_addr, NULL) < 0 ||
	     table_put(&s->lstacks, key, s->cur_stack, NULL) < 0)) {
		reader_corrupt(s, s->off, "out of memory");
		return -1;
	}
	int k = !s->cur_set || s->cur_tid != tid;
	if (k) {
		key = (uint64_t)tid + 1;
		s->cur_has_last = table_get(&s->lasts, key, &s->cur_last);
		s->cur_addr = table_get(&s->laddrs, key, &v) ? v : 0;
		s->cur_stack = table_get(&s->lstacks, key, &v) ? (uint32_t)v : 0;
		s->nctx++;
	}
	s->cur_tid = tid;
	s->cur_set = 1;
	return k;
}

/* r becomes the FREE (fn FSK_FN_FREE) or ALLOC of fn that a compact,
 * tiny or micro record of the current thread stands for, at ts; the
 * thread's compact context follows it. */
static inline __attribute__((always_inline)) void reader_expand(struct reader_stream *s,
								 struct reader_rec *r, uint16_t fn,
								 uint64_t addr, uint64_t size,
								 uint32_t stack, uint16_t flags,
								 uint64_t ts)
{
	/* both payloads have no padding: every byte of len is set */
	if (fn == FSK_FN_FREE) {
		struct fsk_free f = { .addr = addr, .fn = FSK_FN_FREE, .flags = flags };
		memcpy(s->cpay, &f, sizeof(f));
		r->type = FSK_REC_FREE;
		r->len = sizeof(f);
	} else {
		struct fsk_alloc a = { .addr = addr, .size = size, .stack = stack, .fn = fn,
				       .flags = flags };
		memcpy(s->cpay, &a, sizeof(a));
		r->type = FSK_REC_ALLOC;
		r->len = sizeof(a);
		s->cur_stack = stack;
	}
	r->tid = s->cur_tid;
	r->payload = s->cpay;
	r->ts_ns = ts;
	s->cur_last = ts;
	s->cur_addr = addr;
	s->cur_has_last = 1;
}

/* A tiny or micro record needs a current thread that had a compact record. */
static int reader_tiny_context(struct reader_stream *s)
{
	char what[80];

	if (!s->cur_set) {
		reader_corrupt(s, s->off, "compact record before any CTX/CBASE");
		return -1;
	}
	if (!s->cur_has_last) {
		snprintf(what, sizeof(what), "tiny record of tid %u before its first compact record",
			 s->cur_tid);
		reader_corrupt(s, s->off, what);
		return -1;
	}
	return 0;
}

/* The version 3-4 tiny record (trace.h) p at s->off: r becomes the FREE or
 * ALLOC it stands for at the time of the thread's last compact record. 1
 * or -1. */
static int reader_tiny(struct reader_stream *s, struct reader_rec *r, const unsigned char *p)
{
	uint64_t w, addr, size;

	memcpy(&w, p, 8);
	addr = (w >> 16 & ((1ull << FSK_TINY_ADDR_BITS) - 1)) << 4;
	size = (w & ((1u << FSK_TINY_SIZE_LOW) - 1)) | (w >> FSK_TINY_SIZE_SHIFT) << FSK_TINY_SIZE_LOW;
	if (!(w & FSK_TINY_MALLOC) && size) {
		reader_corrupt(s, s->off, "tiny free with size bits set");
		return -1;
	}
	if (reader_tiny_context(s) < 0)
		return -1;
	reader_expand(s, r, w & FSK_TINY_MALLOC ? FSK_FN_MALLOC : FSK_FN_FREE, addr, size, 0,
		      w & FSK_TINY_MMAPPED ? FSK_AF_MMAPPED : 0, s->cur_last);
	return 1;
}

/* An address a delta may give: user space, below 2^56 even with 5-level
 * page tables (a CALLOC holds any address, and the next record's delta
 * counts from it). */
#define DELTA_ADDR_BITS 56

/* The n low bits of v as a signed number. */
static int64_t sext(uint64_t v, unsigned n)
{
	return (int64_t)(v << (64 - n)) >> (64 - n);
}

/* An allocation function a CALLOC or TALLOC may name. */
static int compact_fn_ok(uint64_t fn)
{
	return fn >= FSK_FN_MALLOC && fn < FSK_FN_FREE && fn != FSK_FN_REALLOC &&
	       fn != FSK_FN_REALLOCARRAY;
}

/* The version 5 tiny (n 8) or micro (n 4) record p at s->off (trace.h): 1
 * when r is now the FREE or ALLOC it stands for, 0 for an MPAD, -1 on
 * corruption. */
static int reader_tiny5(struct reader_stream *s, struct reader_rec *r, const unsigned char *p,
			uint32_t n)
{
	uint64_t w, addr, size = 0;
	uint32_t stack = 0;
	uint16_t fn = FSK_FN_MALLOC;
	int64_t d;
	char what[80];

	if (n == 4) { /* two fixed-size copies: one of n bytes cost a store-forwarding stall */
		uint32_t u;
		memcpy(&u, p, 4);
		w = u;
	} else {
		memcpy(&w, p, 8);
	}
	unsigned kind = FSK_TKIND(w);
	if (n == 4 && kind == FSK_TK_PAD) {
		if (w == FSK_MPAD)
			return 0;
		reader_corrupt(s, s->off, "micro pad with bits set");
		return -1;
	}
	if (n == 8 && ((kind == FSK_TK_FREE &&
			(w & ((1u << FSK_T5_SIZE_LOW) - 1) || w >> FSK_TINY_SIZE_SHIFT)) ||
		       (kind == FSK_TK_LATER && !(w & FSK_TL_MALLOC) &&
			(w & ((1u << FSK_T5_SIZE_LOW) - 1) || w & FSK_TL_SAME_STACK)))) {
		reader_corrupt(s, s->off, "tiny free with size bits set");
		return -1;
	}
	if (reader_tiny_context(s) < 0)
		return -1;
	if (n == 8 && (kind == FSK_TK_FREE || kind == FSK_TK_MALLOC)) {
		addr = (w >> 16 & ((1ull << FSK_TINY_ADDR_BITS) - 1)) << 4;
		size = (w & ((1u << FSK_T5_SIZE_LOW) - 1)) | (w >> FSK_TINY_SIZE_SHIFT) << FSK_T5_SIZE_LOW;
		reader_expand(s, r, kind == FSK_TK_FREE ? FSK_FN_FREE : FSK_FN_MALLOC, addr, size, 0,
			      w & FSK_T5_MMAPPED ? FSK_AF_MMAPPED : 0, s->cur_last);
		return 1;
	}
	uint64_t ts = s->cur_last;
	if (n == 8 && kind == FSK_TK_LATER) {
		ts += w >> 16 & ((1u << FSK_TL_DT_BITS) - 1);
		d = sext(w >> FSK_TL_DELTA_SHIFT, 64 - FSK_TL_DELTA_SHIFT);
		if (w & FSK_TL_MALLOC) {
			size = w & ((1u << FSK_T5_SIZE_LOW) - 1);
			stack = w & FSK_TL_SAME_STACK ? s->cur_stack : 0;
		} else {
			fn = FSK_FN_FREE;
		}
	} else if (n == 8) { /* TALLOC */
		size = w & ((1u << FSK_T5_ASIZE_BITS) - 1);
		d = sext(w >> 16, FSK_T5_DELTA_BITS);
		stack = (uint32_t)(w >> 40 & ((1u << FSK_T5_STACK_BITS) - 1));
		fn = (uint16_t)(w >> 60);
		if (!compact_fn_ok(fn)) {
			snprintf(what, sizeof(what), "tiny alloc with function %u", fn);
			reader_corrupt(s, s->off, what);
			return -1;
		}
	} else if (kind == FSK_TK_FREE) {
		d = sext((w & 0xfff) | (w >> 16) << 12, FSK_M_FREE_BITS);
		fn = FSK_FN_FREE;
	} else {
		size = w & ((1u << FSK_M_SIZE_BITS) - 1);
		d = sext((w >> 11 & 1) | (w >> 16) << 1, FSK_M_DELTA_BITS);
		stack = kind == FSK_TK_ALLOC ? s->cur_stack : 0;
	}
	addr = s->cur_addr + (uint64_t)d * 16;
	if (!addr || addr >> DELTA_ADDR_BITS) {
		reader_corrupt(s, s->off, "tiny record's address delta out of range");
		return -1;
	}
	reader_expand(s, r, fn, addr, size, stack, 0, ts);
	return 1;
}

/*
 * CTX, CBASE, CFREE, CALLOC, CMALLOC at s->off (r holds its header as read):
 * returns 1 when r is now an expanded FREE/ALLOC, 0 when the record only
 * set context, -1 on corruption (reported at s->off).
 */
static int reader_compact(struct reader_stream *s, struct reader_rec *r)
{
	const unsigned char *p = r->payload - sizeof(struct fsk_rec);
	struct fsk_crec c;
	uint64_t addr, csize = 0;
	char what[80];

	if (r->type == FSK_REC_CTX || r->type == FSK_REC_CBASE) {
		int k = reader_switch(s, r->tid);
		if (k < 0)
			return -1;
		if (r->type == FSK_REC_CTX) {
			s->nctx += !k; /* every CTX counts once */
			s->cur_has_base = table_get(&s->bases, (uint64_t)r->tid + 1, &s->cur_base);
			return 0;
		}
		if (table_put(&s->bases, (uint64_t)r->tid + 1, r->ts_ns, NULL) < 0) {
			reader_corrupt(s, s->off, "out of memory");
			return -1;
		}
		s->cur_has_base = 1;
		s->cur_base = r->ts_ns;
		return 0;
	}
	memcpy(&c, p, sizeof(c));
	if (c.size != (r->type == FSK_REC_CALLOC ? sizeof(struct fsk_calloc)
						 : sizeof(struct fsk_cfree))) {
		snprintf(what, sizeof(what), "compact record type %u with size %u", c.type, c.size);
		reader_corrupt(s, s->off, what);
		return -1;
	}
	if (!s->cur_set) {
		reader_corrupt(s, s->off, "compact record before any CTX/CBASE");
		return -1;
	}
	if (!s->cur_has_base) {
		snprintf(what, sizeof(what), "compact record of tid %u before its CBASE", s->cur_tid);
		reader_corrupt(s, s->off, what);
		return -1;
	}
	memcpy(&addr, p + sizeof(c), 8);
	if (r->type == FSK_REC_CMALLOC) { /* same meaning, CALLOC's layout */
		uint64_t w = addr;
		addr = (w & ((1ull << FSK_CM_ADDR_BITS) - 1)) << 4 |
		       (w & FSK_CM_MMAPPED ? FSK_AF_MMAPPED : 0);
		csize = w >> FSK_CM_ADDR_BITS & ((1ull << FSK_CM_SIZE_BITS) - 1);
	}
	if (addr & FSK_CADDR_FLAGS & ~(uint64_t)FSK_AF_MMAPPED) {
		reader_corrupt(s, s->off, "compact record with unknown address flags");
		return -1;
	}
	uint16_t flags = (uint16_t)(addr & FSK_AF_MMAPPED), fn = FSK_FN_MALLOC;
	uint32_t stack = 0;
	addr &= ~FSK_CADDR_FLAGS;
	if (r->type == FSK_REC_CFREE) {
		fn = FSK_FN_FREE;
	} else if (r->type == FSK_REC_CALLOC) {
		uint32_t sf, sz;
		memcpy(&sz, p + offsetof(struct fsk_calloc, size), 4);
		memcpy(&sf, p + offsetof(struct fsk_calloc, stack_fn), 4);
		csize = sz;
		stack = sf & FSK_CSTACK_MAX;
		fn = (uint16_t)(sf >> 24);
		if (!compact_fn_ok(fn)) {
			snprintf(what, sizeof(what), "compact alloc with function %u", fn);
			reader_corrupt(s, s->off, what);
			return -1;
		}
	}
	reader_expand(s, r, fn, addr, csize, stack, flags, s->cur_base + c.dt_ns);
	return 1;
}

int reader_next(struct reader_stream *s, struct reader_rec *r)
{
	const unsigned char *p;
	struct fsk_rec h;

	if (s->state == READER_HEADER) {
		int e = reader_header(s);
		if (e <= 0)
			return e;
	}
again:
	s->rec_last = s->cur_last;
	s->rec_has_last = s->cur_has_last;
	s->rec_addr = s->cur_addr;
	s->rec_stack = s->cur_stack;
	if (s->state == READER_CORRUPT)
		return -1;
	if (s->state != READER_RECORDS)
		return 0;
	p = reader_window(s, s->off, 4);
	if (!p)
		return s->state == READER_CORRUPT ? -1 : 0;
	memcpy(&h.type, p, sizeof(h.type));
	if ((h.type & FSK_TINY) && s->hdr.version >= 3) {
		uint32_t n = s->hdr.version >= 5 && (h.type & FSK_MICRO) ? 4 : 8;
		p = reader_window(s, s->off, n);
		if (!p)
			return s->state == READER_CORRUPT ? -1 : 0;
		r->type = h.type;
		r->size = (uint16_t)n;
		r->off = s->off;
		int k = s->hdr.version >= 5 ? reader_tiny5(s, r, p, n) : reader_tiny(s, r, p);
		if (k < 0)
			return -1;
		s->off += n;
		if (!k)
			goto again;
		s->nrecs++;
		return 1;
	}
	p = reader_window(s, s->off, sizeof(h));
	if (!p)
		return s->state == READER_CORRUPT ? -1 : 0;
	memcpy(&h, p, sizeof(h));
	if (h.size < sizeof(h) || h.size % 8 || h.size > FSK_REC_MAX) {
		char what[64];
		snprintf(what, sizeof(what), "impossible record size %u", h.size);
		reader_corrupt(s, s->off, what);
		return -1;
	}
	p = reader_window(s, s->off, h.size);
	if (!p)
		return s->state == READER_CORRUPT ? -1 : 0;
	r->type = h.type;
	r->size = h.size;
	r->tid = h.tid;
	r->ts_ns = h.ts_ns;
	r->off = s->off;
	r->payload = p + sizeof(h);
	r->len = h.size - (uint32_t)sizeof(h);
	if (h.type >= FSK_REC_CTX && h.type <= FSK_REC_CMALLOC) {
		int k = reader_compact(s, r);
		if (k < 0)
			return -1;
		s->off += h.size;
		if (k == 0)
			goto again;
		s->nrecs++;
		return 1;
	}
	if (h.type < FSK_REC_TYPE_COUNT) {
		char what[64];
		if (r->len < reader_min_len[h.type]) {
			snprintf(what, sizeof(what), "record type %u too short (size %u)",
				 h.type, h.size);
			reader_corrupt(s, s->off, what);
			return -1;
		}
		if (reader_check_body(r) < 0) {
			snprintf(what, sizeof(what), "record type %u: string or array past its end",
				 h.type);
			reader_corrupt(s, s->off, what);
			return -1;
		}
	}
	if (h.type == FSK_REC_SAMPLE && r->len >= sizeof(struct fsk_sample) && !s->nrecs)
		memcpy(&s->sample_bytes, r->payload, sizeof(s->sample_bytes));
	s->off += h.size;
	s->nrecs++;
	return 1;
}

void reader_finish(struct reader_stream *s)
{
	struct reader_rec r;

	while (reader_next(s, &r) > 0)
		;
	if (s->state == READER_HEADER) {
		s->state = READER_CUT;
		s->err_off = 0;
	}
	/* A clean end is the file ending exactly at a record boundary. */
	if (s->state == READER_RECORDS) {
		s->state = reader_window(s, s->off, 1) ? READER_CUT : READER_EOF;
		s->err_off = s->off;
	}
	reader_release(s);
}

void reader_mark_get(const struct reader_stream *s, uint64_t off, struct reader_mark *m)
{
	m->off = off;
	m->base = s->cur_base;
	m->tid = s->cur_tid;
	m->set = (uint8_t)s->cur_set;
	m->has_base = (uint8_t)s->cur_has_base;
	/* what the record at off decodes with (TLATER and micro records) */
	m->last = s->rec_last;
	m->has_last = (uint8_t)s->rec_has_last;
	m->addr = s->rec_addr;
	m->stack = s->rec_stack;
}

void reader_stream_resume(struct reader_stream *c, const struct reader_stream *s,
			  const struct reader_mark *m)
{
	memset(c, 0, sizeof(*c));
	c->path = s->path;
	c->name = s->name;
	c->pid = s->pid;
	c->seq = s->seq;
	c->fd = -1;
	c->state = READER_RECORDS;
	c->hdr = s->hdr;
	c->off = m->off;
	c->cur_base = m->base;
	c->cur_tid = m->tid;
	c->cur_set = m->set;
	c->cur_has_base = m->has_base;
	c->cur_last = m->last;
	c->cur_has_last = m->has_last;
	c->cur_addr = m->addr;
	c->cur_stack = m->stack;
	c->resumed = 1;
	c->window = READER_BUF_RESUMED;
}

void reader_resume_end(struct reader_stream *c)
{
	reader_release(c);
	table_free(&c->bases);
	table_free(&c->lasts);
	table_free(&c->laddrs);
	table_free(&c->lstacks);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

int reader_message(const struct reader_stream *s, char *buf, size_t n)
{
	const char *what;

	if (s->state == READER_CORRUPT)
		what = s->err;
	else if (s->state == READER_CUT && s->hdr.hdr_size == 0)
		what = "truncated header";
	else if (s->state == READER_CUT)
		what = "stream cut short (record runs past end of file)";
	else
		return 0;
	snprintf(buf, n, "%s: %s: offset %llu", what, s->path,
		 (unsigned long long)s->err_off);
	return 1;
}

static int reader_cmp(const void *a, const void *b)
{
	const struct reader_stream *x = *(struct reader_stream *const *)a;
	const struct reader_stream *y = *(struct reader_stream *const *)b;

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int reader_dir_open(struct reader_dir *d, const char *path)
{
	memset(d, 0, sizeof(*d));
	d->path = strdup(path);
	return d->path ? 0 : -ENOMEM;
}

/* Streams [0, sorted) are in reader_cmp order; those a poll is adding
 * after them are not yet, so they are looked at one by one. */
static int reader_dir_has(const struct reader_dir *d, size_t sorted, uint32_t pid, uint32_t seq)
{
	struct reader_stream key = { .pid = pid, .seq = seq }, *kp = &key;

	if (sorted && bsearch(&kp, d->streams, sorted, sizeof(*d->streams), reader_cmp))
		return 1;
	for (size_t i = sorted; i < d->n; i++)
		if (d->streams[i]->pid == pid && d->streams[i]->seq == seq)
			return 1;
	return 0;
}

int reader_dir_poll(struct reader_dir *d)
{
	DIR *dir = opendir(d->path);
	struct dirent *de;
	size_t old = d->n;
	int e = 0;

	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		uint32_t pid, seq;
		struct reader_stream *s;

		if (reader_parse_name(de->d_name, &pid, &seq) < 0 ||
		    reader_dir_has(d, old, pid, seq))
			continue;
		if (vec_reserve(&d->streams, &d->cap, d->n + 1, sizeof(*d->streams)) < 0) {
			e = -ENOMEM;
			break;
		}
		s = malloc(sizeof(*s));
		if (!s) {
			e = -ENOMEM;
			break;
		}
		if (reader_stream_open(s, d->path, de->d_name) < 0) {
			free(s);
			e = -ENOMEM;
			break;
		}
		d->streams[d->n++] = s;
	}
	closedir(dir);
	if (d->n)
		qsort(d->streams, d->n, sizeof(*d->streams), reader_cmp);
	return e < 0 ? e : (int)(d->n - old);
}

void reader_dir_close(struct reader_dir *d)
{
	for (size_t i = 0; i < d->n; i++) {
		reader_stream_close(d->streams[i]);
		free(d->streams[i]);
	}
	free(d->streams);
	free(d->path);
	memset(d, 0, sizeof(*d));
}
