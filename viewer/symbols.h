/*
 * symbols: return addresses of a trace's stacks turned into function,
 * file and line, in the viewer, never in the traced process. Each object
 * is opened once (libdwfl over libelf: .symtab, then .dynsym; separate
 * debug files found by build-id under the standard debug directories;
 * DWARF line tables and inlined calls where debug info exists). C++ names
 * (symbols and the linkage names of inlined calls) are demangled once per
 * name where libstdc++ can be loaded (its __cxa_demangle). An object
 * whose build-id on disk differs from the one recorded is not used: its
 * frames stay module+offset and symbols_notes() says why.
 */
#ifndef FORKSCOPE_SYMBOLS_H
#define FORKSCOPE_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>

#include "stacks.h"

#define SYMBOLS_INLINE_MAX 8    /* logical frames one address expands to */

struct symbols_frame {
	uint64_t address;       /* as recorded */
	const char *module;     /* path, or NULL when no module holds it */
	uint64_t offset;        /* address - load bias (the ELF address), or
	                           the address itself without a module */
	const char *function;   /* NULL when unknown */
	const char *file;       /* NULL when unknown */
	int line;               /* 0 when unknown */
};

struct symbols_file;

struct symbols {
	const struct stacks *st;
	struct symbols_file **files;    /* one per object on disk */
	size_t nfiles, fcap;
	size_t *mod_file;               /* stacks module -> file index + 1, 0 = not yet */
	struct table cache;             /* (file, offset) -> frames index << 8 | count */
	struct symbols_frame *frames;   /* cached results, module/address unset */
	size_t nframes, cap;
	char **notes;                   /* "..." lines for the reader */
	size_t nnotes, ncap;
};

int symbols_init(struct symbols *sy, const struct stacks *st);
void symbols_free(struct symbols *sy);

/* The logical frames (innermost inlined call first) of return address k
 * of a stack, at most max; returns how many (at least 1 when max >= 1).
 * Strings stay valid until symbols_free(). */
size_t symbols_frames(struct symbols *sy, size_t stack, uint32_t k,
		      struct symbols_frame *out, size_t max);

#endif /* FORKSCOPE_SYMBOLS_H */
