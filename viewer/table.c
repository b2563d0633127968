/* table: see table.h. */
#include "table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_MIN 16

static size_t table_hash(uint64_t key, size_t cap)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdull;
	key ^= key >> 33;
	return (size_t)key & (cap - 1);
}

static int table_resize(struct table *t, size_t cap)
{
	struct table_slot *old = t->slots, *ns = calloc(cap, sizeof(*ns));
	size_t oc = t->cap;

	if (!ns)
		return -ENOMEM;
	t->slots = ns;
	t->cap = cap;
	for (size_t i = 0; i < oc; i++) {
		size_t j;
		if (!old[i].key)
			continue;
		for (j = table_hash(old[i].key, cap); ns[j].key; j = (j + 1) & (cap - 1))
			;
		ns[j] = old[i];
	}
	free(old);
	return 0;
}

int table_get(const struct table *t, uint64_t key, uint64_t *val)
{
	if (!t->cap || !key)
		return 0;
	for (size_t i = table_hash(key, t->cap); t->slots[i].key; i = (i + 1) & (t->cap - 1)) {
		if (t->slots[i].key == key) {
			if (val)
				*val = t->slots[i].val;
			return 1;
		}
	}
	return 0;
}

int table_put(struct table *t, uint64_t key, uint64_t val, uint64_t *old)
{
	size_t i;

	if (!key)
		return -EINVAL;
	if ((t->n + 1) * 4 > t->cap * 3) {
		int e = table_resize(t, t->cap ? t->cap * 2 : TABLE_MIN);
		if (e < 0)
			return e;
	}
	for (i = table_hash(key, t->cap); t->slots[i].key; i = (i + 1) & (t->cap - 1)) {
		if (t->slots[i].key == key) {
			if (old)
				*old = t->slots[i].val;
			t->slots[i].val = val;
			return 0;
		}
	}
	t->slots[i].key = key;
	t->slots[i].val = val;
	t->n++;
	return 1;
}

int table_del(struct table *t, uint64_t key, uint64_t *val)
{
	size_t i, j, mask = t->cap - 1;

	if (!t->cap || !key)
		return 0;
	for (i = table_hash(key, t->cap); t->slots[i].key != key; i = (i + 1) & mask)
		if (!t->slots[i].key)
			return 0;
	if (val)
		*val = t->slots[i].val;
	/* Backward shift: pull later members of the probe run into the hole. */
	for (j = (i + 1) & mask; t->slots[j].key; j = (j + 1) & mask) {
		size_t h = table_hash(t->slots[j].key, t->cap);
		if (((j - h) & mask) >= ((j - i) & mask)) {
			t->slots[i] = t->slots[j];
			i = j;
		}
	}
	t->slots[i].key = 0;
	t->n--;
	if (t->cap > TABLE_MIN && t->n * 8 < t->cap)
		table_resize(t, t->cap / 2); /* on failure the table just stays big */
	return 1;
}

int table_copy(struct table *dst, const struct table *src)
{
	memset(dst, 0, sizeof(*dst));
	if (!src->cap)
		return 0;
	dst->slots = malloc(src->cap * sizeof(*dst->slots));
	if (!dst->slots)
		return -ENOMEM;
	memcpy(dst->slots, src->slots, src->cap * sizeof(*dst->slots));
	dst->cap = src->cap;
	dst->n = src->n;
	return 0;
}

void table_free(struct table *t)
{
	free(t->slots);
	memset(t, 0, sizeof(*t));
}
