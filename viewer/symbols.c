/* symbols: see symbols.h. */
#include "symbols.h"

#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vec.h"

struct symbols_file {
	const char *path;               /* the first stacks module's path */
	uint8_t build_id[20];
	uint32_t build_id_len;
	Dwfl *dwfl;                     /* NULL: unusable, frames stay raw */
	Dwfl_Module *mod;
	uint64_t lo, hi;                /* its ELF addresses */
	struct table names;             /* raw name pointer -> name shown */
};

/* libstdc++'s demangler, loaded the first time a C++ name needs it: most
 * runs (`forkscope run`, a C program's report) never do, and loading
 * libstdc++ at start cost every command ~0.45 ms. libstdc++6 is on every
 * Debian system (apt needs it), so the viewer stays a C program with no
 * new package; without it, frames keep their mangled names. */
typedef char *demangle_fn(const char *mangled, char *buf, size_t *len, int *status);

static demangle_fn *symbols_demangler(void)
{
	static demangle_fn *fn;
	static int tried;
	if (!tried) {
		tried = 1;
		void *h = dlopen("libstdc++.so.6", RTLD_NOW | RTLD_LOCAL);
		if (h)
			*(void **)&fn = dlsym(h, "__cxa_demangle");
	}
	return fn;
}

static char *symbols_debuginfo_path;

static const Dwfl_Callbacks symbols_cb = {
	.find_elf = dwfl_build_id_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.section_address = dwfl_offline_section_address,
	.debuginfo_path = &symbols_debuginfo_path,
};

static void symbols_note(struct symbols *sy, const char *fmt, const char *path)
{
	char buf[1200];

	snprintf(buf, sizeof(buf), fmt, path);
	if (vec_reserve(&sy->notes, &sy->ncap, sy->nnotes + 1, sizeof(*sy->notes)) == 0 &&
	    (sy->notes[sy->nnotes] = strdup(buf)))
		sy->nnotes++;
}

int symbols_init(struct symbols *sy, const struct stacks *st)
{
	memset(sy, 0, sizeof(*sy));
	sy->st = st;
	sy->mod_file = calloc(st->nmods + 1, sizeof(*sy->mod_file));
	return sy->mod_file ? 0 : -ENOMEM;
}

void symbols_free(struct symbols *sy)
{
	for (size_t i = 0; i < sy->nfiles; i++) {
		struct symbols_file *f = sy->files[i];
		for (size_t k = 0; k < f->names.cap; k++) {
			struct table_slot *t = &f->names.slots[k];
			if (t->key && t->val != t->key)
				free((char *)(uintptr_t)t->val);
		}
		table_free(&f->names);
		if (f->dwfl)
			dwfl_end(f->dwfl);
		free(f);
	}
	for (size_t i = 0; i < sy->nnotes; i++)
		free(sy->notes[i]);
	free(sy->notes);
	free(sy->files);
	free(sy->mod_file);
	free(sy->frames);
	table_free(&sy->cache);
	memset(sy, 0, sizeof(*sy));
}

/* Opens an object at its ELF addresses (bias 0) and checks its build-id
 * against the one the trace recorded. */
static void symbols_open(struct symbols *sy, struct symbols_file *f)
{
	const unsigned char *bits;
	GElf_Addr vaddr, lo, hi;
	int fd, n;

	if (f->path[0] != '/' || (fd = open(f->path, O_RDONLY | O_CLOEXEC)) < 0)
		return; /* the vdso, or a file that is gone: raw frames */
	f->dwfl = dwfl_begin(&symbols_cb);
	if (!f->dwfl) {
		close(fd);
		return;
	}
	dwfl_report_begin(f->dwfl);
	f->mod = dwfl_report_elf(f->dwfl, f->path, f->path, fd, 0, false);
	dwfl_report_end(f->dwfl, NULL, NULL);
	if (!f->mod) {
		symbols_note(sy, "cannot read symbols of %s: not a usable ELF file", f->path);
		goto unusable;
	}
	n = dwfl_module_build_id(f->mod, &bits, &vaddr);
	if (f->build_id_len && (n != (int)f->build_id_len || memcmp(bits, f->build_id, (size_t)n))) {
		symbols_note(sy, "%s changed since the trace was recorded (build-id differs): "
			     "its frames are shown as module+offset", f->path);
		goto unusable;
	}
	dwfl_module_info(f->mod, NULL, &lo, &hi, NULL, NULL, NULL, NULL);
	f->lo = lo;
	f->hi = hi;
	return;
unusable:
	dwfl_end(f->dwfl);
	f->dwfl = NULL;
	f->mod = NULL;
}

