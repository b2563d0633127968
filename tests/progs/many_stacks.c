/* many_stacks: 4096 call stacks, each met twice: main calls one of 16
 * functions a, which calls one of 16 b, which calls one of 16 c, which
 * calls malloc (and main frees the block). Each distinct path is a
 * stack of its own, for the stack tables' page faults (t_stack_faults).
 * Usage: many_stacks [rounds] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void *volatile sink;

#define C(n)                                                      \
	__attribute__((noinline)) static void *c##n(size_t s)    \
	{                                                         \
		void *p = malloc(s + (n));                        \
		sink = p;                                         \
		return p;                                         \
	}
C(0) C(1) C(2) C(3) C(4) C(5) C(6) C(7) C(8) C(9) C(10) C(11) C(12) C(13) C(14) C(15)
static void *(*const cs[16])(size_t) = { c0, c1, c2, c3, c4, c5, c6, c7,
					  c8, c9, c10, c11, c12, c13, c14, c15 };

/* a call through the table from 16 places: each its own return address */
#define CALL16(tab, k, ...)                                               \
	switch ((k) & 15) {                                               \
	case 0: p = tab[0](__VA_ARGS__); break;                           \
	case 1: p = tab[1](__VA_ARGS__); break;                           \
	case 2: p = tab[2](__VA_ARGS__); break;                           \
	case 3: p = tab[3](__VA_ARGS__); break;                           \
	case 4: p = tab[4](__VA_ARGS__); break;                           \
	case 5: p = tab[5](__VA_ARGS__); break;                           \
	case 6: p = tab[6](__VA_ARGS__); break;                           \
	case 7: p = tab[7](__VA_ARGS__); break;                           \
	case 8: p = tab[8](__VA_ARGS__); break;                           \
	case 9: p = tab[9](__VA_ARGS__); break;                           \
	case 10: p = tab[10](__VA_ARGS__); break;                         \
	case 11: p = tab[11](__VA_ARGS__); break;                         \
	case 12: p = tab[12](__VA_ARGS__); break;                         \
	case 13: p = tab[13](__VA_ARGS__); break;                         \
	case 14: p = tab[14](__VA_ARGS__); break;                         \
	default: p = tab[15](__VA_ARGS__); break;                         \
	}

#define B(n)                                                      \
	__attribute__((noinline)) static void *b##n(int k, size_t s) \
	{                                                         \
		void *p;                                          \
		CALL16(cs, k, s + (n))                            \
		sink = p;                                         \
		return p;                                         \
	}
B(0) B(1) B(2) B(3) B(4) B(5) B(6) B(7) B(8) B(9) B(10) B(11) B(12) B(13) B(14) B(15)
static void *(*const bs[16])(int, size_t) = { b0, b1, b2, b3, b4, b5, b6, b7,
					       b8, b9, b10, b11, b12, b13, b14, b15 };

#define A(n)                                                             \
	__attribute__((noinline)) static void *a##n(int j, int k, size_t s) \
	{                                                                \
		void *p;                                                 \
		CALL16(bs, j, k, s + (n))                                \
		sink = p;                                                \
		return p;                                                \
	}
A(0) A(1) A(2) A(3) A(4) A(5) A(6) A(7) A(8) A(9) A(10) A(11) A(12) A(13) A(14) A(15)
static void *(*const as[16])(int, int, size_t) = { a0, a1, a2, a3, a4, a5, a6, a7,
						    a8, a9, a10, a11, a12, a13, a14, a15 };

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 2;
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < 4096; i++) {
			void *p;
			CALL16(as, i >> 8, (i >> 4) & 15, i & 15, 16)
			free(p);
		}
	printf("many_stacks: %d rounds of 4096 stacks\n", rounds);
	return 0;
}
