/*
 * Unit tests of the stream reader, the escaping of trace strings and the
 * live-block table: valid, truncated, cut, corrupt and hostile streams, and
 * a small mutation fuzz run under ASan/UBSan.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "escape.h"
#include "load.h"
#include "reader.h"
#include "report.h"
#include "synth.h"
#include "table.h"

static char *const argv_sh[] = { "sh", "-c", "true", NULL };

/* A small valid stream: header, alloc, free, exit, end. */
static void build_valid(struct writer *w, uint32_t pid)
{
	writer_init(w);
	synth_header(w, pid, 1, 0, 1000, 0, FSK_HF_MALLOC, "/bin/sh", argv_sh);
	synth_alloc(w, 7, 1100, 0x1000, 64, 0);
	synth_free(w, 1200, 0x1000);
	synth_exit(w, 1300, 0, FSK_EXIT_MAIN);
	synth_end(w, 1400, FSK_END_EXIT);
}

/* Reads the whole stream; returns the number of records. */
static int read_all(struct reader_stream *s, const char *dir, const char *name, int finish)
{
	struct reader_rec r;
	int n = 0;

	if (reader_stream_open(s, dir, name) < 0)
		return -1;
	while (reader_next(s, &r) > 0)
		n++;
	if (finish)
		reader_finish(s);
	return n;
}

static void test_names(void)
{
	uint32_t pid = 0, seq = 0;

	synth_check("name_ok", reader_parse_name("123.4.fst", &pid, &seq) == 0 &&
		    pid == 123 && seq == 4, "pid %u seq %u", pid, seq);
	synth_check("name_bad",
		    reader_parse_name("123.fst", &pid, &seq) < 0 &&
		    reader_parse_name("a.0.fst", &pid, &seq) < 0 &&
		    reader_parse_name("1.0.fst.tmp", &pid, &seq) < 0 &&
		    reader_parse_name("99999999999.0.fst", &pid, &seq) < 0 &&
		    reader_parse_name(".0.fst", &pid, &seq) < 0, "a bad name was accepted");
}

static void test_valid(const char *dir)
{
	struct reader_stream s;
	struct writer w;
	char msg[256];
	int n;

	build_valid(&w, 7);
	synth_save(dir, 7, 0, &w, -1);
	n = read_all(&s, dir, "7.0.fst", 1);
	synth_check("valid_records", n == 4, "got %d records", n);
	synth_check("valid_header", s.hdr.pid == 7 && s.argc == 3 && !strcmp(s.exe, "/bin/sh") &&
		    !strcmp(s.argv[2], "true") && s.argv[3] == NULL, "header fields wrong");
	synth_check("valid_eof", s.state == READER_EOF && !reader_message(&s, msg, sizeof(msg)),
		    "state %d", s.state);
	reader_stream_close(&s);
	writer_free(&w);
}

static void test_truncated_header(const char *dir)
{
	struct reader_stream s;
	struct writer w;
	char msg[512], want[512];

	build_valid(&w, 8);
	synth_save(dir, 8, 0, &w, 40);
	read_all(&s, dir, "8.0.fst", 0);
	synth_check("truncated_header_waits", s.state == READER_HEADER, "state %d", s.state);
	reader_finish(&s);
	reader_message(&s, msg, sizeof(msg));
	snprintf(want, sizeof(want), "truncated header: %s/8.0.fst: offset 0", dir);
	synth_check("truncated_header", s.state == READER_CUT && !strcmp(msg, want), "'%s'", msg);
	reader_stream_close(&s);
	writer_free(&w);
}

static void test_cut_record(const char *dir)
{
	struct reader_stream s;
	struct writer w;
	char msg[512], want[512];
	size_t cut;
	int n;

	build_valid(&w, 9);
	cut = w.len - 24 - 16 + 8; /* inside the END record */
	synth_save(dir, 9, 0, &w, (long)cut);
	n = read_all(&s, dir, "9.0.fst", 1);
	reader_message(&s, msg, sizeof(msg));
	snprintf(want, sizeof(want), "stream cut short (record runs past end of file): "
		 "%s/9.0.fst: offset %zu", dir, w.len - 40);
	synth_check("cut_keeps_before", n == 3, "got %d records", n);
	synth_check("cut_reported", s.state == READER_CUT && !strcmp(msg, want), "'%s'", msg);
	reader_stream_close(&s);
	writer_free(&w);
}

/* Overwrites the size of the record at off. */
static void poke16(struct writer *w, size_t off, uint16_t v)
{
	memcpy(w->buf + off, &v, 2);
}

static void test_corrupt_size(const char *dir)
{
	struct reader_stream s;
	struct writer w;
	char msg[512], want[512];
	size_t off;
	int n;

	build_valid(&w, 10);
	off = w.len - 40 - 32; /* the EXIT record */
	poke16(&w, off + 2, 12);
	synth_save(dir, 10, 0, &w, -1);
	n = read_all(&s, dir, "10.0.fst", 1);
	reader_message(&s, msg, sizeof(msg));
	snprintf(want, sizeof(want), "impossible record size 12: %s/10.0.fst: offset %zu", dir, off);
	synth_check("corrupt_keeps_before", n == 2, "got %d records", n);
	synth_check("corrupt_reported", s.state == READER_CORRUPT && !strcmp(msg, want), "'%s'", msg);
	reader_stream_close(&s);
	/* A known type whose size is too small for its payload. */
	poke16(&w, off + 2, 16);
	synth_save(dir, 10, 0, &w, -1);
	n = read_all(&s, dir, "10.0.fst", 1);
	synth_check("corrupt_short_payload", n == 2 && s.state == READER_CORRUPT && s.err_off == off,
		    "n %d state %d off %llu", n, s.state, (unsigned long long)s.err_off);
	reader_stream_close(&s);
	writer_free(&w);
}

