/*
 * libFuzzer harness over the whole read path: the input becomes one or two
 * stream files of a trace directory, which is loaded (reader + model) and
 * rendered (text and JSON report) exactly as `forkscope report` would,
 * once streamed and once in memory (FORKSCOPE_LOAD_ALL): the JSON and the
 * messages of both must be identical.
 * Built with clang -fsanitize=fuzzer,address,undefined by `make fuzz`.
 *
 * Input layout: byte 0 bit 0 set = split the rest into two streams at the
 * offset byte 1 picks (so parent/child links and cross-stream ordering are
 * exercised); otherwise the rest is a single stream.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load.h"
#include "report.h"

static char g_dir[64];
static FILE *g_null;

static void put(const char *name, const uint8_t *p, size_t n)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		abort();
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			abort();
		p += w;
		n -= (size_t)w;
	}
	close(fd);
}

static void drop(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	unlink(path);
}

/* At exit (libFuzzer's time limit, the end of a replay): the directory
 * goes, not only its files. After a crash tests/fuzz/run.sh removes the
 * directory it gave (FSK_FUZZ_DIR). */
static void cleanup(void)
{
	drop("100.0.fst");
	drop("101.0.fst");
	rmdir(g_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g_dir[0]) {
		const char *base = getenv("FSK_FUZZ_DIR");
		if (!base || !base[0] ||
		    snprintf(g_dir, sizeof(g_dir), "%s/fsk-fuzz-XXXXXX", base) >= (int)sizeof(g_dir))
			snprintf(g_dir, sizeof(g_dir), "%s/fsk-fuzz-XXXXXX",
				 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (!mkdtemp(g_dir))
			abort();
		atexit(cleanup);
		g_null = fopen("/dev/null", "w");
	}
	if (size < 2)
		return 0;
	if (data[0] & 1) {
		size_t cut = 2 + (size - 2) * data[1] / 255;
		put("100.0.fst", data + 2, cut - 2);
		put("101.0.fst", data + cut, size - cut);
	} else {
		put("100.0.fst", data + 1, size - 1);
	}
	/* the streamed load and the in-memory one must say the same */
	char *out[2] = { NULL, NULL };
	size_t len[2] = { 0, 0 };
	for (int all = 0; all < 2; all++) {
		struct load l;
		FILE *f = open_memstream(&out[all], &len[all]);
		if (!f)
			abort();
		if (all)
			setenv("FORKSCOPE_LOAD_ALL", "1", 1);
		else
			unsetenv("FORKSCOPE_LOAD_ALL");
		if (load_dir(&l, g_dir) >= 0) {
			report_text(g_null, &l, g_dir);
			report_json(f, &l, g_dir);
		}
		report_messages(f, &l);
		load_free(&l);
		fclose(f);
	}
	if (len[0] != len[1] || memcmp(out[0], out[1], len[0]))
		abort();
	free(out[0]);
	free(out[1]);
	drop("100.0.fst");
	drop("101.0.fst");
	return 0;
}
