/* Malloc records around lifecycle records: ROUNDS times fork (the child
 * _exits), a malloc of 100000+i right after the fork, a burst of BURST
 * malloc/free pairs (sizes 7000+j) once the child is gone, waitpid, a
 * malloc of 200000+i right after the wait. tests/t_malloc_clock.py checks the order and times of the
 * records in the raw stream. Then HANDS blocks freed by a second thread and
 * BACKS freed by a third and malloc'd again here (back_and_forth), then
 * TAKES the other way round (swapped_roles). Prints "@ counts rounds=R
 * burst=B hands=H backs=K same=S takes=T taken=N" (S, N: mallocs that got
 * back the block the other thread had just freed). Last, SPARSE mallocs of
 * 6000+k bytes (each freed at once) 3 ms apart on one thread, each printed
 * as "@ sparse k=K before=NS after=NS" with CLOCK_MONOTONIC read around
 * the call: a stamp a quiet thread reuses must stay close to its call.
 * Then SLOW mallocs of 6500+k bytes 100 us apart (busy: no sleep), kept
 * until the last, printed as "@ slow k=K before=NS after=NS": a thread
 * that records that slowly reuses no stamp.
 *
 * `malloc_clock pingpong N` runs two threads at once instead: first each
 * makes N bursts of PP_BURST malloc/free pairs of its own (8100+j bytes),
 * then N rounds of a burst and a block of 520+k%20 bytes handed to the
 * other thread through a queue; each frees what it is handed, and its next
 * malloc of that size mostly gets the other's block back out of its
 * tcache. Prints "@ pingpong rounds=N crossed=C" (C: mallocs that got a
 * block this thread had just freed for the other). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HANDS 200
#define BACKS 300 /* blocks freed by the second thread and malloc'd again */
#define BACK_BURST 20
#define TAKES 40 /* the same with the roles swapped: a worker mallocs */
#define TAKE_BURST 300
#define SPARSE 30
#define SLOW 40

static int to_b[2], to_a[2];

/* The second thread: frees what the main thread hands it, after mallocs
 * of its own, and says when it is done. */
static void *freer(void *arg)
{
	(void)arg;
	char *p;
	while (read(to_b[0], &p, sizeof(p)) == (ssize_t)sizeof(p)) {
		for (int j = 0; j < 50; j++)
			free(malloc(9000 + (size_t)j));
		free(p);
		char ok = 1;
		if (write(to_a[1], &ok, 1) != 1)
			break;
	}
	return NULL;
}

/* n malloc/free pairs of base + j % sizes bytes. */
static void burst(size_t base, int n, int sizes)
{
	volatile char sink = 0;
	for (int j = 0; j < n; j++) {
		char *p = malloc(base + (size_t)(j % sizes));
		p[0] = (char)j;
		sink = (char)(sink + p[0]);
		free(p);
	}
}

/* The third thread: frees what the main thread hands it, nothing else,
 * so its free is its only record. */
static void *returner(void *arg)
{
	(void)arg;
	char *p;
	while (read(to_b[0], &p, sizeof(p)) == (ssize_t)sizeof(p)) {
		free(p);
		char ok = 1;
		if (write(to_a[1], &ok, 1) != 1)
			break;
	}
	return NULL;
}

/* BACKS times: a burst of BACK_BURST malloc/free pairs (4000+j bytes), a
 * malloc of 5000 bytes handed to the returner, which frees it (too large
 * for its tcache: back to the main arena), then a malloc of 5000 here,
 * which mostly gets the same address: its record must sort after the
 * other thread's free. */
static int back_and_forth(void)
{
	pthread_t th;
	if (pipe(to_b) < 0 || pipe(to_a) < 0 || pthread_create(&th, NULL, returner, NULL) != 0)
		return -1;
	int same = 0;
	for (int k = 0; k < BACKS; k++) {
		burst(4000, BACK_BURST, BACK_BURST);
		char *x = malloc(5000), ok;
		x[0] = 1;
		if (write(to_b[1], &x, sizeof(x)) != (ssize_t)sizeof(x) || read(to_a[0], &ok, 1) != 1)
			return -1;
		char *y = malloc(5000);
		y[0] = 2;
		same += y == x;
		free(y);
	}
	close(to_b[1]);
	pthread_join(th, NULL);
	close(to_b[0]);
	close(to_a[0]);
	close(to_a[1]);
	return same;
}

