/* vec: see vec.h. */
#include "vec.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

int vec_reserve(void *v, size_t *cap, size_t need, size_t elem)
{
	void **pv = v, *nv;
	size_t nc = *cap ? *cap : 8;

	if (need <= *cap)
		return 0;
	while (nc < need) {
		if (nc > SIZE_MAX / 2 / elem)
			return -ENOMEM;
		nc *= 2;
	}
	nv = realloc(*pv, nc * elem);
	if (!nv)
		return -ENOMEM;
	*pv = nv;
	*cap = nc;
	return 0;
}
