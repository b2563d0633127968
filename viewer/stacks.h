/*
 * stacks: the call stacks and loaded modules a trace recorded (STACK and
 * MODULE records), gathered per stream before any analysis uses them.
 * Stack ids are unique within one stream only, and threads flush their
 * buffers independently, so a record may be read before the STACK it names:
 * resolving only after every stream's records are in makes order moot.
 * A stack is then one index across the whole trace (STACKS_NONE: none).
 * Ids are shared by a stack group (a stream and the fork children that
 * share its table, trace.h "Stack ids"), and a fork child's stream
 * inherits the modules of its parent's.
 */
#ifndef FORKSCOPE_STACKS_H
#define FORKSCOPE_STACKS_H

#include <stddef.h>
#include <stdint.h>

#include "load.h"
#include "table.h"

#define STACKS_NONE ((size_t)-1)

struct stacks_module {
	char *path;
	uint64_t base, bias;
	uint8_t build_id[20];
	uint32_t build_id_len;
};

struct stacks_stack {
	const unsigned char *ips;       /* depth little-endian uint64 return
	                                   addresses, innermost first (payload
	                                   owned by the load; an exact one's
	                                   own copy) */
	uint32_t depth;
	int exact;                      /* the address itself (a faulting
	                                   instruction), not a return address */
	int owned;                      /* ips is our own copy (exact ones, and
	                                   stacks without forkscope's frames) */
	size_t stream;                  /* index in stacks.streams */
	uint32_t id;                    /* its STACK id, 0 for an exact one */
};

struct stacks_stream {
	const struct reader_stream *s;
	size_t parent;                  /* index of the stream it inherits
	                                   from, or STACKS_NONE */
	size_t group;                   /* index of its group's first stream
	                                   (whose gids serve the group), or
	                                   STACKS_NONE: it is alone */
	size_t *mods;                   /* indexes in stacks.mods, by base; a
	                                   child's own, then its parent's */
	size_t nmods, cap;
	struct table ids;               /* STACK id -> stack index + 1 */
	struct table gids;              /* the same, of the whole group */
	struct table ips;               /* lone address -> stack index + 1 */
};

struct stacks {
	struct stacks_module *mods;
	size_t nmods, mcap;
	struct stacks_stack *v;
	size_t n, cap;
	struct stacks_stream *streams;
	size_t nstreams, scap;
	struct table by_stream;         /* stream pointer -> index + 1 */
};

/* Gathers the STACK and MODULE records of l's events: 0 or -ENOMEM. */
int stacks_build(struct stacks *st, const struct load *l);
void stacks_free(struct stacks *st);

/* The stack that record of stream s names by id (its group's
 * included), or STACKS_NONE. */
size_t stacks_get(const struct stacks *st, const struct reader_stream *s, uint32_t id);

/* A one-frame stack of the address stored little-endian at ip_le (e.g. a
 * FAULT's ip; copied, the payload may go), interned per stream
 * so equal addresses share one stack (exact: symbolized as the
 * instruction itself); STACKS_NONE on ENOMEM. */
size_t stacks_of_ip(struct stacks *st, const struct reader_stream *s, const unsigned char *ip_le);

/* Return address k (0 = innermost) of a stack. */
uint64_t stacks_ip(const struct stacks *st, size_t stack, uint32_t k);

/* The module of stream `stream` whose base is the highest at or below ip,
 * or STACKS_NONE. */
size_t stacks_module_of(const struct stacks *st, size_t stream, uint64_t ip);

#endif /* FORKSCOPE_STACKS_H */
