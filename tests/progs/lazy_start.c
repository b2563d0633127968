/*
 * lazy_start: forkscope sets up what an image uses when it first uses it.
 *
 * It opens /dev/null before anything allocates and prints the descriptor
 * it got: the library must not have taken descriptors of the program's by
 * then (libunwind's pipe once did), so a traced and an untraced run print
 * the same line. Then it leaks blocks whose call stacks must still be
 * recorded: 777 bytes from child_leak() in a child forked before anything
 * allocated, 4321 bytes from main_leak() and, from THREADS threads
 * released together, 1000 + i bytes each from thread_leak().
 *   @ fd first=N
 *   @ child pid=N
 *   @ leak func=child_leak bytes=777       (by the child)
 *   @ leak func=main_leak bytes=4321
 *   @ leak func=thread_leak bytes=N      (one line per thread)
 */
#include <fcntl.h>
#include <pthread.h>

#include "../../samples/sample.h"

#define THREADS 4

static pthread_barrier_t s_go;
static void *volatile s_keep[THREADS + 1];

static __attribute__((noinline)) void *main_leak(size_t n)
{
	void *p = malloc(n);
	__asm__ volatile("" ::: "memory"); /* keeps the call from being a tail call */
	return p;
}

static __attribute__((noinline)) void *child_leak(size_t n)
{
	void *p = malloc(n);
	__asm__ volatile("" ::: "memory");
	return p;
}

static __attribute__((noinline)) void *thread_leak(size_t n)
{
	void *p = malloc(n);
	__asm__ volatile("" ::: "memory");
	return p;
}

static void *worker(void *arg)
{
	size_t i = (size_t)arg;
	pthread_barrier_wait(&s_go);
	s_keep[i] = thread_leak(1000 + i);
	return NULL;
}

int main(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open /dev/null");
	at("fd", "first=%d", fd);
	close(fd);
	pid_t pid = xfork();
	if (pid == 0) {
		s_keep[0] = child_leak(777);
		at("leak", "func=child_leak bytes=777");
		_exit(0);
	}
	xwait(pid);
	at("child", "pid=%d", (int)pid);
	s_keep[THREADS] = main_leak(4321);
	at("leak", "func=main_leak bytes=4321");
	pthread_barrier_init(&s_go, NULL, THREADS);
	pthread_t th[THREADS];
	for (size_t i = 0; i < THREADS; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)i) != 0)
			die("pthread_create");
	for (size_t i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	for (size_t i = 0; i < THREADS; i++)
		at("leak", "func=thread_leak bytes=%zu", 1000 + i);
	return 0;
}
