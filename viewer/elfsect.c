/* elfsect: see elfsect.h. */
#include "elfsect.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "forkscope/trace.h"
#include "vec.h"

#define ELFSECT_PAGE 4096u      /* mappings start at page-aligned offsets */

struct elfsect_sec {
	char *name;
	uint64_t addr, size, flags;
	uint32_t type;
};

struct elfsect_load {
	uint64_t vaddr, offset, filesz;
};

struct elfsect_file {
	char *path;
	int read;               /* read from disk (err says if that failed) */
	const char *err;
	uint64_t ino;
	uint8_t build_id[20];
	uint32_t build_id_len;
	uint8_t want_id[20];    /* from a MODULE record */
	uint32_t want_id_len;
	struct elfsect_sec *secs;
	size_t nsecs, scap;
	struct elfsect_load *loads;
	size_t nloads, lcap;
};

void elfsect_init(struct elfsect *c)
{
	memset(c, 0, sizeof(*c));
}

static void elfsect_file_free(struct elfsect_file *f)
{
	for (size_t i = 0; i < f->nsecs; i++)
		free(f->secs[i].name);
	free(f->secs);
	free(f->loads);
	free(f->path);
	free(f);
}

void elfsect_free(struct elfsect *c)
{
	for (size_t i = 0; i < c->n; i++)
		elfsect_file_free(c->files[i]);
	free(c->files);
	memset(c, 0, sizeof(*c));
}

/* The cache entry of path, made (not yet read) when new; NULL on ENOMEM. */
static struct elfsect_file *elfsect_entry(struct elfsect *c, const char *path)
{
	struct elfsect_file *f;

	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->files[i]->path, path))
			return c->files[i];
	if (vec_reserve(&c->files, &c->cap, c->n + 1, sizeof(*c->files)) < 0)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f || !(f->path = strdup(path))) {
		free(f);
		return NULL;
	}
	c->files[c->n++] = f;
	return f;
}

int elfsect_expect(struct elfsect *c, const char *path, const uint8_t *build_id, uint32_t len)
{
	/* MODULE paths are as the loader opened them (/lib/...); maps name
	 * the file the kernel resolved (/usr/lib/...). */
	char *real = realpath(path, NULL);
	struct elfsect_file *f = elfsect_entry(c, real ? real : path);

	free(real);

	if (!f)
		return -ENOMEM;
	if (!f->want_id_len && len) {
		f->want_id_len = len < sizeof(f->want_id) ? len : sizeof(f->want_id);
		memcpy(f->want_id, build_id, f->want_id_len);
	}
	return 0;
}

static void elfsect_note(struct elfsect_file *f, Elf_Scn *scn)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	GElf_Nhdr nh;
	size_t off = 0, name_off, desc_off;

	while (d && (off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
		if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
		    memcmp((const char *)d->d_buf + name_off, "GNU", 4))
			continue;
		f->build_id_len = nh.n_descsz < sizeof(f->build_id) ? nh.n_descsz : sizeof(f->build_id);
		memcpy(f->build_id, (const char *)d->d_buf + desc_off, f->build_id_len);
		return;
	}
}

static int elfsect_sec_cmp(const void *a, const void *b)
{
	const struct elfsect_sec *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Program headers, allocated sections and the build-id of f->path. */
static int elfsect_read(struct elfsect_file *f, Elf *e)
{
	size_t nph, shstr;
	Elf_Scn *scn = NULL;

	if (elf_kind(e) != ELF_K_ELF)
		return f->err = "not an ELF object", 0;
	if (elf_getphdrnum(e, &nph) != 0 || elf_getshdrstrndx(e, &shstr) != 0)
		return f->err = "unreadable ELF headers", 0;
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (vec_reserve(&f->loads, &f->lcap, f->nloads + 1, sizeof(*f->loads)) < 0)
			return -ENOMEM;
		f->loads[f->nloads++] = (struct elfsect_load){ ph.p_vaddr, ph.p_offset, ph.p_filesz };
	}
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		const char *name;
		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_NOTE && !f->build_id_len)
			elfsect_note(f, scn);
		/* .tbss overlaps what follows it: it is a template, not memory */
		if (!(sh.sh_flags & SHF_ALLOC) || !sh.sh_size ||
		    ((sh.sh_flags & SHF_TLS) && sh.sh_type == SHT_NOBITS))
			continue;
		name = elf_strptr(e, shstr, sh.sh_name);
		if (vec_reserve(&f->secs, &f->scap, f->nsecs + 1, sizeof(*f->secs)) < 0)
			return -ENOMEM;
		f->secs[f->nsecs] = (struct elfsect_sec){ strdup(name ? name : "?"), sh.sh_addr,
							  sh.sh_size, sh.sh_flags, sh.sh_type };
		if (!f->secs[f->nsecs].name)
			return -ENOMEM;
		f->nsecs++;
	}
	qsort(f->secs, f->nsecs, sizeof(*f->secs), elfsect_sec_cmp);
	return 0;
}