static void test_unknown_type(const char *dir)
{
	struct reader_stream s;
	struct reader_rec r;
	struct writer w;
	char junk[40] = "future payload";
	int types[8], n = 0;

	writer_init(&w);
	synth_header(&w, 11, 1, 0, 1000, 0, 0, "/x", argv_sh);
	writer_rec(&w, 999, 1, 1100, junk, sizeof(junk));
	synth_exit(&w, 1200, 5, FSK_EXIT_EXIT);
	synth_save(dir, 11, 0, &w, -1);
	reader_stream_open(&s, dir, "11.0.fst");
	while (n < 8 && reader_next(&s, &r) > 0)
		types[n++] = r.type;
	reader_finish(&s);
	synth_check("unknown_type_skipped", n == 2 && types[0] == 999 && types[1] == FSK_REC_EXIT &&
		    s.state == READER_EOF, "n %d state %d", n, s.state);
	reader_stream_close(&s);
	writer_free(&w);
}

static void test_bad_header(const char *dir)
{
	struct reader_stream s;
	struct writer w;
	uint32_t v;

	build_valid(&w, 12);
	w.buf[0] = 'X';
	synth_save(dir, 12, 0, &w, -1);
	read_all(&s, dir, "12.0.fst", 1);
	synth_check("bad_magic", s.state == READER_CORRUPT && s.err_off == 0, "state %d", s.state);
	reader_stream_close(&s);
	writer_free(&w);

	build_valid(&w, 12);
	w.buf[8] = 99;
	synth_save(dir, 12, 0, &w, -1);
	read_all(&s, dir, "12.0.fst", 1);
	synth_check("bad_version", s.state == READER_CORRUPT && s.err_off == 8 &&
		    strstr(s.err, "version 99"), "'%s'", s.err);
	reader_stream_close(&s);
	writer_free(&w);

	/* argc of four billion must not allocate four billion pointers. */
	build_valid(&w, 12);
	v = 0xffffffffu;
	memcpy(w.buf + offsetof(struct fsk_header, argc), &v, 4);
	synth_save(dir, 12, 0, &w, -1);
	read_all(&s, dir, "12.0.fst", 1);
	synth_check("huge_argc", s.state == READER_CORRUPT, "state %d", s.state);
	reader_stream_close(&s);
	writer_free(&w);

	/* A header bigger than the file is truncated, not a crash. */
	build_valid(&w, 12);
	v = 1u << 20;
	memcpy(w.buf + offsetof(struct fsk_header, hdr_size), &v, 4);
	synth_save(dir, 12, 0, &w, -1);
	read_all(&s, dir, "12.0.fst", 1);
	synth_check("hdr_size_past_eof", s.state == READER_CUT, "state %d", s.state);
	reader_stream_close(&s);
	writer_free(&w);

	/* File name and header disagree. */
	build_valid(&w, 12);
	synth_save(dir, 13, 0, &w, -1);
	read_all(&s, dir, "13.0.fst", 1);
	synth_check("pid_mismatch", s.state == READER_CORRUPT && s.err_off == 16, "state %d", s.state);
	reader_stream_close(&s);
	writer_free(&w);
}

static void test_bad_strings(const char *dir)
{
	static char *const evil[] = { "\x1b]0;pwned\x07", "a\xff\xc0\xafz", "\xc2\x9b" "2J", NULL };
	struct reader_stream s;
	struct writer w;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	uint32_t huge = 1000000000u;
	size_t off;
	int n;

	/* A string length running past its record is corruption there. */
	writer_init(&w);
	synth_header(&w, 14, 1, 0, 1000, 0, 0, "/x", argv_sh);
	off = w.len;
	synth_exec(&w, FSK_REC_EXEC, 1100, 0, 0, "/bin/true", argv_sh);
	memcpy(w.buf + off + 16 + sizeof(struct fsk_exec), &huge, 4);
	synth_save(dir, 14, 0, &w, -1);
	n = read_all(&s, dir, "14.0.fst", 1);
	synth_check("string_past_record", n == 0 && s.state == READER_CORRUPT && s.err_off == off,
		    "n %d state %d", n, s.state);
	reader_stream_close(&s);
	writer_free(&w);

	/* Hostile bytes in argv reach the renderers escaped. */
	writer_init(&w);
	synth_header(&w, 15, 1, 0, 1000, 0, 0, "/evil\x1b[2J", evil);
	synth_exit(&w, 1100, 0, FSK_EXIT_MAIN);
	synth_end(&w, 1200, FSK_END_EXIT);
	synth_save(dir, 15, 0, &w, -1);
	writer_free(&w);
	f = open_memstream(&buf, &len);
	for (int i = 0; evil[i]; i++)
		escape_text(f, evil[i]);
	fclose(f);
	synth_check("text_no_controls", !strchr(buf, 0x1b) && !strchr(buf, 0x07) &&
		    !strstr(buf, "\xc2\x9b") && strstr(buf, "\\x1b]0;pwned\\x07"), "'%s'", buf);
	free(buf);
	f = open_memstream(&buf, &len);
	for (int i = 0; evil[i]; i++)
		escape_json(f, evil[i]);
	fclose(f);
	synth_check("json_escaped", !strcmp(buf, "\"\\u001b]0;pwned\\u0007\"\"a\\ufffd\\ufffd\\ufffdz\""
					    "\"\\u009b2J\""), "'%s'", buf);
	free(buf);
}

/* Reads up to 10 records of dir/<pid>.0.fst into r; returns how many. */
static int read_recs(struct reader_stream *s, const char *dir, uint32_t pid,
		     struct reader_rec *r, struct fsk_alloc *a, struct fsk_free *f)
{
	char name[32];
	int n = 0;

