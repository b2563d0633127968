/* vec: growing arrays without repeating the realloc dance everywhere. */
#ifndef FORKSCOPE_VEC_H
#define FORKSCOPE_VEC_H

#include <stddef.h>

/*
 * Makes *v (of *cap elements of elem bytes) hold at least need elements,
 * doubling from a minimum of 8. On failure *v and *cap are unchanged.
 * 0 or -ENOMEM.
 */
int vec_reserve(void *v, size_t *cap, size_t need, size_t elem);

#endif /* FORKSCOPE_VEC_H */
