/*
 * mmap-family hooks. These calls are rare next to malloc, so each record is
 * complete (arguments, result, errno). glibc's malloc maps and unmaps with
 * its internal mmap, which never reaches these hooks: those show up in the
 * ALLOC records' MMAPPED flag and in the address-space scans.
 */
#include <errno.h>
#include <stdarg.h>

#include "fsk.h"

static int map_on(void)
{
	if (unlikely(!real.mmap))
		resolve_all();
	return G.active && !t_guard && !t_vfork_child;
}

/* Records with t_map_hook set: an allocator other than glibc's (jemalloc
 * linked into rustc, tcmalloc, mimalloc) maps and unmaps through these
 * hooks holding its own lock, which starting the flusher would take again
 * (init_flusher_ensure). */
static void rec_map(uint16_t op, const void *addr, size_t len, uint64_t arg, const void *result, int prot,
		    int flags, int fd, int err)
{
	if (op <= FSK_MAP_MREMAP && !err)
		scan_mark(FSK_SCAN_MMAP);
	t_map_hook = 1;
	uint32_t stack = FSK_STACK(0);
	struct fsk_rec *h = emit_reserve(FSK_REC_MAP, sizeof(struct fsk_rec) + sizeof(struct fsk_map),
					 sys_now_ns());
	if (!h) {
		t_map_hook = 0;
		return;
	}
	struct fsk_map *m = (void *)(h + 1);
	m->addr = (uint64_t)addr;
	m->len = len;
	m->arg = arg;
	m->result = (uint64_t)result;
	m->prot = prot;
	m->flags = flags;
	m->fd = fd;
	m->err = err;
	m->stack = stack;
	m->op = op;
	m->pad = 0;
	emit_commit();
	t_map_hook = 0;
}

static void *mmap_common(void *(*fn)(void *, size_t, int, int, int, off_t), void *addr, size_t len,
			 int prot, int flags, int fd, off_t off)
{
	if (unlikely(t_unwinding))
		return unwind_mmap(fn, addr, len, prot, flags, fd, off);
	if (!map_on())
		return fn(addr, len, prot, flags, fd, off);
	t_guard = 1;
	void *r = fn(addr, len, prot, flags, fd, off);
	int err = errno;
	rec_map(FSK_MAP_MMAP, addr, len, (uint64_t)off, r == MAP_FAILED ? NULL : r, prot, flags, fd,
		r == MAP_FAILED ? err : 0);
	t_guard = 0;
	errno = err;
	return r;
}

FSK_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (unlikely(!real.mmap))
		resolve_all();
	return mmap_common(real.mmap, addr, len, prot, flags, fd, off);
}

FSK_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (unlikely(!real.mmap64))
		resolve_all();
	return mmap_common(real.mmap64 ? real.mmap64 : real.mmap, addr, len, prot, flags, fd, off);
}

FSK_EXPORT int munmap(void *addr, size_t len)
{
	if (!map_on())
		return real.munmap(addr, len);
	t_guard = 1;
	int r = real.munmap(addr, len);
	int err = errno;
	rec_map(FSK_MAP_MUNMAP, addr, len, 0, NULL, 0, 0, -1, r < 0 ? err : 0);
	t_guard = 0;
	errno = err;
	return r;
}

FSK_EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	void *new_addr = NULL;
	if (flags & MREMAP_FIXED) {
		va_list ap;
		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	if (!map_on())
		return real.mremap(old, old_len, new_len, flags, new_addr);
	t_guard = 1;
	void *r = real.mremap(old, old_len, new_len, flags, new_addr);
	int err = errno;
	rec_map(FSK_MAP_MREMAP, old, old_len, new_len, r == MAP_FAILED ? NULL : r, 0, flags, -1,
		r == MAP_FAILED ? err : 0);
	t_guard = 0;
	errno = err;
	return r;
}

FSK_EXPORT int mprotect(void *addr, size_t len, int prot)
{
	if (!map_on())
		return real.mprotect(addr, len, prot);
	t_guard = 1;
	int r = real.mprotect(addr, len, prot);
	int err = errno;
	rec_map(FSK_MAP_MPROTECT, addr, len, 0, NULL, prot, 0, -1, r < 0 ? err : 0);
	t_guard = 0;
	errno = err;
	return r;
}

FSK_EXPORT int madvise(void *addr, size_t len, int advice)
{
	if (!map_on())
		return real.madvise(addr, len, advice);
	t_guard = 1;
	int r = real.madvise(addr, len, advice);
	int err = errno;
	rec_map(FSK_MAP_MADVISE, addr, len, (uint64_t)advice, NULL, 0, 0, -1, r < 0 ? err : 0);
	t_guard = 0;
	errno = err;
	return r;
}