	snprintf(name, sizeof(name), "%u.0.fst", pid);
	if (reader_stream_open(s, dir, name) < 0)
		return -1;
	while (n < 10 && reader_next(s, &r[n]) > 0) {
		reader_payload(&r[n], &a[n], sizeof(a[n]));
		reader_payload(&r[n], &f[n], sizeof(f[n]));
		n++;
	}
	reader_finish(s);
	return n;
}

/* Compact malloc records come out as the ALLOC and FREE they stand for,
 * with the thread and time of their context. */
static void test_compact(const char *dir)
{
	struct reader_stream s;
	struct reader_rec r[10];
	struct fsk_alloc a[10];
	struct fsk_free f[10];
	struct writer w;
	size_t off[4];
	int n;

	writer_init(&w);
	synth_header(&w, 17, 1, 0, 1000, 0, FSK_HF_MALLOC, "/x", argv_sh);
	synth_ctx(&w, FSK_REC_CBASE, 7, 5000);
	off[0] = w.len;
	synth_calloc(&w, 10, 0x1000 | FSK_AF_MMAPPED, 64, 3, FSK_FN_CALLOC);
	synth_ctx(&w, FSK_REC_CBASE, 8, 6000);
	off[1] = w.len;
	synth_cfree(&w, 5, 0x2000);
	synth_ctx(&w, FSK_REC_CTX, 7, 0);
	off[2] = w.len;
	synth_cfree(&w, 0xffffffffu, 0x1000 | FSK_AF_MMAPPED);
	synth_calloc(&w, 20, 0x7f0000000010ull, 0xffffffffu, FSK_CSTACK_MAX, FSK_FN_MALLOC);
	synth_cmalloc(&w, 30, 0xfffffffffff0ull, (1u << FSK_CM_SIZE_BITS) - 1, 1);
	synth_cmalloc(&w, 40, 0x4a0, 24, 0);
	off[3] = w.len;
	synth_exit(&w, 9000, 0, FSK_EXIT_MAIN);
	synth_save(dir, 17, 0, &w, -1);
	n = read_recs(&s, dir, 17, r, a, f);
	synth_check("compact_count", n == 7 && s.state == READER_EOF, "n %d state %d", n, s.state);
	synth_check("compact_alloc", n > 0 && r[0].type == FSK_REC_ALLOC && r[0].tid == 7 &&
		    r[0].ts_ns == 5010 && r[0].off == off[0] && r[0].len == sizeof(struct fsk_alloc) &&
		    a[0].addr == 0x1000 && a[0].size == 64 && a[0].stack == 3 &&
		    a[0].fn == FSK_FN_CALLOC && a[0].flags == FSK_AF_MMAPPED,
		    "type %u tid %u ts %llu addr %llx size %llu stack %u fn %u flags %u",
		    r[0].type, r[0].tid, (unsigned long long)r[0].ts_ns,
		    (unsigned long long)a[0].addr, (unsigned long long)a[0].size, a[0].stack,
		    a[0].fn, a[0].flags);
	synth_check("compact_free", n > 1 && r[1].type == FSK_REC_FREE && r[1].tid == 8 &&
		    r[1].ts_ns == 6005 && r[1].off == off[1] && f[1].addr == 0x2000 &&
		    f[1].fn == FSK_FN_FREE && f[1].flags == 0 && f[1].stack == 0,
		    "type %u tid %u ts %llu addr %llx", r[1].type, r[1].tid,
		    (unsigned long long)r[1].ts_ns, (unsigned long long)f[1].addr);
	synth_check("compact_ctx_switch", n > 2 && r[2].type == FSK_REC_FREE && r[2].tid == 7 &&
		    r[2].ts_ns == 5000 + 0xffffffffull && r[2].off == off[2] &&
		    f[2].addr == 0x1000 && f[2].flags == FSK_AF_MMAPPED,
		    "tid %u ts %llu flags %u", r[2].tid, (unsigned long long)r[2].ts_ns, f[2].flags);
	synth_check("compact_wide_fields", n > 3 && r[3].tid == 7 && r[3].ts_ns == 5020 &&
		    a[3].addr == 0x7f0000000010ull && a[3].size == 0xffffffffull &&
		    a[3].stack == FSK_CSTACK_MAX && a[3].fn == FSK_FN_MALLOC && a[3].flags == 0,
		    "size %llu stack %u fn %u", (unsigned long long)a[3].size, a[3].stack, a[3].fn);
	synth_check("compact_malloc_max", n > 4 && r[4].type == FSK_REC_ALLOC && r[4].tid == 7 &&
		    r[4].ts_ns == 5030 && r[4].len == sizeof(struct fsk_alloc) &&
		    a[4].addr == 0xfffffffffff0ull && a[4].size == (1u << FSK_CM_SIZE_BITS) - 1 &&
		    a[4].stack == 0 && a[4].fn == FSK_FN_MALLOC && a[4].flags == FSK_AF_MMAPPED,
		    "ts %llu addr %llx size %llu fn %u flags %u", (unsigned long long)r[4].ts_ns,
		    (unsigned long long)a[4].addr, (unsigned long long)a[4].size, a[4].fn,
		    a[4].flags);
	synth_check("compact_malloc_small", n > 5 && r[5].ts_ns == 5040 && a[5].addr == 0x4a0 &&
		    a[5].size == 24 && a[5].fn == FSK_FN_MALLOC && a[5].flags == 0,
		    "addr %llx size %llu", (unsigned long long)a[5].addr,
		    (unsigned long long)a[5].size);
	synth_check("compact_then_full", n > 6 && r[6].type == FSK_REC_EXIT && r[6].tid == 1 &&
		    r[6].ts_ns == 9000 && r[6].off == off[3], "type %u", n > 6 ? r[6].type : 0);
	reader_stream_close(&s);

	/* Cut inside the last compact record: what came before stays. */
	synth_save(dir, 17, 0, &w, (long)(off[3] - 8));
	n = read_recs(&s, dir, 17, r, a, f);
	synth_check("compact_cut", n == 5 && s.state == READER_CUT &&
		    s.err_off == off[3] - sizeof(struct fsk_cmalloc), "n %d state %d off %llu",
		    n, s.state, (unsigned long long)s.err_off);
	reader_stream_close(&s);
	writer_free(&w);
}

