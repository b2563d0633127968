/*
 * own_alloc: a program with its own malloc, as rustc links jemalloc or a
 * server links tcmalloc: the executable defines malloc, calloc, realloc,
 * free and the aligned ones, which then serve glibc and the dynamic
 * linker too (a thread's TLS comes from this calloc). It maps its memory
 * in 1 MiB chunks with mmap, called while it holds its one lock (a
 * plain, non-recursive mutex), as jemalloc maps a new arena's memory
 * holding its arenas lock.
 *
 * Usage: own_alloc [fork]
 * Sleeps 5 ms, past the youth of a traced image (preload/init.c), then
 * allocates 3 MiB in 48 KiB blocks: the chunks' mmaps are its first
 * records after its youth, and a flusher started from there would call
 * this calloc for its TLS and wait on the lock for ever. Then it starts
 * and joins a thread, frees everything and prints "@ own_alloc chunks=N
 * bytes=B". With "fork", a fork child does all that (young too) and the
 * parent waits for it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *cur, *end;
static unsigned chunks;

/* Each block has its size in the 16 bytes before it. */
static void *carve(size_t size, size_t align)
{
	if (align < 16)
		align = 16;
	if (size > CHUNK / 2 || align > 4096)
		return NULL;
	pthread_mutex_lock(&lock);
	uintptr_t p = ((uintptr_t)cur + 16 + align - 1) & ~(uintptr_t)(align - 1);
	if (!cur || p + size > (uintptr_t)end) {
		/* a new chunk, mapped under the lock */
		void *m = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED) {
			pthread_mutex_unlock(&lock);
			return NULL;
		}
		chunks++;
		cur = m;
		end = cur + CHUNK;
		p = ((uintptr_t)cur + 16 + align - 1) & ~(uintptr_t)(align - 1);
	}
	cur = (char *)(p + size);
	pthread_mutex_unlock(&lock);
	((size_t *)p)[-1] = size;
	return (void *)p;
}

void *malloc(size_t size)
{
	void *p = carve(size, 16);
	if (!p)
		errno = ENOMEM;
	return p;
}

void free(void *p)
{
	(void)p; /* chunks are never given back */
}

void *calloc(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *p = malloc(n * size);
	if (p)
		memset(p, 0, n * size); /* a reused block would need it */
	return p;
}

void *realloc(void *old, size_t size)
{
	void *p = malloc(size);
	if (p && old) {
		size_t had = ((size_t *)old)[-1];
		memcpy(p, old, had < size ? had : size);
	}
	return p;
}

void *memalign(size_t align, size_t size)
{
	return carve(size, align);
}

void *aligned_alloc(size_t align, size_t size)
{
	return carve(size, align);
}

int posix_memalign(void **out, size_t align, size_t size)
{
	void *p = carve(size, align);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

size_t malloc_usable_size(void *p)
{
	return p ? ((size_t *)p)[-1] : 0;
}

static void *touch(void *arg)
{
	char *p = malloc(4096);
	if (p)
		p[0] = 1;
	return arg;
}

static int run(void)
{
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	size_t bytes = 0;
	for (int i = 0; i < 64; i++) {
		char *p = malloc(48 * 1024);
		if (!p)
			return 1;
		p[0] = (char)i;
		bytes += 48 * 1024;
	}
	pthread_t t;
	if (pthread_create(&t, NULL, touch, NULL) || pthread_join(t, NULL))
		return 1;
	char line[80];
	int len = snprintf(line, sizeof(line), "@ own_alloc chunks=%u bytes=%zu\n", chunks, bytes);
	return write(1, line, (size_t)len) == len ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "fork"))
		return run();
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0)
		_exit(run());
	int st;
	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
