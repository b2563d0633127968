/*
 * elfsect: what an ELF object's mapping holds, section by section (.text,
 * .rodata, .data, .bss, .got, ...), read with libelf in the viewer. Each
 * file is read once per cache. A file that is not the one the trace saw
 * (another inode than the mapping's, or a build-id other than its MODULE
 * record's) gives an explanation instead of sections, so a replaced
 * library never gets wrong names.
 *
 * The report draws the textbook layout (text, rodata, data, bss, heap,
 * mmap, libs, stack) from it; the viewer's region details can call
 * elfsect_region() the same way.
 */
#ifndef FORKSCOPE_ELFSECT_H
#define FORKSCOPE_ELFSECT_H

#include <stddef.h>
#include <stdint.h>

struct elfsect_file;

struct elfsect {
	struct elfsect_file **files;
	size_t n, cap;
};

/* One section at run time: [start, end) in the process. */
struct elfsect_hit {
	const char *name;       /* valid until elfsect_free() */
	uint64_t start, end;
	uint32_t type;          /* SHT_* (SHT_NOBITS: .bss, .tbss) */
	uint64_t flags;         /* SHF_* */
};

/* A mapping as a scan saw it (fsk_region); inode 0: unknown, no check. */
struct elfsect_map {
	const char *path;
	uint64_t start, end;    /* the region */
	uint64_t offset;        /* its file offset */
	uint64_t inode;
};

void elfsect_init(struct elfsect *c);
void elfsect_free(struct elfsect *c);

/* The build-id a MODULE record gave for path: a file on disk with another
 * one is not used. The first call for a path wins. 0 or -ENOMEM. */
int elfsect_expect(struct elfsect *c, const char *path, const uint8_t *build_id, uint32_t len);

/*
 * The load bias of the object mapped by m (from the PT_LOAD that holds
 * m->offset; pass the object's lowest mapping, offset 0, where two
 * segments share a page): 0 and *bias, or -1 and *why ("not an ELF object", "changed
 * on disk since the trace (build-id differs)", ...).
 */
int elfsect_bias(struct elfsect *c, const struct elfsect_map *m, uint64_t *bias,
		 const char **why);

/*
 * The allocated sections of m->path that overlap [start, end) once moved
 * by bias, in address order, at most max in out (clipped to the range).
 * Returns how many there are (possibly more than max), or -1 and *why.
 * For the anonymous tail after an object's data (its .bss), pass that
 * object's mapping in m with the tail's range in start and end.
 */
long elfsect_in(struct elfsect *c, const struct elfsect_map *m, uint64_t bias, uint64_t start,
		uint64_t end, struct elfsect_hit *out, size_t max, const char **why);

/* A library region's sub-kind from its sections and permissions:
 * "text", "rodata", "data", "bss" (NULL: none of them). */
const char *elfsect_subkind(const struct elfsect_hit *h, size_t n, unsigned perms);

#endif /* FORKSCOPE_ELFSECT_H */