/* Tiny records (version 3) come out as the ALLOC and FREE they stand for,
 * at the time of their thread's last compact record, kept across thread
 * switches; a copy resumed at one decodes it alike. */
static void test_tiny(const char *dir)
{
	struct reader_stream s, c;
	struct reader_rec r[10], rc;
	struct reader_mark m;
	struct fsk_alloc a[10], ac;
	struct fsk_free f[10];
	struct writer w;
	size_t off[3];
	int n;

	writer_init(&w);
	synth_header(&w, 19, 1, 0, 1000, 0, FSK_HF_MALLOC, "/x", argv_sh);
	synth_ctx(&w, FSK_REC_CBASE, 7, 5000);
	synth_cmalloc(&w, 10, 0x1000, 32, 0);
	off[0] = w.len;
	synth_tiny_malloc(&w, 0x7ffffffffff0ull, (1u << 18) - 1, 1);
	synth_tiny_free(&w, 0x20, 0);
	synth_ctx(&w, FSK_REC_CBASE, 8, 6000);
	synth_cfree(&w, 3, 0x1000);
	synth_ctx(&w, FSK_REC_CTX, 7, 0);
	off[1] = w.len;
	synth_tiny_malloc(&w, 0x4a0, 8191, 0);
	synth_ctx(&w, FSK_REC_CTX, 8, 0);
	off[2] = w.len;
	synth_tiny_free(&w, 0x7f0000001230ull, 1);
	w.buf[8] = 4; /* this layout of tiny records is version 3 and 4's */
	synth_save(dir, 19, 0, &w, -1);
	n = read_recs(&s, dir, 19, r, a, f);
	synth_check("tiny_count", n == 6 && s.state == READER_EOF, "n %d state %d", n, s.state);
	synth_check("tiny_malloc_max", n > 1 && r[1].type == FSK_REC_ALLOC && r[1].tid == 7 &&
		    r[1].ts_ns == 5010 && r[1].off == off[0] && r[1].size == 8 &&
		    r[1].len == sizeof(struct fsk_alloc) && a[1].addr == 0x7ffffffffff0ull &&
		    a[1].size == (1u << 18) - 1 && a[1].stack == 0 && a[1].fn == FSK_FN_MALLOC &&
		    a[1].flags == FSK_AF_MMAPPED,
		    "type %u tid %u ts %llu addr %llx size %llu flags %u", r[1].type, r[1].tid,
		    (unsigned long long)r[1].ts_ns, (unsigned long long)a[1].addr,
		    (unsigned long long)a[1].size, a[1].flags);
	synth_check("tiny_free", n > 2 && r[2].type == FSK_REC_FREE && r[2].tid == 7 &&
		    r[2].ts_ns == 5010 && f[2].addr == 0x20 && f[2].fn == FSK_FN_FREE &&
		    f[2].flags == 0, "type %u ts %llu addr %llx", r[2].type,
		    (unsigned long long)r[2].ts_ns, (unsigned long long)f[2].addr);
	synth_check("tiny_after_switch", n > 5 && r[4].tid == 7 && r[4].ts_ns == 5010 &&
		    r[4].off == off[1] && a[4].addr == 0x4a0 && a[4].size == 8191 &&
		    r[5].type == FSK_REC_FREE && r[5].tid == 8 && r[5].ts_ns == 6003 &&
		    r[5].off == off[2] && f[5].addr == 0x7f0000001230ull &&
		    f[5].flags == FSK_AF_MMAPPED,
		    "tid %u ts %llu size %llu / tid %u ts %llu", r[4].tid,
		    (unsigned long long)r[4].ts_ns, (unsigned long long)a[4].size, r[5].tid,
		    (unsigned long long)r[5].ts_ns);
	reader_stream_close(&s);

	/* a mark taken at the second tiny record, read again from there */
	reader_stream_open(&s, dir, "19.0.fst");
	for (n = 0; n < 3 && reader_next(&s, &r[0]) > 0; n++)
		;
	reader_mark_get(&s, r[0].off, &m);
	reader_stream_resume(&c, &s, &m);
	n = reader_next(&c, &rc);
	reader_payload(&rc, &ac, sizeof(ac));
	synth_check("tiny_resume", n == 1 && rc.type == FSK_REC_FREE && rc.tid == 7 &&
		    rc.ts_ns == 5010 && rc.off == r[0].off, "n %d type %u tid %u ts %llu", n,
		    rc.type, rc.tid, (unsigned long long)rc.ts_ns);
	reader_resume_end(&c);
	reader_stream_close(&s);

	/* cut inside the last tiny record */
	synth_save(dir, 19, 0, &w, (long)(off[2] + 4));
	n = read_recs(&s, dir, 19, r, a, f);
	synth_check("tiny_cut", n == 5 && s.state == READER_CUT && s.err_off == off[2],
		    "n %d state %d off %llu", n, s.state, (unsigned long long)s.err_off);
	reader_stream_close(&s);
	writer_free(&w);
}