/* The file of a stacks module, opened on first use; NULL on ENOMEM. */
static struct symbols_file *symbols_file(struct symbols *sy, size_t mod)
{
	const struct stacks_module *m = &sy->st->mods[mod];
	struct symbols_file *f;

	if (sy->mod_file[mod])
		return sy->files[sy->mod_file[mod] - 1];
	for (size_t i = 0; i < sy->nfiles; i++) {
		f = sy->files[i];
		if (f->build_id_len == m->build_id_len &&
		    !memcmp(f->build_id, m->build_id, m->build_id_len) && !strcmp(f->path, m->path)) {
			sy->mod_file[mod] = i + 1;
			return f;
		}
	}
	if (vec_reserve(&sy->files, &sy->fcap, sy->nfiles + 1, sizeof(*sy->files)) < 0 ||
	    !(f = calloc(1, sizeof(*f))))
		return NULL;
	f->path = m->path;
	f->build_id_len = m->build_id_len;
	memcpy(f->build_id, m->build_id, sizeof(f->build_id));
	symbols_open(sy, f);
	sy->files[sy->nfiles++] = f;
	sy->mod_file[mod] = sy->nfiles;
	return f;
}

static const char *symbols_attr_str(Dwarf_Die *die, int name)
{
	Dwarf_Attribute a;

	return dwarf_formstring(dwarf_attr_integrate(die, name, &a));
}

/* Inlined calls at addr: innermost first, each with the line it is at and
 * the outer function's call site. Returns how many frames it wrote. */
static size_t symbols_inline(Dwfl_Module *mod, GElf_Addr addr, struct symbols_frame *out, size_t max)
{
	Dwarf_Addr bias;
	Dwarf_Die *cu = dwfl_module_addrdie(mod, addr, &bias), *scopes = NULL;
	Dwarf_Files *files = NULL;
	size_t nfiles = 0, n = 0;
	int ns;

	if (!cu || (ns = dwarf_getscopes(cu, addr - bias, &scopes)) <= 0)
		return 0;
	dwarf_getsrcfiles(cu, &files, &nfiles);
	int outer = 0;
	for (int i = 0; i < ns && n < max; i++) {
		int tag = dwarf_tag(&scopes[i]);
		Dwarf_Attribute a;
		Dwarf_Word cf = 0, cl = 0;

		if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram)
			continue;
		/* the linkage name, demangled later, is the qualified one */
		out[n].function = symbols_attr_str(&scopes[i], DW_AT_linkage_name);
		if (!out[n].function)
			out[n].function = symbols_attr_str(&scopes[i], DW_AT_name);
		n++;
		if (tag == DW_TAG_subprogram) {
			outer = 1;
			break;
		}
		/* the next frame (the caller) is at this inline's call site */
		if (n < max && dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_file, &a), &cf) == 0 &&
		    dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_line, &a), &cl) == 0 && files) {
			out[n].file = dwarf_filesrc(files, cf, NULL, NULL);
			out[n].line = (int)cl;
		}
	}
	/* The scopes of an inlined call lead to the inlined function's
	 * abstract definition, not to the function it was inlined into: that
	 * caller is one more frame, named by the symbol table below. */
	if (n && !outer && n < max)
		n++;
	free(scopes);
	return n;
}

/* The name to show for a raw symbol or linkage name of f: demangled once
 * per name (the strings of a module stay put while it is open, so their
 * address is the key); the raw name when it is not a C++ one, when
 * demangling fails, or in a build without a demangler. */
