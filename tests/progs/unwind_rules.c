/*
 * unwind_rules: stacks that test the walk by learnt rules
 * (preload/unwind_cache.c), for tests/t_unwind_rules.py, which runs it
 * with FORKSCOPE_UNWIND_CHECK=1 (every walk compared with unw_backtrace)
 * and checks the chains it prints:
 *
 *   realign  a frame-pointer function that realigns its stack for a
 *            64-byte local, entered at four stack depths: rsp + c and
 *            rbp + 16 both hold at its call site the first time, then
 *            disagree (the rule must keep only rbp + 16)
 *   drap     the same with a VLA too, where gcc may use DRAP (the CFA
 *            read at rbp - 8): such frames are not cacheable
 *   shift    one leaf reached under 1 to 4 frames of two different
 *            functions in turn, so a walk joins the last one at another
 *            position than its own (the kept frames move)
 *   deep     a leaf 40 to 43 frames deep: stacks cut at 32 frames that
 *            join the last walk near their end
 *   threads  two threads doing shift at once
 *   nocfi    leaf called through an assembler function with a frame
 *            pointer but no unwind information: libunwind finds its
 *            caller from rbp; such frames are not learnt (the walk leaves
 *            the stack to unw_backtrace)
 *
 * Built -O1 like every test program. It prints, per process, the bytes
 * each call chain of its own functions allocated (chains.h):
 *   @ expect pid=P chain=main;case_shift;shift_run;s_a;leaf bytes=N
 * Output is write(2) only.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "../../samples/sample.h"
#include "chains.h"
#include "nocfi.h"

#define K 200                           /* calls per shape */

static __attribute__((noinline)) void leaf(size_t n)
{
	void *p = malloc(n);
	if (!p)
		die("malloc");
	*(volatile char *)p = 1;
	free(p);
}

/* ---- realign ---- */

static __attribute__((noinline)) void realigned(int n)
{
	char buf[64] __attribute__((aligned(64)));
	buf[n & 63] = 1;
	__asm__ volatile("" : : "r"(buf) : "memory");
	leaf(16 + (size_t)buf[n & 63]); /* 17 bytes */
	__asm__ volatile("" ::: "memory");
}

/* d frames of 16 more bytes each above fn(n): its entry sp moves */
static __attribute__((noinline)) void pad(int d, void (*fn)(int), int n)
{
	volatile char room[8];
	room[0] = (char)d;
	if (d > 0)
		pad(d - 1, fn, n);
	else
		fn(n);
	__asm__ volatile("" : : "r"(room) : "memory");
}

static void case_realign(void)
{
	for (int i = 0; i < K; i++)
		for (int d = 0; d < 4; d++)
			pad(d, realigned, i);
	for (int d = 0; d < 4; d++) {
		char chain[256] = "main;case_realign";
		for (int k = 0; k <= d; k++)
			strcat(chain, ";pad");
		strcat(chain, ";realigned;leaf");
		expect(chain, (long)K * 17);
	}
}

/* ---- drap ---- */

static __attribute__((noinline)) void drap_fn(int n)
{
	char vla[n + 1];
	char buf[64] __attribute__((aligned(64)));
	memset(vla, 1, (size_t)n + 1);
	buf[n & 63] = vla[n];
	__asm__ volatile("" : : "r"(buf), "r"(vla) : "memory");
	leaf(24 + (size_t)(buf[n & 63] - 1)); /* 24 bytes */
	__asm__ volatile("" ::: "memory");
}

static void case_drap(void)
{
	for (int i = 0; i < K; i++)
		pad(i & 1, drap_fn, 1 + i % 40);
	expect("main;case_drap;pad;drap_fn;leaf", (long)(K / 2) * 24);
	expect("main;case_drap;pad;pad;drap_fn;leaf", (long)(K / 2) * 24);
}

/* ---- shift ---- */

static __attribute__((noinline)) void s_a(int d, size_t n);
static __attribute__((noinline)) void s_b(int d, size_t n)
{
	if (d > 1)
		s_a(d - 1, n);
	else
		leaf(n);
	__asm__ volatile("" ::: "memory");
}

static __attribute__((noinline)) void s_a(int d, size_t n)
{
	if (d > 1)
		s_b(d - 1, n);
	else
		leaf(n);
	__asm__ volatile("" ::: "memory");
}

static void shift_run(const char *root)
{
	for (int i = 0; i < K; i++)
		for (int d = 1; d <= 4; d++)
			(i & 1 ? s_b : s_a)(d, 32 + (size_t)d);
	for (int first = 0; first < 2; first++)
		for (int d = 1; d <= 4; d++) {
			char chain[256];
			snprintf(chain, sizeof(chain), "%s;shift_run", root);
			for (int k = 0; k < d; k++)
				strcat(chain, (k + first) & 1 ? ";s_b" : ";s_a");
			strcat(chain, ";leaf");
			expect(chain, (long)(K / 2) * (32 + d));
		}
}

static void case_shift(void)
{
	shift_run("main;case_shift");
}

/* ---- deep ---- */

static __attribute__((noinline)) void down(int d, size_t n)
{
	if (d > 0)
		down(d - 1, n);
	else
		leaf(n);
	__asm__ volatile("" ::: "memory");
}

static void case_deep(void)
{
	/* 40 to 43 frames of down(): a 32-frame stack holds leaf and 31 of
	 * them, the same chain whatever the depth */
	for (int i = 0; i < K; i++)
		for (int d = 39; d < 43; d++)
			down(d, 48);
	char chain[512] = "";
	for (int k = 0; k < 31; k++)
		strcat(chain, k ? ";down" : "down");
	strcat(chain, ";leaf");
	expect(chain, (long)K * 4 * 48);
}

/* ---- nocfi ---- */


static __attribute__((noinline)) void nocfi_fn(int n)
{
	nocfi_call(leaf, (size_t)n);
	__asm__ volatile("" ::: "memory");
}

static void case_nocfi(void)
{
	for (int i = 0; i < K; i++)
		pad(i & 1, nocfi_fn, 56);
	/* libunwind finds nocfi_call's caller from its rbp, as it keeps one */
	expect("main;case_nocfi;pad;nocfi_fn;nocfi_call;leaf", (long)(K / 2) * 56);
	expect("main;case_nocfi;pad;pad;nocfi_fn;nocfi_call;leaf", (long)(K / 2) * 56);
}

/* ---- threads ---- */

static void *thread_main(void *arg)
{
	(void)arg;
	shift_run("thread_main");
	return NULL;
}

static void case_threads(void)
{
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, thread_main, NULL))
			die("pthread_create");
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
}

int main(void)
{
	case_realign();
	case_drap();
	case_shift();
	case_deep();
	case_threads();
	case_nocfi();
	expect_say();
	return 0;
}