/* One damaged compact stream: `what` is the expected message prefix. */
/* Reads `skip` records of dir/name, then the last of them again from its
 * mark in a resumed copy, into *rc and *ac: what reader_next returned. */
static int resume_at(const char *dir, const char *name, int skip, struct reader_rec *rc,
		     struct fsk_alloc *ac)
{
	struct reader_stream s, c;
	struct reader_rec r;
	struct reader_mark m;
	int n;

	reader_stream_open(&s, dir, name);
	for (n = 0; n < skip && reader_next(&s, &r) > 0; n++)
		;
	reader_mark_get(&s, r.off, &m);
	reader_stream_resume(&c, &s, &m);
	n = reader_next(&c, rc);
	memset(ac, 0, sizeof(*ac));
	if (n == 1)
		reader_payload(rc, ac, sizeof(*ac));
	reader_resume_end(&c);
	reader_stream_close(&s);
	return n;
}

/* Version 5 tiny and micro records: each kind, the limits of its fields,
 * addresses and stacks carried per thread across a switch and into a
 * resumed copy, an MPAD, and a cut inside a micro record. */
static void test_tiny5(const char *dir)
{
	struct reader_stream s;
	struct reader_rec r[16], rc;
	struct fsk_alloc a[16], ac;
	struct fsk_free f[16];
	struct writer w;
	size_t off[4];
	int n = 0;

	writer_init(&w);
	synth_header(&w, 21, 1, 0, 1000, 0, FSK_HF_MALLOC, "/x", argv_sh);
	synth_ctx(&w, FSK_REC_CBASE, 7, 5000);
	synth_cmalloc(&w, 10, 0x1000, 32, 0);         /* 0 */
	synth_m_malloc(&w, 4, 100, 0);                  /* 1: 0x1040 */
	synth_m_free(&w, -4);                           /* 2: 0x1000 */
	synth_m_pad(&w);
	synth_calloc(&w, 20, 0x2000, 48, 77, FSK_FN_MALLOC); /* 3 */
	off[0] = w.len;
	synth_m_malloc(&w, 0xffff, 2047, 1);            /* 4: 0x101ff0, stack 77 */
	synth_t5_alloc(&w, -0x100, 4095, 0xfffff, FSK_FN_CALLOC); /* 5: 0x100ff0 */
	synth_ctx(&w, FSK_REC_CBASE, 8, 6000);
	synth_cfree(&w, 3, 0x7f0000001230ull | FSK_AF_MMAPPED); /* 6 */
	synth_ctx(&w, FSK_REC_CTX, 7, 0);
	off[1] = w.len;
	synth_m_malloc(&w, -0x10000, 1, 1);             /* 7: 0xff0, stack 0xfffff */
	synth_ctx(&w, FSK_REC_CTX, 8, 0);
	synth_t5_free(&w, 0x7f0000001230ull, 1);       /* 8 */
	synth_t5_malloc(&w, 0x7ffffffffff0ull, 65535, 1); /* 9 */
	off[2] = w.len;
	synth_m_free(&w, -(1ll << 27));                 /* 10: 0x7fff7ffffff0 */
	synth_m_malloc(&w, 0, 5, 1);                    /* 11: stack 0 (TMALLOC's) */
	synth_ctx(&w, FSK_REC_CTX, 7, 0);
	synth_t5_later(&w, 0x10, (1u << 19) - 1, 2047, 1); /* 12: 0x10f0, stack 0xfffff */
	synth_t5_later(&w, (1ll << 27) - 1, 7, -1, 0);   /* 13: 0x800010e0 */
	off[3] = w.len;
	synth_m_free(&w, 0);                            /* 14 */
	synth_save(dir, 21, 0, &w, -1);
	reader_stream_open(&s, dir, "21.0.fst");
	while (n < 16 && reader_next(&s, &r[n]) > 0) {
		reader_payload(&r[n], &a[n], sizeof(a[n]));
		reader_payload(&r[n], &f[n], sizeof(f[n]));
		n++;
	}
	reader_finish(&s);
	synth_check("t5_count", n == 15 && s.state == READER_EOF, "n %d state %d", n, s.state);
	if (n != 15)
		goto out;
	synth_check("t5_mmalloc", r[1].type == FSK_REC_ALLOC && r[1].tid == 7 && r[1].ts_ns == 5010 &&
		    r[1].size == 4 && a[1].addr == 0x1040 && a[1].size == 100 && a[1].stack == 0 &&
		    a[1].fn == FSK_FN_MALLOC && a[1].flags == 0,
		    "ts %llu size %u addr %llx size %llu", (unsigned long long)r[1].ts_ns, r[1].size,
		    (unsigned long long)a[1].addr, (unsigned long long)a[1].size);
	synth_check("t5_mfree", r[2].type == FSK_REC_FREE && r[2].ts_ns == 5010 &&
		    f[2].addr == 0x1000 && f[2].fn == FSK_FN_FREE, "addr %llx",
		    (unsigned long long)f[2].addr);
	synth_check("t5_mpad", r[3].type == FSK_REC_ALLOC && a[3].addr == 0x2000 && a[3].stack == 77,
		    "type %u addr %llx", r[3].type, (unsigned long long)a[3].addr);
	synth_check("t5_msmalloc", r[4].off == off[0] && r[4].ts_ns == 5020 &&
		    a[4].addr == 0x101ff0 && a[4].size == 2047 && a[4].stack == 77 &&
		    a[4].fn == FSK_FN_MALLOC, "addr %llx size %llu stack %u",
		    (unsigned long long)a[4].addr, (unsigned long long)a[4].size, a[4].stack);
	synth_check("t5_talloc", r[5].size == 8 && a[5].addr == 0x100ff0 && a[5].size == 4095 &&
		    a[5].stack == 0xfffff && a[5].fn == FSK_FN_CALLOC && a[5].flags == 0,
		    "addr %llx size %llu stack %u fn %u", (unsigned long long)a[5].addr,
		    (unsigned long long)a[5].size, a[5].stack, a[5].fn);
	synth_check("t5_after_switch", r[7].off == off[1] && r[7].tid == 7 && r[7].ts_ns == 5020 &&
		    a[7].addr == 0xff0 && a[7].size == 1 && a[7].stack == 0xfffff,
		    "tid %u ts %llu addr %llx stack %u", r[7].tid, (unsigned long long)r[7].ts_ns,
		    (unsigned long long)a[7].addr, a[7].stack);
	synth_check("t5_tfree", r[8].type == FSK_REC_FREE && r[8].tid == 8 && r[8].ts_ns == 6003 &&
		    f[8].addr == 0x7f0000001230ull && f[8].flags == FSK_AF_MMAPPED,
		    "ts %llu addr %llx", (unsigned long long)r[8].ts_ns, (unsigned long long)f[8].addr);
	synth_check("t5_tmalloc", a[9].addr == 0x7ffffffffff0ull && a[9].size == 65535 &&
		    a[9].flags == FSK_AF_MMAPPED && a[9].stack == 0, "addr %llx size %llu",
		    (unsigned long long)a[9].addr, (unsigned long long)a[9].size);
	synth_check("t5_mfree_min", f[10].addr == 0x7fff7ffffff0ull && r[10].off == off[2],
		    "addr %llx", (unsigned long long)f[10].addr);
	synth_check("t5_stack_of_tmalloc", a[11].addr == 0x7fff7ffffff0ull && a[11].stack == 0,
		    "addr %llx stack %u", (unsigned long long)a[11].addr, a[11].stack);
	synth_check("t5_later_malloc", r[12].type == FSK_REC_ALLOC && r[12].tid == 7 &&
		    r[12].size == 8 && r[12].ts_ns == 5020 + (1u << 19) - 1 && a[12].addr == 0x10f0 &&
		    a[12].size == 2047 && a[12].stack == 0xfffff && a[12].fn == FSK_FN_MALLOC,
		    "ts %llu addr %llx size %llu stack %u", (unsigned long long)r[12].ts_ns,
		    (unsigned long long)a[12].addr, (unsigned long long)a[12].size, a[12].stack);
	synth_check("t5_later_free", r[13].type == FSK_REC_FREE && r[13].ts_ns == r[12].ts_ns + 7 &&
		    f[13].addr == 0x800010e0ull && r[14].ts_ns == r[13].ts_ns &&
		    f[14].addr == 0x800010e0ull, "ts %llu addr %llx / ts %llu addr %llx",
		    (unsigned long long)r[13].ts_ns, (unsigned long long)f[13].addr,
		    (unsigned long long)r[14].ts_ns, (unsigned long long)f[14].addr);
	reader_stream_close(&s);

	/* a mark taken at thread 7's second MSMALLOC, read again from there;
	 * and one at the TLATER malloc, whose time counts from before it */
	n = resume_at(dir, "21.0.fst", 8, &rc, &ac);
	synth_check("t5_resume", n == 1 && rc.off == off[1] && rc.tid == 7 && ac.addr == 0xff0 &&
		    ac.stack == 0xfffff, "n %d off %llu addr %llx stack %u", n,
		    (unsigned long long)rc.off, (unsigned long long)ac.addr, ac.stack);
	n = resume_at(dir, "21.0.fst", 13, &rc, &ac);
	synth_check("t5_resume_later", n == 1 && rc.ts_ns == 5020 + (1u << 19) - 1 &&
		    ac.addr == 0x10f0 && ac.stack == 0xfffff, "n %d ts %llu addr %llx stack %u", n,
		    (unsigned long long)rc.ts_ns, (unsigned long long)ac.addr, ac.stack);

	/* cut inside the last micro record */
	synth_save(dir, 21, 0, &w, (long)(off[3] + 2));
	reader_stream_open(&s, dir, "21.0.fst");
	for (n = 0; n < 16 && reader_next(&s, &r[0]) > 0; n++)
		;
	reader_finish(&s);
	synth_check("t5_cut", n == 14 && s.state == READER_CUT && s.err_off == off[3],
		    "n %d state %d off %llu", n, s.state, (unsigned long long)s.err_off);
	reader_stream_close(&s);
out:
	writer_free(&w);
}

