/*
 * Unit tests of the stream reader, the escaping of trace strings and the
 * live-block table: valid, truncated, cut, corrupt and hostile streams, and
 * a small mutation fuzz run under ASan/UBSan.
 */
#include <errno.h>
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
	test_table();
	test_fuzz(dir);
	synth_rmdir(dir);
	free(dir);
	return synth_failed;
}
