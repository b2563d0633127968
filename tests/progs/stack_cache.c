/*
 * stack_cache: call stacks that a cache of the last stack would get wrong
 * if it trusted the top frame, for tests/t_stack_cache.py. Each case runs
 * long enough in one place for forkscope's per-thread cache to learn the
 * stack, then allocates from a stack that looks the same near the top:
 *
 *   ab      f() called from a() and from b(), frames of the same size, so
 *           f's frame has the same ip, sp and rbp; only the return address
 *           one frame up differs
 *   rec     recursion of varying depth, and the same recursion entered
 *           through rec_w(), a copy of rec(): the same top two frames
 *   vla     leafv() under 3 frames of vr() (alloca), then under 2 with a
 *           bigger alloca in the outer one, so that leafv and the inner vr
 *           have the same ip, sp and rbp and the stale return addresses
 *           of the earlier stack are still in the alloca: only the saved
 *           rbp of the inner vr tells the two stacks apart
 *   signal  a handler allocating on a SIGILL raised by trap1() or trap2()
 *           (same frames): the stack goes through the kernel's signal frame
 *   jump    f() under ja() or jb(), both left by longjmp
 *   threads two threads doing ab and rec at once
 *   churn   80 threads, two at a time, each learning its stacks
 *   fork    a child that repeats ab and rec with the parent's cache
 *
 * Built -O1 like every test program: most of its functions have no frame
 * pointer. It prints, per process, the bytes each call chain allocated:
 *   @ expect pid=P chain=main;a;f bytes=N
 * (the chain: its functions from this file, outermost first). Output is
 * write(2) only.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "../../samples/sample.h"
#include "chains.h"

#define K 300                           /* calls in a row from one stack */

static volatile int g_sink;

static inline void use(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* n blocks of size bytes from one call site, all freed */
__attribute__((noinline)) static void f(int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		void *p = malloc(size);
		use(p);
		free(p);
	}
}

/* ---- ab: same frames, other caller ---- */

__attribute__((noinline)) static void a(int n)
{
	f(n, 24);
	g_sink = 1;
}

__attribute__((noinline)) static void b(int n)
{
	f(n, 24);
	g_sink = 2;
}

__attribute__((noinline)) static void case_ab(const char *root)
{
	char chain[96];
	for (int r = 0; r < 4; r++) {
		a(K);
		b(K);
		a(1);
		b(1);
	}
	snprintf(chain, sizeof(chain), "%s;case_ab;a;f", root);
	expect(chain, 4 * (K + 1) * 24);
	snprintf(chain, sizeof(chain), "%s;case_ab;b;f", root);
	expect(chain, 4 * (K + 1) * 24);
}

/* ---- rec: recursion ---- */

__attribute__((noinline)) static void rec(int d, int n)
{
	if (d) {
		rec(d - 1, n);
		g_sink = d;
		return;
	}
	for (int i = 0; i < n; i++) {
		void *p = malloc(40);
		use(p);
		free(p);
	}
	g_sink = 0;
}

/* rec's twin, line for line: the same frame size, so the rec under it
 * has the frame of the rec under a rec */
__attribute__((noinline)) static void rec_w(int d, int n)
{
	if (d) {
		rec(d - 1, n);
		g_sink = d;
		return;
	}
	for (int i = 0; i < n; i++) {
		void *p = malloc(40);
		use(p);
		free(p);
	}
	g_sink = -1;
}

static void rec_expect(const char *root, const char *top, int d, int n)
{
	char chain[96];
	int len = snprintf(chain, sizeof(chain), "%s;case_rec;%s", root, top);
	for (int i = 0; i < d; i++)
		len += snprintf(chain + len, sizeof(chain) - (size_t)len, ";rec");
	expect(chain, (long)n * 40);
}

__attribute__((noinline)) static void case_rec(const char *root)
{
	static const int depths[] = { 3, 5, 3, 1, 5, 2, 0, 2 };
	for (unsigned i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
		int d = depths[i];
		rec(d, K);
		rec_expect(root, "rec", d, K);
		rec_w(d, K);
		rec_expect(root, "rec_w", d, K);
		rec(d, 1);
		rec_expect(root, "rec", d, 1);
	}
}

/* ---- vla: same frame address under another frame pointer ---- */

static uintptr_t g_leaf_sp;

__attribute__((noinline)) static void leafv(int n)
{
	g_leaf_sp = (uintptr_t)__builtin_frame_address(0);
	for (int i = 0; i < n; i++) {
		void *p = malloc(72);
		use(p);
		free(p);
	}
	g_sink = 3;
}

/* depth frames of vr over leafv, the outermost with len bytes of alloca
 * and the others with 64. The alloca is left unwritten but for its first
 * byte: the return addresses and saved registers of deeper vr frames of
 * an earlier call stay in it, where a check of return addresses alone
 * would find them. */