/* The worker of swapped_roles: TAKES times, after 1.5 ms in which the
 * main thread writes nothing (so the worker may take the clock from it)
 * and a burst of TAKE_BURST pairs (4100+j bytes), a malloc of 5001 bytes
 * handed to the main thread, which frees it, then a malloc of 5001 here.
 * Returns how many of those got the block back. */
static void *taker(void *arg)
{
	(void)arg;
	long same = 0;
	for (int k = 0; k < TAKES; k++) {
		usleep(1500);
		burst(4100, TAKE_BURST, 20);
		char *x = malloc(5001), ok;
		x[0] = 1;
		if (write(to_a[1], &x, sizeof(x)) != (ssize_t)sizeof(x) || read(to_b[0], &ok, 1) != 1)
			return (void *)-1l;
		char *y = malloc(5001);
		y[0] = 2;
		same += y == x;
		free(y);
	}
	close(to_a[1]);
	return (void *)same;
}

/* back_and_forth with the roles swapped: the main thread only frees. */
static int swapped_roles(void)
{
	pthread_t th;
	void *ret;
	char *p, ok = 1;
	if (pipe(to_b) < 0 || pipe(to_a) < 0 || pthread_create(&th, NULL, taker, NULL) != 0)
		return -1;
	while (read(to_a[0], &p, sizeof(p)) == (ssize_t)sizeof(p)) {
		free(p);
		if (write(to_b[1], &ok, 1) != 1)
			return -1;
	}
	pthread_join(th, &ret);
	return (int)(long)ret;
}

#define PP_BURST 40
#define PP_QUEUE 64

static struct pp_queue {
	pthread_mutex_t m;
	char *slot[PP_QUEUE];
	int n;
} pp_q[2] = { { PTHREAD_MUTEX_INITIALIZER, { 0 }, 0 }, { PTHREAD_MUTEX_INITIALIZER, { 0 }, 0 } };
static pthread_barrier_t pp_start;
static long pp_rounds;

static int pp_push(struct pp_queue *q, char *p)
{
	pthread_mutex_lock(&q->m);
	int ok = q->n < PP_QUEUE;
	if (ok)
		q->slot[q->n++] = p;
	pthread_mutex_unlock(&q->m);
	return ok;
}

static char *pp_pop(struct pp_queue *q)
{
	pthread_mutex_lock(&q->m);
	char *p = q->n ? q->slot[--q->n] : NULL;
	pthread_mutex_unlock(&q->m);
	return p;
}

static void *pp_thread(void *arg)
{
	int me = (int)(long)arg;
	long crossed = 0;
	char *freed[8] = { 0 };
	unsigned nf = 0;
	pthread_barrier_wait(&pp_start);
	for (long k = 0; k < pp_rounds; k++)
		burst(8100, PP_BURST, 20);
	pthread_barrier_wait(&pp_start);
	for (long k = 0; k < pp_rounds; k++) {
		burst(8100, PP_BURST, 20);
		char *x = malloc(520 + (size_t)(k % 20)), *y;
		x[0] = 1;
		for (int i = 0; i < 8; i++)
			crossed += x == freed[i];
		if (!pp_push(&pp_q[!me], x))
			free(x);
		while ((y = pp_pop(&pp_q[me]))) {
			freed[nf++ % 8] = y; /* compared as an address only */
			free(y);
		}
	}
	return (void *)crossed;
}

static int pingpong(long rounds)
{
	pthread_t th[2];
	void *ret[2];
	char *p;
	pp_rounds = rounds;
	pthread_barrier_init(&pp_start, NULL, 2);
	for (long i = 0; i < 2; i++)
		if (pthread_create(&th[i], NULL, pp_thread, (void *)i) != 0)
			return 1;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], &ret[i]);
	for (int i = 0; i < 2; i++)
		while ((p = pp_pop(&pp_q[i])))
			free(p);
	printf("@ pingpong rounds=%ld crossed=%ld\n", rounds, (long)ret[0] + (long)ret[1]);
	return 0;
}

