/*
 * forkscope/lost.h: the marker that makes "events are lost" said once per
 * trace, not once per process. The first process of a trace that loses
 * events creates it (O_EXCL) and says so on stderr; every later one finds
 * it and stays quiet. It lives outside the trace directory, which may be
 * full, read-only or gone, under /dev/shm; `forkscope run` removes it
 * before and after the run. Allocation-free: the preload uses it.
 */
#ifndef FORKSCOPE_LOST_H
#define FORKSCOPE_LOST_H

#include <stddef.h>
#include <stdint.h>

#define FSK_LOST_DIR "/dev/shm/"

/* Writes "/dev/shm/forkscope-lost.UID.HASH" (HASH: FNV-1a of the trace
 * directory's path as FORKSCOPE_DIR gives it) into buf; n >= 64. */
static inline void fsk_lost_marker(char *buf, size_t n, uint32_t uid, const char *dir)
{
	static const char pre[] = FSK_LOST_DIR "forkscope-lost.";
	uint64_t h = 14695981039346656037ull;
	for (const char *s = dir; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	char *p = buf, *end = buf + n - 1;
	for (const char *s = pre; *s && p < end; s++)
		*p++ = *s;
	char num[24];
	int k = 0;
	do
		num[k++] = (char)('0' + uid % 10);
	while ((uid /= 10) && k < 23);
	while (k && p < end)
		*p++ = num[--k];
	if (p < end)
		*p++ = '.';
	for (int i = 60; i >= 0 && p < end; i -= 4)
		*p++ = "0123456789abcdef"[(h >> i) & 15];
	*p = 0;
}

#endif
