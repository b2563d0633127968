/*
 * libother_malloc.so: a malloc that is not glibc's, preloaded after
 * forkscope's library (tests/t_other_malloc.py) as jemalloc or tcmalloc
 * would be: forkscope's hooks then call this one as the real malloc.
 * Every block has pages of its own, right after an inaccessible page (as
 * strace's tests put an object before one): a tracer that reads glibc's
 * chunk header, the word before a block, faults at once. The block's size
 * is in a page of its own before that one:
 *   [size page][PROT_NONE page][block pages ...]
 * free() unmaps the lot. Alignments up to a page; errno as glibc sets it.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096ul

static void *block_new(size_t size)
{
	if (size > (1ul << 40)) {
		errno = ENOMEM;
		return NULL;
	}
	size_t len = 2 * PAGE + ((size + PAGE - 1) & ~(PAGE - 1));
	char *m = mmap(NULL, len ? len : 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	if (mprotect(m + PAGE, PAGE, PROT_NONE) != 0) {
		munmap(m, len);
		errno = ENOMEM;
		return NULL;
	}
	*(size_t *)m = size;
	return m + 2 * PAGE;
}

static size_t block_size(void *p)
{
	return *(size_t *)((char *)p - 2 * PAGE);
}

void *malloc(size_t size)
{
	return block_new(size);
}

void free(void *p)
{
	if (!p)
		return;
	int e = errno;
	size_t size = block_size(p);
	munmap((char *)p - 2 * PAGE, 2 * PAGE + ((size + PAGE - 1) & ~(PAGE - 1)));
	errno = e;
}

void *calloc(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	return block_new(n * size); /* fresh pages are zero */
}

void *realloc(void *old, size_t size)
{
	if (!old)
		return malloc(size);
	if (!size) {
		free(old);
		return NULL;
	}
	void *p = block_new(size);
	if (p) {
		size_t had = block_size(old);
		memcpy(p, old, had < size ? had : size);
		free(old);
	}
	return p;
}

void *reallocarray(void *old, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(old, n * size);
}

static void *aligned(size_t align, size_t size)
{
	if (!align || (align & (align - 1)) || align > PAGE) {
		errno = EINVAL;
		return NULL;
	}
	return block_new(size);
}

void *memalign(size_t align, size_t size)
{
	return aligned(align, size);
}

void *aligned_alloc(size_t align, size_t size)
{
	return aligned(align, size);
}

void *valloc(size_t size)
{
	return block_new(size);
}

void *pvalloc(size_t size)
{
	return block_new((size + PAGE - 1) & ~(PAGE - 1));
}

int posix_memalign(void **out, size_t align, size_t size)
{
	int e = errno;
	void *p = aligned(align, size);
	int r = p ? 0 : errno;
	errno = e;
	if (p)
		*out = p;
	return r;
}

size_t malloc_usable_size(void *p)
{
	return p ? block_size(p) : 0;
}
