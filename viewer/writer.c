/* writer: see writer.h. */
#include "writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void writer_init(struct writer *w)
{
	memset(w, 0, sizeof(*w));
}

void writer_free(struct writer *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

void writer_put(struct writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	if (w->len + n > w->cap) {
		size_t nc = w->cap ? w->cap : 4096;
		void *nb;
		while (nc < w->len + n)
			nc *= 2;
		nb = realloc(w->buf, nc);
		if (!nb) {
			w->err = -ENOMEM;
			return;
		}
		w->buf = nb;
		w->cap = nc;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void writer_pad(struct writer *w, size_t from, size_t align)
{
	static const unsigned char zero[8];

	writer_put(w, zero, (align - (w->len - from) % align) % align);
}

void writer_str(struct writer *w, const char *s)
{
	size_t n = strlen(s);
	uint32_t len = (uint32_t)n;

	writer_put(w, &len, 4);
	writer_put(w, s, n);
	writer_pad(w, 0, 4);
}

void writer_header(struct writer *w, const struct fsk_header *h, const char *exe,
		   char *const *argv)
{
	struct fsk_header c = *h;
	size_t start = w->len;
	uint32_t argc = 0;

	while (argv && argv[argc])
		argc++;
	memcpy(c.magic, FSK_MAGIC, 8);
	c.version = FSK_VERSION;
	c.header_fixed = sizeof(c);
	c.argc = argc;
	writer_put(w, &c, sizeof(c));
	writer_str(w, exe);
	for (uint32_t i = 0; i < argc; i++)
		writer_str(w, argv[i]);
	writer_pad(w, start, 8);
	c.hdr_size = (uint32_t)(w->len - start);
	if (!w->err)
		memcpy(w->buf + start + offsetof(struct fsk_header, hdr_size), &c.hdr_size, 4);
}

void writer_begin(struct writer *w, uint16_t type, uint32_t tid, uint64_t ts_ns)
{
	struct fsk_rec r = { .type = type, .tid = tid, .ts_ns = ts_ns };

	w->rec = w->len;
	writer_put(w, &r, sizeof(r));
}

void writer_end(struct writer *w)
{
	size_t size;
	uint16_t s16;

	writer_pad(w, w->rec, 8);
	size = w->len - w->rec;
	if (size > FSK_REC_MAX && !w->err)
		w->err = -E2BIG;
	if (w->err)
		return;
	s16 = (uint16_t)size;
	memcpy(w->buf + w->rec + offsetof(struct fsk_rec, size), &s16, 2);
}

void writer_rec(struct writer *w, uint16_t type, uint32_t tid, uint64_t ts_ns,
		const void *payload, size_t n)
{
	writer_begin(w, type, tid, ts_ns);
	writer_put(w, payload, n);
	writer_end(w);
}

int writer_flush(struct writer *w, int fd)
{
	size_t off = 0;

	if (w->err)
		return w->err;
	while (off < w->len) {
		ssize_t k = write(fd, w->buf + off, w->len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		off += (size_t)k;
	}
	w->len = 0;
	return 0;
}