/* The file of m, read once; NULL with *why when it cannot be used. */
static struct elfsect_file *elfsect_get(struct elfsect *c, const struct elfsect_map *m,
					const char **why)
{
	struct elfsect_file *f = m->path && m->path[0] == '/' ? elfsect_entry(c, m->path) : NULL;

	if (!f) {
		*why = !m->path || m->path[0] != '/' ? "no file" : "out of memory";
		return NULL;
	}
	if (!f->read) {
		struct stat st;
		/* a mapped device is never opened (watchdogs act on open) */
		int fd = -1;
		errno = 0;
		if (stat(f->path, &st) == 0 && S_ISREG(st.st_mode))
			fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		Elf *e = NULL;
		f->read = 1;
		elf_version(EV_CURRENT);
		if (fd < 0 || fstat(fd, &st) < 0) {
			f->err = errno == EACCES ? "not readable"
				: errno == ENOENT ? "gone from disk" : "not a regular file";
		} else if (!S_ISREG(st.st_mode) || !(e = elf_begin(fd, ELF_C_READ, NULL))) {
			f->err = "not an ELF object";
		} else {
			f->ino = st.st_ino;
			if (elfsect_read(f, e) < 0)
				f->err = "out of memory";
		}
		if (e)
			elf_end(e);
		if (fd >= 0)
			close(fd);
	}
	if (f->err)
		return *why = f->err, NULL;
	if (m->inode && f->ino != m->inode)
		return *why = "replaced on disk since the trace (another inode)", NULL;
	if (f->want_id_len && f->build_id_len &&
	    (f->want_id_len != f->build_id_len || memcmp(f->want_id, f->build_id, f->build_id_len)))
		return *why = "changed on disk since the trace (build-id differs)", NULL;
	return f;
}

/* Segments may share a page (the data segment's RELRO part starts in the
 * page that ends the read-only one): the first PT_LOAD that holds the
 * offset wins, so callers pass the object's lowest mapping. */
int elfsect_bias(struct elfsect *c, const struct elfsect_map *m, uint64_t *bias, const char **why)
{
	const struct elfsect_file *f = elfsect_get(c, m, why);

	if (!f)
		return -1;
	for (size_t i = 0; i < f->nloads; i++) {
		const struct elfsect_load *l = &f->loads[i];
		if (!l->filesz || m->offset < (l->offset & ~(uint64_t)(ELFSECT_PAGE - 1)) ||
		    m->offset >= l->offset + l->filesz)
			continue;
		*bias = m->start + (l->offset - m->offset) - l->vaddr;
		return 0;
	}
	*why = "no loadable segment at this offset";
	return -1;
}

long elfsect_in(struct elfsect *c, const struct elfsect_map *m, uint64_t bias, uint64_t start,
		uint64_t end, struct elfsect_hit *out, size_t max, const char **why)
{
	const struct elfsect_file *f = elfsect_get(c, m, why);
	size_t n = 0;

	if (!f)
		return -1;
	for (size_t i = 0; i < f->nsecs; i++) {
		const struct elfsect_sec *s = &f->secs[i];
		uint64_t lo = s->addr + bias, hi = lo + s->size;
		if (hi <= start || lo >= end)
			continue;
		if (n < max)
			out[n] = (struct elfsect_hit){ s->name, lo > start ? lo : start,
						       hi < end ? hi : end, s->type, s->flags };
		n++;
	}
	return (long)n;
}

const char *elfsect_subkind(const struct elfsect_hit *h, size_t n, unsigned perms)
{
	int exec = 0, write = 0, nobits = 1;

	if (!n)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		exec |= (h[i].flags & SHF_EXECINSTR) != 0;
		write |= (h[i].flags & SHF_WRITE) != 0;
		nobits &= h[i].type == SHT_NOBITS;
	}
	if (exec)
		return "text";
	if (nobits)
		return "bss";
	/* RELRO (.got, .data.rel.ro) is read-only once relocated */
	return write && (perms & FSK_P_WRITE) ? "data" : "rodata";
}