/* A stream with records rec (len bytes) after an EXIT and, if ctx, a CTX
 * or CBASE of thread 9 must stop with `what` at the record `at` bytes into
 * rec (at > 0: after one compact record, which is read). */
static void compact_bad_at(const char *dir, const char *name, int ctx, uint16_t ctx_type,
			   const void *rec, size_t len, size_t at, const char *what)
{
	struct reader_stream s;
	struct reader_rec r[10];
	struct fsk_alloc a[10];
	struct fsk_free f[10];
	struct writer w;
	char msg[512], want[512];
	size_t off;
	int n;

	writer_init(&w);
	synth_header(&w, 18, 1, 0, 1000, 0, FSK_HF_MALLOC, "/x", argv_sh);
	synth_exit(&w, 1100, 0, FSK_EXIT_MAIN);
	if (ctx)
		synth_ctx(&w, ctx_type, 9, 2000);
	off = w.len;
	writer_put(&w, rec, len);
	synth_exit(&w, 1200, 0, FSK_EXIT_MAIN);
	synth_save(dir, 18, 0, &w, -1);
	n = read_recs(&s, dir, 18, r, a, f);
	reader_message(&s, msg, sizeof(msg));
	snprintf(want, sizeof(want), "%s: %s/18.0.fst: offset %zu", what, dir, off + at);
	synth_check(name, n == 1 + (at > 0) && s.state == READER_CORRUPT && !strcmp(msg, want),
		    "n %d '%s', want '%s'", n, msg, want);
	reader_stream_close(&s);
	writer_free(&w);
}