static const char *symbols_name(struct symbols_file *f, const char *raw)
{
	uint64_t v;

	if (!raw || raw[0] != '_' || raw[1] != 'Z')
		return raw;
	if (table_get(&f->names, (uintptr_t)raw, &v))
		return (const char *)(uintptr_t)v;
	char *d = NULL;
	demangle_fn *dm = symbols_demangler();
	int status = -1;
	if (dm && (d = dm(raw, NULL, NULL, &status)) && status != 0) {
		free(d);
		d = NULL;
	}
	if (table_put(&f->names, (uintptr_t)raw, (uintptr_t)(d ? d : raw), NULL) < 0) {
		free(d);
		return raw;
	}
	return d ? d : raw;
}

/* Resolves one ELF address of a usable file into cached frames. */
static size_t symbols_resolve(struct symbols_file *f, uint64_t off, struct symbols_frame *out, size_t max)
{
	GElf_Addr a = off ? off - 1 : off; /* inside the call, not after it */
	GElf_Off symoff;
	GElf_Sym sym;
	Dwfl_Line *ln;
	size_t n;

	memset(out, 0, max * sizeof(*out));
	n = symbols_inline(f->mod, a, out, max);
	if (!n)
		n = 1;
	ln = dwfl_module_getsrc(f->mod, a);
	if (ln) {
		int line = 0;
		const char *file = dwfl_lineinfo(ln, NULL, &line, NULL, NULL, NULL);
		if (file) {
			out[0].file = file;
			out[0].line = line;
		}
	}
	/* the outermost frame is the real function: the symbol table names it
	 * (also when DWARF is absent or names only the abstract origin) */
	const char *name = dwfl_module_addrinfo(f->mod, a, &symoff, &sym, NULL, NULL, NULL);
	if (name)
		out[n - 1].function = name;
	for (size_t i = 0; i < n; i++)
		out[i].function = symbols_name(f, out[i].function);
	return n;
}

size_t symbols_frames(struct symbols *sy, size_t stack, uint32_t k, struct symbols_frame *out, size_t max)
{
	const struct stacks *st = sy->st;
	uint64_t ip = stacks_ip(st, stack, k), v;
	size_t mod = stacks_module_of(st, st->v[stack].stream, ip), fi, n;
	struct symbols_file *f;

	if (!max)
		return 0;
	memset(out, 0, sizeof(*out));
	out->address = ip;
	out->offset = ip;
	if (mod == STACKS_NONE || !(f = symbols_file(sy, mod)))
		return 1;
	out->module = st->mods[mod].path;
	out->offset = ip - st->mods[mod].bias;
	if (!f->dwfl || out->offset < f->lo || out->offset >= f->hi) {
		if (f->dwfl) { /* past the object's end: not its code */
			out->module = NULL;
			out->offset = ip;
		}
		return 1;
	}
	fi = sy->mod_file[mod];
	/* symbols_resolve looks inside the call before a return address; an
	 * exact address (a faulting instruction) is looked up as itself */
	uint64_t look = out->offset + (st->v[stack].exact != 0);
	uint64_t key = ((uint64_t)fi << 44) ^ look;
	if (!table_get(&sy->cache, key, &v)) {
		if (vec_reserve(&sy->frames, &sy->cap, sy->nframes + SYMBOLS_INLINE_MAX,
				sizeof(*sy->frames)) < 0)
			return 1;
		n = symbols_resolve(f, look, sy->frames + sy->nframes, SYMBOLS_INLINE_MAX);
		v = (uint64_t)sy->nframes << 8 | n;
		sy->nframes += n;
		if (table_put(&sy->cache, key, v, NULL) < 0)
			return 1;
	}
	n = v & 0xff;
	if (n > max)
		n = max;
	for (size_t i = 0; i < n; i++) {
		out[i] = sy->frames[(v >> 8) + i];
		out[i].address = ip;
		out[i].module = st->mods[mod].path;
		out[i].offset = ip - st->mods[mod].bias;
	}
	return n;
}
