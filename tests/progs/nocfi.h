/*
 * nocfi.h: nocfi_call(fn, n) calls fn(n) from a frame that keeps a frame
 * pointer but has no unwind information (an assembler function without
 * CFI), for the test programs whose stacks must pass such a frame:
 * libunwind finds its caller from rbp, a walk by the learnt rules cannot
 * (unwind_rules.c, unwind_fork.c).
 */
#ifndef NOCFI_H
#define NOCFI_H
#include <stddef.h>

void nocfi_call(void (*fn)(size_t), size_t n);
__asm__(".text\n"
	".globl nocfi_call\n"
	".type nocfi_call,@function\n"
	"nocfi_call:\n"
	"	push %rbp\n"
	"	mov %rsp, %rbp\n"
	"	mov %rdi, %rax\n"
	"	mov %rsi, %rdi\n"
	"	call *%rax\n"
	"	pop %rbp\n"
	"	ret\n"
	".size nocfi_call, .-nocfi_call\n");
#endif
