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
	R(setuid, "setuid");
	R(setgid, "setgid");
	R(seteuid, "seteuid");
	R(setegid, "setegid");
	R(setreuid, "setreuid");
	R(setregid, "setregid");
	R(setresuid, "setresuid");
	R(setresgid, "setresgid");
	R(setgroups, "setgroups");
	R(capset, "capset");
	R(unshare, "unshare");
	R(setns, "setns");
	R(prctl, "prctl");
	Dl_info a, b;
	real.malloc_is_glibc = real.malloc && dladdr((void *)real.malloc, &a) &&
			       dladdr((void *)gnu_get_libc_version, &b) && a.dli_fbase == b.dli_fbase;
}
