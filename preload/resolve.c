/*
 * The real functions, resolved once with dlsym(RTLD_NEXT). dlsym itself may
 * call calloc/malloc before real.malloc is known: those calls are served
 * from a static arena that is never freed (free() recognizes its pointers).
 */
#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <stdatomic.h>

#include "fsk.h"

struct fsk_real real;

_Alignas(64) char resolve_boot_arena[RESOLVE_BOOT_SIZE] FSK_COLD;
static atomic_size_t boot_used;

void *resolve_boot_alloc(size_t size, size_t align)
{
	if (align < 16)
		align = 16;
	size_t off, next;
	size_t cur = atomic_load(&boot_used);
	do {
		off = (cur + align - 1) & ~(align - 1);
		next = off + size;
		if (next > sizeof(resolve_boot_arena))
			return NULL;
	} while (!atomic_compare_exchange_weak(&boot_used, &cur, next));
	return resolve_boot_arena + off; /* static storage: already zeroed */
}

#define R(field, name) real.field = (__typeof__(real.field))dlsym(RTLD_NEXT, name)

/* The real one of a rarely called function, looked up at its first call
 * instead of by every image's constructor (most never call it).
 * Only for hooks the dynamic linker, an allocator and a signal handler
 * never call (preload/creds.c): dlsym may take the loader's lock and
 * allocate, which passes through our hooks here (t_guard). */
void *resolve_late(void *_Atomic *slot, const char *name)
{
	void *f = atomic_load_explicit(slot, memory_order_acquire);
	if (f)
		return f;
	resolve_all();
	int guard = t_guard;
	t_guard = 1;
	f = dlsym(RTLD_NEXT, name);
	t_guard = guard;
	atomic_store_explicit(slot, f, memory_order_release);
	return f;
}

#pragma weak _dl_find_object

/* Whether a and b are in one loaded object: _dl_find_object (glibc 2.35)
 * is a lookup; dladdr also scans the object's symbol table for the name
 * (the two on libc added ~35 us to every image's start). */
static int same_object(void *a, void *b)
{
	if (_dl_find_object) {
		struct dl_find_object fa, fb;
		return _dl_find_object(a, &fa) == 0 && _dl_find_object(b, &fb) == 0 &&
		       fa.dlfo_link_map == fb.dlfo_link_map;
	}
	Dl_info ia, ib;
	return dladdr(a, &ia) && dladdr(b, &ib) && ia.dli_fbase == ib.dli_fbase;
}

/* Called from the constructor, or from the first hook that runs before it
 * (another library's constructor). Idempotent; the malloc pointers go
 * first because dlsym needs them. */
void resolve_all(void)
{
	static int done FSK_EARLY;
	if (done)
		return;
	done = 1;
	R(malloc, "malloc");
	R(free, "free");
	R(calloc, "calloc");
	R(realloc, "realloc");
	R(reallocarray, "reallocarray");
	R(posix_memalign, "posix_memalign");
	R(aligned_alloc, "aligned_alloc");
	R(memalign, "memalign");
	R(valloc, "valloc");
	R(pvalloc, "pvalloc");
	R(brk, "brk");
	R(sbrk, "sbrk");
	R(mmap, "mmap");
	R(mmap64, "mmap64");
	R(munmap, "munmap");
	R(mremap, "mremap");
	R(mprotect, "mprotect");
	R(madvise, "madvise");
	R(fork, "fork");
	R(vfork, "vfork");
	R(posix_spawn, "posix_spawn");
	R(posix_spawnp, "posix_spawnp");
	R(execve, "execve");
	R(execvpe, "execvpe");
	R(fexecve, "fexecve");
	R(exit, "exit");
	R(_exit, "_exit");
	R(_Exit, "_Exit");
	R(abort, "abort");
	R(wait, "wait");
	R(waitpid, "waitpid");
	R(wait3, "wait3");
	R(wait4, "wait4");
	R(waitid, "waitid");
	R(libc_start_main, "__libc_start_main");

	real.malloc_is_glibc = real.malloc && same_object((void *)real.malloc, (void *)gnu_get_libc_version);
}
