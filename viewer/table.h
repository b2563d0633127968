/*
 * table: an open-addressing hash map from nonzero uint64 keys to uint64
 * values (linear probing, backward-shift deletion, no tombstones). It grows
 * and shrinks with its contents, so its memory stays proportional to the
 * entries it holds: the model keeps one per process for live malloc blocks.
 */
#ifndef FORKSCOPE_TABLE_H
#define FORKSCOPE_TABLE_H

#include <stddef.h>
#include <stdint.h>

struct table_slot {
	uint64_t key;           /* 0 = empty */
	uint64_t val;
};

struct table {
	struct table_slot *slots;
	size_t cap;             /* 0 or a power of two */
	size_t n;
};

/* Returns 1 and *val when key is present, else 0. */
int table_get(const struct table *t, uint64_t key, uint64_t *val);

/* Inserts or replaces; *old (if not NULL) gets the replaced value.
 * Returns 1 if the key was new, 0 if replaced, -ENOMEM. */
int table_put(struct table *t, uint64_t key, uint64_t val, uint64_t *old);

/* Removes key; returns 1 and *val if it was present, else 0. */
int table_del(struct table *t, uint64_t key, uint64_t *val);

/* A copy of src into dst (dst is overwritten, not freed): 0 or -ENOMEM. */
int table_copy(struct table *dst, const struct table *src);
void table_free(struct table *t);

#endif /* FORKSCOPE_TABLE_H */