static void compact_bad(const char *dir, const char *name, int ctx, uint16_t ctx_type,
			const void *rec, size_t len, const char *what)
{
	compact_bad_at(dir, name, ctx, ctx_type, rec, len, 0, what);
}

static void test_compact_corrupt(const char *dir)
{
	struct fsk_cfree cf = { .h = { FSK_REC_CFREE, sizeof(cf), 1 }, .addr = 0x3000 };
	struct fsk_calloc ca = { .h = { FSK_REC_CALLOC, sizeof(ca), 1 }, .addr = 0x3000, .size = 8,
				 .stack_fn = (uint32_t)FSK_FN_MALLOC << 24 };
	struct fsk_calloc big = { .h = { FSK_REC_CFREE, sizeof(big), 1 }, .addr = 0x3000 };

	compact_bad(dir, "compact_no_context", 0, 0, &cf, sizeof(cf),
		    "compact record before any CTX/CBASE");
	compact_bad(dir, "compact_no_base", 1, FSK_REC_CTX, &cf, sizeof(cf),
		    "compact record of tid 9 before its CBASE");
	compact_bad(dir, "compact_bad_size", 1, FSK_REC_CBASE, &big, sizeof(big),
		    "compact record type 24 with size 24");
	cf.addr = 0x3000 | 0x4;
	compact_bad(dir, "compact_bad_flags", 1, FSK_REC_CBASE, &cf, sizeof(cf),
		    "compact record with unknown address flags");
	ca.stack_fn = (uint32_t)FSK_FN_FREE << 24;
	compact_bad(dir, "compact_bad_fn", 1, FSK_REC_CBASE, &ca, sizeof(ca),
		    "compact alloc with function 10");
	ca.stack_fn = 0;
	compact_bad(dir, "compact_fn_zero", 1, FSK_REC_CBASE, &ca, sizeof(ca),
		    "compact alloc with function 0");
	ca.h.type = FSK_REC_CMALLOC;
	compact_bad(dir, "compact_malloc_bad_size", 1, FSK_REC_CBASE, &ca, sizeof(ca),
		    "compact record type 26 with size 24");
	uint64_t tiny_free = 0x8000 | 0x3000ull << 12, tiny_sized = tiny_free | 0x10;
	compact_bad(dir, "tiny_no_context", 0, 0, &tiny_free, 8,
		    "compact record before any CTX/CBASE");
	compact_bad(dir, "tiny_first", 1, FSK_REC_CBASE, &tiny_free, 8,
		    "tiny record of tid 9 before its first compact record");
	compact_bad(dir, "tiny_free_sized", 1, FSK_REC_CBASE, &tiny_sized, 8,
		    "tiny free with size bits set");
	/* version 5: after a compact record of thread 9 at 0x3000 */
	struct {
		struct fsk_cfree f;
		uint64_t tiny;
	} t5 = { .f = { .h = { FSK_REC_CFREE, sizeof(t5.f), 1 }, .addr = 0x3000 } };
	t5.tiny = 0xf000 | 1 << 16;
	compact_bad_at(dir, "t5_pad_bits", 1, FSK_REC_CBASE, &t5, sizeof(t5.f) + 4,
		    16, "micro pad with bits set");
	t5.tiny = 0xb000 | 1ull << 35;
	compact_bad_at(dir, "t5_later_free_bits", 1, FSK_REC_CBASE, &t5, sizeof(t5), 16,
		       "tiny free with size bits set");
	t5.tiny = 0xa000 | 0x10;
	compact_bad_at(dir, "t5_talloc_fn", 1, FSK_REC_CBASE, &t5, sizeof(t5),
		    16, "tiny alloc with function 0");
	t5.tiny = 0xc000 | (uint32_t)(-0x300 & 0xfff) | (0xffffu << 16);
	compact_bad_at(dir, "t5_delta_zero", 1, FSK_REC_CBASE, &t5, sizeof(t5.f) + 4,
		    16, "tiny record's address delta out of range");
	t5.tiny = 0xc000 | 1u << 16;
	compact_bad(dir, "t5_micro_first", 1, FSK_REC_CBASE, &t5.tiny, 4,
		    "tiny record of tid 9 before its first compact record");
}

/* Version 1 to 3 streams (no compact, no tiny records, a header without
 * stack_table) are still read; later ones not. */