__attribute__((noinline)) static void vr(int depth, size_t len, int n)
{
	char *buf = __builtin_alloca(len);
	buf[0] = 1;
	use(buf);
	if (depth)
		vr(depth - 1, 64, n);
	else
		leafv(n);
	g_sink = buf[0];
}

__attribute__((noinline)) static void case_vla(void)
{
	/* one call site for all: the frame over the outer vr is the same */
	int depth[2] = { 2, 1 };
	size_t len[2] = { 64, 64 };
	uintptr_t sp[2];
	for (int j = 0; j < 2; j++) {
		vr(depth[j], len[j], 0);
		sp[j] = g_leaf_sp;
	}
	/* one vr frame less: its room goes to the outer alloca */
	len[1] = 64 + (sp[1] - sp[0]);
	for (int j = 1; j < 2; j++)
		vr(depth[j], len[j], 0);
	if (g_leaf_sp != sp[0])
		die("vla: could not put leafv at the same address under 2 and 3 frames of vr");
	for (int r = 0; r < 8; r++)
		vr(depth[r & 1], len[r & 1], K);
	expect("main;case_vla;vr;vr;vr;leafv", 4L * K * 72);
	expect("main;case_vla;vr;vr;leafv", 4L * K * 72);
}

/* ---- signal: a handler's stack through the signal frame ---- */

static void on_ill(int sig, siginfo_t *si, void *uc_)
{
	(void)sig;
	(void)si;
	ucontext_t *uc = uc_;
	for (int i = 0; i < 2; i++) {
		void *p = malloc(56);
		use(p);
		free(p);
	}
	uc->uc_mcontext.gregs[REG_RIP] += 2; /* past the ud2 */
}

__attribute__((noinline)) static void trap1(void)
{
	g_sink = 7; /* the ud2 is not the first instruction: its ip - 1 is trap1 */
	__asm__ volatile("ud2");
	g_sink = 5;
}

__attribute__((noinline)) static void trap2(void)
{
	g_sink = 8;
	__asm__ volatile("ud2");
	g_sink = 6;
}

__attribute__((noinline)) static void case_signal(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_ill;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGILL, &sa, NULL))
		die("sigaction");
	for (int r = 0; r < 6; r++) {
		for (int i = 0; i < 5; i++)
			trap1();
		for (int i = 0; i < 5; i++)
			trap2();
		f(K, 8); /* the cache learns main;f in between */
	}
	expect("main;case_signal;trap1;on_ill", 6 * 5 * 2 * 56);
	expect("main;case_signal;trap2;on_ill", 6 * 5 * 2 * 56);
	expect("main;case_signal;f", 6L * K * 8);
}

/* ---- jump: stacks left by longjmp ---- */

static jmp_buf g_jb;

__attribute__((noinline)) static void ja(int n)
{
	f(n, 88);
	longjmp(g_jb, 1);
}

__attribute__((noinline)) static void jb(int n)
{
	f(n, 88);
	longjmp(g_jb, 2);
}

__attribute__((noinline)) static void case_jump(void)
{
	for (volatile int r = 0; r < 8; r++) {
		if (!setjmp(g_jb))
			(r & 1 ? jb : ja)(K);
	}
	expect("main;case_jump;ja;f", 4L * K * 88);
	expect("main;case_jump;jb;f", 4L * K * 88);
}

/* ---- threads ---- */

__attribute__((noinline)) static void *thread_main(void *arg)
{
	const char *root = arg;
	case_ab(root);
	case_rec(root);
	return NULL;
}

/* More threads, two at a time, than forkscope has cache blocks (64):
 * later ones take the blocks of finished ones. */
__attribute__((noinline)) static void *churn_main(void *arg)
{
	(void)arg;
	for (int r = 0; r < 2; r++) {
		a(K);
		b(K);
	}
	return NULL;
}

__attribute__((noinline)) static void case_churn(void)
{
	for (int i = 0; i < 40; i++) {
		pthread_t t[2];
		for (int j = 0; j < 2; j++)
			if (pthread_create(&t[j], NULL, churn_main, NULL))
				die("pthread_create");
		for (int j = 0; j < 2; j++)
			pthread_join(t[j], NULL);
	}
	expect("churn_main;a;f", 80L * 2 * K * 24);
	expect("churn_main;b;f", 80L * 2 * K * 24);
}

int main(void)
{
	case_ab("main");
	case_rec("main");
	case_vla();
	case_signal();
	case_jump();

	pthread_t t1, t2;
	if (pthread_create(&t1, NULL, thread_main, "thread_main") ||
	    pthread_create(&t2, NULL, thread_main, "thread_main"))
		die("pthread_create");
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	case_churn();

	/* the child starts with the cache of the parent's main thread */
	a(K);
	expect("main;a;f", (long)K * 24);
	expect_say();
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		a(K);
		b(K);
		expect("main;a;f", (long)K * 24);
		expect("main;b;f", (long)K * 24);
		case_rec("main");
		expect_say();
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		die("child failed");
	return 0;
}