static unsigned long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (unsigned long long)t.tv_sec * 1000000000ull + (unsigned long long)t.tv_nsec;
}

/* SPARSE mallocs 3 ms apart, each timed (see the top). */
static int sparse(void)
{
	static unsigned long long before[SPARSE], after[SPARSE];
	struct timespec gap = { 0, 3000000 };
	for (int k = 0; k < SPARSE; k++) {
		nanosleep(&gap, NULL);
		before[k] = now_ns();
		char *p = malloc(6000 + (size_t)k);
		after[k] = now_ns();
		if (!p)
			return -1;
		p[0] = 1;
		free(p);
	}
	for (int k = 0; k < SPARSE; k++) /* printed after: stdio allocates */
		printf("@ sparse k=%d before=%llu after=%llu\n", k, before[k], after[k]);
	return 0;
}

/* SLOW mallocs 100 us apart, each timed (see the top). */
static int slow(void)
{
	static unsigned long long before[SLOW], after[SLOW];
	static char *kept[SLOW];
	for (int k = 0; k < SLOW; k++) {
		unsigned long long until = now_ns() + 100000;
		while (now_ns() < until)
			;
		before[k] = now_ns();
		kept[k] = malloc(6500 + (size_t)k);
		after[k] = now_ns();
		if (!kept[k])
			return -1;
		kept[k][0] = 1;
	}
	for (int k = 0; k < SLOW; k++)
		free(kept[k]);
	for (int k = 0; k < SLOW; k++)
		printf("@ slow k=%d before=%llu after=%llu\n", k, before[k], after[k]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "pingpong"))
		return pingpong(atol(argv[2]));
	int rounds = argc > 1 ? atoi(argv[1]) : 100;
	int burst = argc > 2 ? atoi(argv[2]) : 500;
	volatile char sink = 0;

	for (int i = 0; i < rounds; i++) {
		int fds[2];
		if (pipe(fds) < 0)
			return 1;
		pid_t pid = fork();
		if (pid == 0)
			_exit(i & 7);
		close(fds[1]);
		char *a = malloc(100000 + (size_t)i);
		char c;
		while (read(fds[0], &c, 1) > 0) /* EOF: the child is exiting */
			;
		close(fds[0]);
		/* the burst ends right before the WAIT: its last stamps are
		 * within a few microseconds of the clock the WAIT reads */
		for (int j = 0; j < burst; j++) {
			char *p = malloc(7000 + (size_t)j);
			p[0] = (char)j;
			sink = (char)(sink + p[0]);
			free(p);
		}
		int st;
		waitpid(pid, &st, 0);
		char *b = malloc(200000 + (size_t)i);
		a[0] = b[0] = 1;
		free(a);
		free(b);
	}
	pthread_t th;
	if (pipe(to_b) < 0 || pipe(to_a) < 0 || pthread_create(&th, NULL, freer, NULL) != 0)
		return 1;
	for (int k = 0; k < HANDS; k++) {
		char *p = malloc(300000 + (size_t)k), ok;
		p[0] = 1;
		if (write(to_b[1], &p, sizeof(p)) != (ssize_t)sizeof(p) || read(to_a[0], &ok, 1) != 1)
			return 1;
	}
	close(to_b[1]);
	pthread_join(th, NULL);
	close(to_b[0]);
	close(to_a[0]);
	close(to_a[1]);
	int same = back_and_forth();
	int taken = same < 0 ? -1 : swapped_roles();
	if (taken < 0 || sparse() < 0 || slow() < 0)
		return 1;
	printf("@ counts rounds=%d burst=%d hands=%d backs=%d same=%d takes=%d taken=%d\n", rounds,
	       burst, HANDS, BACKS, same, TAKES, taken);
	return 0;
}