static void test_versions(const char *dir)
{
	struct reader_stream s;
	struct writer w;
	int n;

	build_valid(&w, 19);
	w.buf[8] = 1;
	synth_save(dir, 19, 0, &w, -1);
	n = read_all(&s, dir, "19.0.fst", 1);
	synth_check("version1_read", n == 4 && s.state == READER_EOF, "n %d state %d", n, s.state);
	reader_stream_close(&s);
	w.buf[8] = 2; /* 2: compact records, no tiny ones */
	synth_save(dir, 19, 0, &w, -1);
	n = read_all(&s, dir, "19.0.fst", 1);
	synth_check("version2_read", n == 4 && s.state == READER_EOF, "n %d state %d", n, s.state);
	reader_stream_close(&s);
	/* 3: the header ends before stack_table (80 bytes); the exe string
	 * that follows is not read as one */
	uint16_t fixed = FSK_HEADER_V3;
	uint32_t hdr_size;
	memcpy(&hdr_size, w.buf + offsetof(struct fsk_header, hdr_size), 4);
	memmove(w.buf + FSK_HEADER_V3, w.buf + sizeof(struct fsk_header), w.len - sizeof(struct fsk_header));
	w.len -= sizeof(struct fsk_header) - FSK_HEADER_V3;
	hdr_size -= sizeof(struct fsk_header) - FSK_HEADER_V3;
	memcpy(w.buf + offsetof(struct fsk_header, header_fixed), &fixed, 2);
	memcpy(w.buf + offsetof(struct fsk_header, hdr_size), &hdr_size, 4);
	w.buf[8] = 3;
	synth_save(dir, 19, 0, &w, -1);
	n = read_all(&s, dir, "19.0.fst", 1);
	synth_check("version3_read", n == 4 && s.state == READER_EOF && !s.hdr.stack_table &&
		    !strcmp(s.exe, "/bin/sh"), "n %d state %d table %u", n, s.state, s.hdr.stack_table);
	reader_stream_close(&s);
	/* 4 has stack_table: a header that ends before it is corrupt */
	w.buf[8] = 4;
	synth_save(dir, 19, 0, &w, -1);
	n = read_all(&s, dir, "19.0.fst", 1);
	synth_check("version4_short_header", n == 0 && s.state == READER_CORRUPT && s.err_off == 10,
		    "n %d state %d off %" PRIu64, n, s.state, s.err_off);
	reader_stream_close(&s);
	w.buf[8] = FSK_VERSION + 1;
	synth_save(dir, 19, 0, &w, -1);
	n = read_all(&s, dir, "19.0.fst", 1);
	synth_check("version_next_rejected", n == 0 && s.state == READER_CORRUPT && s.err_off == 8,
		    "n %d state %d", n, s.state);
	reader_stream_close(&s);
	writer_free(&w);
}

/* Records appended after a first read are found from the saved offset. */
static void test_incremental(const char *dir)
{
	struct reader_stream s;
	struct reader_rec r;
	struct writer w;
	size_t half;
	int a = 0, b = 0;

	build_valid(&w, 16);
	half = w.len - 40 - 8; /* cut inside the EXIT record */
	synth_save(dir, 16, 0, &w, (long)half);
	reader_stream_open(&s, dir, "16.0.fst");
	while (reader_next(&s, &r) > 0)
		a++;
	synth_save(dir, 16, 0, &w, -1);
	while (reader_next(&s, &r) > 0)
		b++;
	reader_finish(&s);
	synth_check("incremental", a == 2 && b == 2 && s.state == READER_EOF,
		    "first %d then %d, state %d", a, b, s.state);
	reader_stream_close(&s);
	writer_free(&w);
}

static void test_table(void)
{
	enum { N = 20000 };
	struct table t = { 0 };
	uint64_t *keys = malloc(N * sizeof(*keys)), v;
	int ok = 1;

	for (int i = 0; i < N; i++) {
		keys[i] = ((uint64_t)i * 0x9e3779b97f4a7c15ull) | 1;
		ok &= table_put(&t, keys[i], (uint64_t)i, NULL) == 1;
	}
	for (int i = 0; i < N; i += 2)
		ok &= table_del(&t, keys[i], &v) == 1 && v == (uint64_t)i;
	for (int i = 0; i < N; i++)
		ok &= table_get(&t, keys[i], &v) == (i & 1) && (!(i & 1) || v == (uint64_t)i);
	for (int i = 1; i < N; i += 2)
		ok &= table_del(&t, keys[i], NULL) == 1;
	synth_check("table", ok && t.n == 0 && t.cap <= 64, "n %zu cap %zu", t.n, t.cap);
	table_free(&t);
	free(keys);
}

/* Random byte flips of a valid trace: the loader and both renderers must
 * survive every one (ASan/UBSan turn a crash into a failure). */
static void test_fuzz(const char *dir)
{
	struct writer w;
	FILE *null = fopen("/dev/null", "w");
	unsigned seed = 12345;

	build_valid(&w, 7);
	synth_exec(&w, FSK_REC_SPAWN, 1250, 20, 0, "/bin/echo", argv_sh);
	synth_wait(&w, 1260, 20, FSK_WS_EXITED, 0, 0);
	for (int it = 0; it < 1500; it++) {
		struct writer m = w;
		struct load l;
		char sub[512];

		m.buf = malloc(w.len);
		memcpy(m.buf, w.buf, w.len);
		for (int k = 0; k < 1 + it % 4; k++) {
			seed = seed * 1103515245u + 12345u;
			m.buf[(seed >> 8) % w.len] = (unsigned char)(seed >> 20);
		}
		snprintf(sub, sizeof(sub), "%s/fuzz", dir);
		synth_rmdir(sub);
		mkdir(sub, 0700);
		synth_save(sub, 7, 0, &m, (long)((seed >> 4) % (w.len + 1)));
		if (load_dir(&l, sub) >= 0) {
			report_json(null, &l, sub);
			report_text(null, &l, sub);
		}
		load_free(&l);
		free(m.buf);
	}
	synth_check("fuzz_survives", 1, "");
	fclose(null);
	writer_free(&w);
}

int main(void)
{
	char *dir = synth_dir();

	test_names();
	test_valid(dir);
	test_truncated_header(dir);
	test_cut_record(dir);
	test_corrupt_size(dir);
	test_unknown_type(dir);
	test_bad_header(dir);
	test_bad_strings(dir);
	test_incremental(dir);
	test_compact(dir);
	test_compact_corrupt(dir);
	test_tiny(dir);
	test_tiny5(dir);
	test_versions(dir);
	test_table();
	test_fuzz(dir);
	synth_rmdir(dir);
	free(dir);
	return synth_failed;
}
