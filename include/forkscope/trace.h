/*
 * forkscope trace format: the only contract between libforkscope.so
 * (preload/) and the forkscope command (viewer/).
 *
 * A trace is a directory (created 0700). Every traced process image writes
 * one append-only stream file in it, named "<pid>.<seq>.fst" (created 0600
 * with O_EXCL|O_NOFOLLOW): seq starts at 0 and is the first free number for
 * that pid, so an exec'd image (same pid) or a reused pid never overwrites
 * an earlier stream. The images of one pid are ordered by seq.
 *
 * A stream is a header followed by records. Everything is little-endian,
 * fixed width, naturally aligned; no field holds a pointer that the reader
 * dereferences (addresses are data about the traced process only).
 *
 *   stream   := header record*
 *   header   := struct fsk_header, then exe (fsk_str), then argc fsk_str's,
 *               zero-padded to a multiple of 8: hdr_size bytes in all.
 *   record   := struct fsk_rec (16 bytes) + payload; rec.size counts both,
 *               is a multiple of 8, and is >= 16. A reader skips a record
 *               whose type it does not know by its size. Or, when bit 15
 *               of the type is set, an 8-byte tiny record (below).
 *   fsk_str  := uint32 length, then that many bytes (no NUL), then padding
 *               to a multiple of 4. Inside a record, strings follow the
 *               fixed payload and the record is padded to a multiple of 8.
 *
 * Records of one thread are in time order. Threads flush their buffers
 * independently, so records of different threads interleave in chunks and
 * a reader that needs one global order sorts by ts_ns (stable: file order
 * breaks ties). Timestamps are CLOCK_MONOTONIC nanoseconds, one clock for
 * every process of the trace. A reader must treat a record that runs past
 * the end of the file as the end of a stream cut short (SIGKILL, OOM), and
 * any impossible size as corruption at that offset: keep what came before.
 *
 * Compact malloc records (version 2). The hot path writes most malloc and
 * free calls as CALLOC (24 bytes) and CFREE (16 bytes): their first 4 bytes
 * are type and size as in every record, so framing is unchanged, but the
 * tid and ts_ns of struct fsk_rec give way to a 32-bit time delta
 * (struct fsk_crec). Their context comes from two header-only records:
 *   CBASE {tid, ts_ns}: the time base of thread tid's compact records, and
 *                      tid becomes the current thread;
 *   CTX   {tid}:       tid becomes the current thread (ts_ns is 0); a
 *                      writer puts one in front of every block of a
 *                      thread's records it writes, so compact records
 *                      never depend on who wrote between two blocks.
 * CMALLOC (16 bytes) is a CALLOC of malloc() with no stack and a small
 * block, the common case when stacks are off.
 * A compact record belongs to the current thread and happened at that
 * thread's base + dt_ns. One with no current thread, or whose thread has
 * had no CBASE in this stream, is corruption. A reader expands CFREE into
 * the FREE and CALLOC/CMALLOC into the ALLOC it stands for (CTX and CBASE
 * carry no event). A writer uses the full records where a value does not fit
 * (unaligned or NULL address, size >= 4 GiB, stack id >= 2^24).
 *
 * Tiny malloc records (version 3): 8 bytes, told apart by bit 15 of the
 * type field (FSK_TINY): a reader that finds it set takes the record as
 * the 8-byte word below, not as a struct fsk_rec. TMALLOC and TFREE stand
 * for the CMALLOC and CFREE with the same values and the same time as the
 * previous compact record (CFREE, CALLOC, CMALLOC or tiny) of the current
 * thread in this stream; one with no such record before it is corruption.
 * A writer uses them when a stamp repeats (see below) and the values fit.
 *
 * Version 5 changes the tiny records and adds 4-byte micro ones, all told
 * apart by the type field's top bits: bit 15 FSK_TINY, bit 14 FSK_MICRO
 * (a 4-byte record, else an 8-byte one), bits 12-13 the kind. Each stands
 * for a FREE or ALLOC (of fn, stack id and size given) at the time of the
 * current thread's previous compact record, as the tiny records of
 * version 3 (TLATER: a given time after it). Some give their address as a delta: the block's address
 * minus the address of that thread's previous compact record (CFREE,
 * CALLOC, CMALLOC, tiny or micro; mmapped or not), in units of 16 bytes,
 * two's complement. MSMALLOC takes the stack id of that thread's previous
 * compact allocation record (CALLOC, CMALLOC, tiny or micro; CMALLOC,
 * TMALLOC and MMALLOC have stack id 0). Records other than micro ones
 * stay 8-byte multiples but may start at any multiple of 4: a writer may
 * put an MPAD before one so that its buffer keeps them 8-aligned, and
 * MPADs after a block's last record so that the file ends at a multiple
 * of 128 KiB once the block is written (whole page-cache folios).
 *   8-byte (bit 14 clear), w the little-endian uint64:
 *     kind 0 TFREE   free(address); bits 16-58 address >> 4, bit 11
 *                    FSK_AF_MMAPPED, all other bits 0
 *     kind 1 TMALLOC malloc(size) = address, stack id 0; bits 16-58
 *                    address >> 4, bit 11 FSK_AF_MMAPPED, size bits 0-10
 *                    and (bits 59-63) << 11, so size < 64 KiB
 *     kind 2 TALLOC  allocation of fn (bits 60-63, not 0), stack id
 *                    (bits 40-59), size (bits 0-11, < 4 KiB), address as
 *                    the delta of bits 16-39 (24 bits), not mmapped
 *     kind 3 TLATER  a free or a malloc dt ns (bits 16-34) after the
 *                    thread's previous compact record, not mmapped, its
 *                    address as the delta of bits 36-63 (28 bits); bit 11
 *                    set: malloc of size bits 0-10 (< 2 KiB), with stack
 *                    id 0, or the previous allocation's when bit 35 is
 *                    set; clear: free, bits 0-10 and 35 are 0. TLATER is
 *                    also a compact record: the next ones take its time.
 *   4-byte (bit 14 set), u the little-endian uint32:
 *     kind 0 MFREE   free(address), not mmapped; address as the delta of
 *                    bits 0-11 and (bits 16-31) << 12 (28 bits)
 *     kind 1 MMALLOC malloc(size) = address, stack id 0, not mmapped;
 *                    size bits 0-10 (< 2 KiB), address as the delta of
 *                    bit 11 and (bits 16-31) << 1 (17 bits)
 *     kind 2 MSMALLOC the same, with the previous allocation's stack id
 *     kind 3 MPAD    no event: u is exactly 0xf000
 * A version 3-4 tiny record is the 8-byte word above (bits 13-14 its
 * FSK_TINY_* flags, size bits 0-12, 18 bits of size).
 *
 * Malloc-family records may be stamped from the CPU's invariant TSC
 * scaled from a (TSC, CLOCK_MONOTONIC) pair at most 100 us old; such a
 * stamp lags the clock by well under 1 us and never leads it, and each
 * thread's records never go back in time. Two threads' pairs may lag by
 * different amounts (the time between the pair's two reads, kept under
 * ~0.4 us), so two records of different threads less than about 1 us
 * apart may sort in either order, even about the same block. Lifecycle
 * records (fork, exec, exit, wait) read the clock. A compact record may
 * also carry the stamp of its thread's previous record (at most 64
 * records in a row share one clock read; 256 where the clock is read with
 * clock_gettime, which costs ~2.5 times as much as rdtsc), only while its
 * thread records fast (a record every 2 us or more often, over its last
 * 63 or more; a slower thread's records each read the clock), when its
 * block lies in a heap window (64 MiB of address space, the size of a
 * glibc arena heap) in which no other thread of the process has
 * allocated, and no record of another thread that concerns a block
 * outside that thread's own window (nor any record but a malloc-family
 * one) came, nor an epoch of the writer's flusher thread began, since
 * that read: such a stamp is early by at most the time those calls took,
 * never late. Epochs begin every millisecond while a thread reuses stamps
 * (and at every 50 ms flush), so the bound is about 1 ms, and 50 ms only
 * when the flusher thread itself gets no CPU for that long. So a reused
 * stamp still sorts after every record of another thread that happened
 * before it and concerns the same block (a block freed in one thread and
 * malloc'd in another keeps its order), after another thread's lifecycle,
 * scan and mmap records that happened before it, and after its own
 * thread's records; against another thread's records about other blocks,
 * and another process's records, it is only as exact as that bound.
 *
 * Sampled malloc tracing (FORKSCOPE_SAMPLE_BYTES=N, header flag
 * FSK_HF_SAMPLED). A SAMPLE record {mean_bytes N} follows the header,
 * before any other record. Each thread counts allocated bytes down from a
 * length drawn from an exponential distribution of mean N; an allocation
 * of s bytes (s = 0 counts as 1) that crosses zero is recorded and a new
 * length is drawn, so it is recorded with probability p = 1 - exp(-s/N),
 * independently of every other. A reader weights each recorded allocation
 * by 1/p calls and s/p bytes: unbiased estimates of the true totals.
 * Record layouts do not change, only which calls have records:
 *   ALLOC     a recorded allocation;
 *   FREE      only of a block an ALLOC/REALLOC recorded; fn FSK_FN_REALLOC
 *             when a realloc whose new block is not recorded released it;
 *   REALLOC   the new block is recorded (old_addr may be a block the
 *             trace never saw: nothing to remove then), or the call failed
 *             or freed (size 0) a recorded block.
 *
 * Stack ids (version 4). An id means one stack in a whole stack group,
 * not just in one stream: a process image and the processes forked from
 * it (and from those, but not images that exec started) share one table
 * of stacks, and exactly one stream of the group has the STACK record of
 * an id: the stream of the process that interned it, which may be the
 * parent, a child or a sibling of a process that uses it. A stream whose
 * header has stack_table 1 is in the group of its parent's stream (the
 * stream of pid ppid whose image was running at parent_start_ns); with 0
 * it starts a group. A reader resolves an id a stream uses in its group.
 * The STACK record may come later than a record that uses the id, in the
 * same or another file of the group (another thread's or process's buffer
 * is written out later); should that process be killed before it writes
 * the record out, the id stays unknown to the whole group (the records
 * that use it show no stack; nothing else is misread). MODULE records
 * are inherited along the same links: the modules of a fork child with
 * stack_table 1 are its own and its parent's (its own first where both
 * name one base); a STACK record is symbolized with the modules of the
 * stream that has it. A version 1-3 header ends before stack_table (80
 * bytes).
 */
#ifndef FORKSCOPE_TRACE_H
#define FORKSCOPE_TRACE_H

#include <stdint.h>

#define FSK_MAGIC "FSKTRACE"      /* 8 bytes, no NUL in the file */
#define FSK_VERSION 5               /* 2: compact malloc records (22..26);
                                       3: tiny malloc records (FSK_TINY);
                                       4: stack ids shared by a stack group
                                       (stack_table); 5: tiny records with
                                       kinds, micro records (FSK_MICRO) */
#define FSK_STREAM_SUFFIX ".fst"
/* An empty file a process made ahead for its next fork child, which
 * renames it to its stream name: not a stream; `forkscope run` removes
 * those a killed process left. */
#define FSK_SPARE_PREFIX ".spare."
/* The unwind rules every process of a trace learns for the others
 * (preload/unwind_cache.c): a memfd of `forkscope run`, every page
 * allocated, which a traced process opens as FORKSCOPE_RULES says
 * ("/proc/RUNNERPID/fd/N"; FSK_RULES_MAGIC in its first slot, so that a
 * pid seen from another pid namespace cannot lead to another file). Not
 * part of the trace; it ends with the runner. */
#define FSK_RULES_FILE_BYTES (16ul << 16)
#define FSK_RULES_MAGIC 0x73656c7572736b66ull /* its first 8 bytes: "fskrules" */
#define FSK_REC_MAX 65528u        /* largest rec.size */

/* header.flags */
#define FSK_HF_PFN_VISIBLE   0x1u /* pagemap PFNs readable (CAP_SYS_ADMIN);
                                     set in fsk_scan.flags, not in the header */
#define FSK_HF_PERF_FAULTS   0x2u /* page-fault sampling active; likewise */
#define FSK_HF_MALLOC        0x4u /* malloc family traced */
#define FSK_HF_ARGV_TRUNC    0x8u /* argv in the header was cut to fit */
#define FSK_HF_RUNNER       0x10u /* written by `forkscope run` itself: it holds
                                     the WAITs of the subreaper (orphans, CMD) */
#define FSK_HF_SAMPLED      0x20u /* malloc family sampled: a SAMPLE record
                                     follows the header (see the top) */
#define FSK_HF_MALLOC_OTHER 0x40u /* the malloc under the hooks is not glibc's
                                     (jemalloc, tcmalloc preloaded after ours):
                                     FSK_AF_MMAPPED is never set, and no
                                     record says whether a block came from
                                     the heap or from its own mmap */

struct fsk_header {
	char magic[8];             /* FSK_MAGIC */
	uint16_t version;          /* FSK_VERSION */
	uint16_t header_fixed;     /* sizeof(struct fsk_header) as written */
	uint32_t hdr_size;         /* whole header incl. strings, multiple of 8 */
	uint32_t pid;
	uint32_t ppid;             /* getppid() when the image started */
	uint32_t seq;              /* image number of this pid, see above */
	uint32_t page_size;
	uint64_t start_ns;         /* CLOCK_MONOTONIC at stream open */
	uint64_t start_realtime_ns;/* CLOCK_REALTIME at the same moment */
	uint32_t clock_id;         /* CLOCK_MONOTONIC (1) */
	uint32_t flags;            /* FSK_HF_* */
	uint32_t uid;              /* real uid of the image */
	uint32_t argc;             /* number of argv strings after exe */
	uint64_t parent_start_ns;  /* fork child: parent's fork timestamp; else 0 */
	uint32_t stack_depth;      /* FORKSCOPE_STACK_DEPTH in effect */
	uint32_t scan_ms;          /* FORKSCOPE_SCAN_MS in effect (0 = off) */
	/* version 4 (header_fixed 88; versions 1-3 end here, at 80 bytes) */
	uint32_t stack_table;      /* 1: a fork child whose stack ids are its
	                              parent's (see "Stack ids" at the top);
	                              else 0 */
	uint32_t pad;
};                                 /* 88 bytes */
#define FSK_HEADER_V3 80u          /* header_fixed of versions 1 to 3 */

struct fsk_rec {
	uint16_t type;             /* enum fsk_rec_type */
	uint16_t size;             /* whole record, multiple of 8, >= 16 */
	uint32_t tid;              /* kernel thread id */
	uint64_t ts_ns;            /* CLOCK_MONOTONIC */
};

enum fsk_rec_type {
	FSK_REC_PAD = 0,           /* filler, no payload meaning */
	FSK_REC_ALLOC = 1,         /* struct fsk_alloc */
	FSK_REC_FREE = 2,          /* struct fsk_free */
	FSK_REC_REALLOC = 3,       /* struct fsk_realloc */
	FSK_REC_BRK = 4,           /* struct fsk_brk */
	FSK_REC_MAP = 5,           /* struct fsk_map: mmap family */
	FSK_REC_FORK = 6,          /* struct fsk_fork */
	FSK_REC_SPAWN = 7,         /* struct fsk_exec + path + argv */
	FSK_REC_EXEC = 8,          /* struct fsk_exec + path + argv */
	FSK_REC_EXEC_FAIL = 9,     /* struct fsk_exec_fail */
	FSK_REC_EXIT = 10,         /* struct fsk_exit */
	FSK_REC_WAIT = 11,         /* struct fsk_wait */
	FSK_REC_THREAD = 12,       /* struct fsk_thread (reserved: not written yet) */
	FSK_REC_STACK = 13,        /* struct fsk_stack + ips */
	FSK_REC_DROPPED = 14,      /* struct fsk_dropped */
	FSK_REC_NOTE = 15,         /* struct fsk_note + text */
	FSK_REC_END = 16,          /* struct fsk_end: stream closed cleanly */
	FSK_REC_SCAN = 17,         /* struct fsk_scan: starts a maps/pagemap scan */
	FSK_REC_REGION = 18,       /* struct fsk_region + path: one region of a scan */
	FSK_REC_SCAN_END = 19,     /* struct fsk_scan_end: closes a scan */
	FSK_REC_FAULT = 20,        /* struct fsk_fault: a sampled page fault */
	FSK_REC_MODULE = 21,       /* struct fsk_module + path */
	FSK_REC_CTX = 22,          /* header only: current thread for compact records */
	FSK_REC_CBASE = 23,        /* header only: time base of tid's compact records */
	FSK_REC_CFREE = 24,        /* struct fsk_cfree: compact FREE */
	FSK_REC_CALLOC = 25,       /* struct fsk_calloc: compact ALLOC */
	FSK_REC_CMALLOC = 26,      /* struct fsk_cmalloc: compact small malloc() */
	FSK_REC_TYPE_COUNT,
	FSK_REC_SAMPLE = 30,       /* struct fsk_sample: malloc sampling on */
};

/* Which malloc-family function made an ALLOC/FREE/REALLOC record. */
enum fsk_alloc_fn {
	FSK_FN_MALLOC = 1, FSK_FN_CALLOC, FSK_FN_REALLOC, FSK_FN_REALLOCARRAY,
	FSK_FN_POSIX_MEMALIGN, FSK_FN_ALIGNED_ALLOC, FSK_FN_MEMALIGN,
	FSK_FN_VALLOC, FSK_FN_PVALLOC, FSK_FN_FREE
};

/* fsk_alloc.flags, fsk_realloc.flags */
#define FSK_AF_MMAPPED 0x1u        /* glibc served it with its own mmap */
#define FSK_AF_FAILED  0x2u        /* returned NULL / error; addr is 0 */

struct fsk_alloc {                 /* malloc, calloc, memalign, ... */
	uint64_t addr;             /* returned pointer, 0 on failure */
	uint64_t size;             /* requested bytes (calloc: n*size) */
	uint32_t stack;            /* interned stack id, 0 = none */
	uint16_t fn;               /* enum fsk_alloc_fn */
	uint16_t flags;            /* FSK_AF_* */
};

struct fsk_free {                  /* free(addr); free(NULL) is not recorded */
	uint64_t addr;
	uint32_t stack;
	uint16_t fn;               /* FSK_FN_FREE */
	uint16_t flags;            /* FSK_AF_MMAPPED if the chunk was mmapped */
};

struct fsk_realloc {               /* realloc, reallocarray */
	uint64_t old_addr;         /* 0: acted as malloc */
	uint64_t new_addr;         /* 0 with size 0: acted as free; 0 with
	                              FSK_AF_FAILED: old block is still live */
	uint64_t size;
	uint32_t stack;
	uint16_t fn;
	uint16_t flags;
};

enum fsk_brk_cause {
	FSK_BRK_CALL = 1,          /* the program called brk() */
	FSK_BRK_SBRK = 2,          /* the program called sbrk() */
	FSK_BRK_MALLOC = 3,        /* glibc moved the break inside malloc/free */
};

struct fsk_brk {                   /* the program break changed */
	uint64_t old_brk;
	uint64_t new_brk;
	uint32_t cause;            /* enum fsk_brk_cause */
	uint32_t stack;
};

enum fsk_map_op {
	FSK_MAP_MMAP = 1, FSK_MAP_MUNMAP, FSK_MAP_MREMAP, FSK_MAP_MPROTECT,
	FSK_MAP_MADVISE,
};

struct fsk_map {                   /* one mmap-family call */
	uint64_t addr;             /* mmap: hint; others: the address argument */
	uint64_t len;              /* mremap: old length */
	uint64_t arg;              /* mmap: offset; mremap: new length;
	                              madvise: advice */
	uint64_t result;           /* mmap/mremap: mapped address; else 0 */
	int32_t prot;              /* mmap/mprotect: PROT_*; else 0 */
	int32_t flags;             /* mmap/mremap: MAP_* / MREMAP_* */
	int32_t fd;                /* mmap: fd; else -1 */
	int32_t err;               /* errno when the call failed, else 0 */
	uint32_t stack;
	uint16_t op;               /* enum fsk_map_op */
	uint16_t pad;
};

enum fsk_fork_kind { FSK_FORK = 1, FSK_VFORK = 2, FSK_CLONE = 3 };
enum fsk_fork_side { FSK_SIDE_PARENT = 1, FSK_SIDE_CHILD = 2 };

struct fsk_fork {
	uint32_t child_pid;        /* parent side: new pid (0 on failure);
	                              child side: own pid */
	int32_t err;               /* errno when fork failed */
	uint16_t kind;             /* enum fsk_fork_kind */
	uint16_t side;             /* enum fsk_fork_side */
	uint32_t stack;
};

enum fsk_exec_fn {
	FSK_EXEC_EXECVE = 1, FSK_EXEC_EXECV, FSK_EXEC_EXECVP, FSK_EXEC_EXECVPE,
	FSK_EXEC_EXECL, FSK_EXEC_EXECLP, FSK_EXEC_EXECLE, FSK_EXEC_FEXECVE,
	FSK_EXEC_EXECVEAT, FSK_SPAWN_POSIX_SPAWN, FSK_SPAWN_POSIX_SPAWNP,
};

#define FSK_EF_ARGV_TRUNC 0x1u     /* argv was cut to fit the record */
#define FSK_EF_ENV_RESTORED 0x2u   /* exec: forkscope put LD_PRELOAD back */
#define FSK_EF_UNTRACEABLE 0x4u    /* exec: the image cannot be traced
                                      (setuid/setgid or static) */

/*
 * EXEC is written, and flushed, just before the call: if the call returns
 * an EXEC_FAIL follows; if it succeeds the stream simply ends and the new
 * image opens "<pid>.<seq+1>.fst". SPAWN is written after posix_spawn
 * returns, with the child's pid or the error.
 */
struct fsk_exec {
	uint32_t child_pid;        /* SPAWN: new pid, 0 on failure; EXEC: 0 */
	int32_t err;               /* SPAWN: error number; EXEC: 0 */
	uint16_t fn;               /* enum fsk_exec_fn */
	uint16_t flags;            /* FSK_EF_* */
	uint32_t argc;             /* argv strings that follow the path */
	uint32_t stack;
	uint32_t pad;
	/* then: path (fsk_str), argc x fsk_str */
};

struct fsk_exec_fail {
	int32_t err;
	uint16_t fn;
	uint16_t pad;
};

enum fsk_exit_how {
	FSK_EXIT_MAIN = 1,         /* returned from main */
	FSK_EXIT_EXIT = 2,         /* exit() */
	FSK_EXIT__EXIT = 3,        /* _exit() */
	FSK_EXIT__EXIT2 = 4,       /* _Exit() */
	FSK_EXIT_ABORT = 5,        /* abort() */
	FSK_EXIT_SIGNAL = 6,       /* fatal signal caught by forkscope */
	FSK_EXIT_LAST_THREAD = 7,  /* the last thread called pthread_exit
	                              (reserved: not written yet) */
};

struct fsk_exit {
	int32_t code;              /* exit code, or signal number for SIGNAL */
	uint16_t how;              /* enum fsk_exit_how */
	uint16_t pad;
	uint32_t stack;
	uint32_t pad2;
};

enum fsk_wait_fn {
	FSK_WAIT_WAIT = 1, FSK_WAIT_WAITPID, FSK_WAIT_WAIT3, FSK_WAIT_WAIT4,
	FSK_WAIT_WAITID,
};

enum fsk_wait_state {
	FSK_WS_NONE = 0,           /* call failed (err set) */
	FSK_WS_EXITED = 1, FSK_WS_SIGNALED = 2, FSK_WS_STOPPED = 3,
	FSK_WS_CONTINUED = 4,
};

/*
 * One wait-family call that returned a child (or failed). Empty WNOHANG
 * polls are not recorded one by one: their count since the last WAIT
 * record of this process is in polls.
 */
struct fsk_wait {
	int32_t pid_arg;           /* the pid (or id) argument */
	int32_t result;            /* returned pid; -1 on error */
	int32_t raw_status;        /* wait status word (waitid: synthesized) */
	int32_t err;
	uint16_t fn;               /* enum fsk_wait_fn */
	uint16_t state;            /* enum fsk_wait_state */
	int32_t value;             /* exit code, or signal number */
	uint8_t core;              /* signaled with core dump */
	uint8_t nohang;            /* WNOHANG was given */
	uint8_t nowait;            /* WNOWAIT: the child was NOT reaped */
	uint8_t pad;
	uint32_t polls;            /* empty WNOHANG polls folded into this one */
};

enum fsk_thread_what { FSK_THREAD_START = 1, FSK_THREAD_EXIT = 2 };

struct fsk_thread {
	uint32_t tid;
	uint16_t what;             /* enum fsk_thread_what */
	uint16_t pad;
	uint64_t stack_lo;         /* thread stack extent, 0 if unknown */
	uint64_t stack_hi;
};

struct fsk_stack {                 /* interned call stack */
	uint32_t id;               /* >= 1, unique within the stream */
	uint32_t depth;            /* number of uint64 return addresses that
	                              follow, innermost first */
};

struct fsk_dropped {               /* records that could not be written */
	uint64_t records;
	uint64_t bytes;
	uint64_t since_ns;         /* time of the first loss */
	int32_t err;               /* errno of the failed write */
	uint32_t pad;
};

enum fsk_note_level { FSK_NOTE_INFO = 1, FSK_NOTE_WARN = 2 };

struct fsk_note {                  /* human-readable note, e.g. why perf is off */
	uint32_t level;
	uint32_t pad;
	/* then: text (fsk_str) */
};

enum fsk_end_reason {
	FSK_END_EXIT = 1,          /* process exit path */
	FSK_END_EXEC = 2,          /* reserved, not written: a stream whose
	                              last record is EXEC ended in an exec */
	FSK_END_SIGNAL = 3,        /* fatal signal */
	FSK_END_STOPPED = 4,       /* tracing stopped, the process went on (a
	                              NOTE before it says why): nothing of it
	                              after this time is in the stream */
};

struct fsk_end {
	uint32_t reason;
	uint32_t pad;
	uint64_t records;          /* records this stream wrote, END excluded */
	uint64_t dropped;          /* records it lost */
};

/* ---- address-space scans (see issue: address-space engine) ---- */

enum fsk_scan_trigger {
	FSK_SCAN_START = 1, FSK_SCAN_FORK_PARENT, FSK_SCAN_FORK_CHILD,
	FSK_SCAN_EXEC, FSK_SCAN_EXIT, FSK_SCAN_WAIT, FSK_SCAN_MMAP,
	FSK_SCAN_BRK, FSK_SCAN_TIMER,
};

struct fsk_scan {
	uint32_t id;               /* increasing within the stream */
	uint16_t trigger;          /* enum fsk_scan_trigger */
	uint16_t flags;            /* FSK_HF_PFN_VISIBLE if PFNs were read */
};

enum fsk_region_kind {
	FSK_RK_TEXT = 1, FSK_RK_RODATA, FSK_RK_DATA, FSK_RK_BSS, FSK_RK_HEAP,
	FSK_RK_STACK, FSK_RK_THREAD_STACK, FSK_RK_ANON, FSK_RK_FILE, FSK_RK_LIB,
	FSK_RK_SHM, FSK_RK_VDSO, FSK_RK_VVAR, FSK_RK_FORKSCOPE,
	FSK_RK_COUNT
};

/* fsk_region.perms */
#define FSK_P_READ 0x1u
#define FSK_P_WRITE 0x2u
#define FSK_P_EXEC 0x4u
#define FSK_P_SHARED 0x8u          /* 's' in maps, else private */

/*
 * One mapping as /proc/self/maps showed it at the scan, with page counts
 * from /proc/self/pagemap. Counts are pages of the stream's page size.
 * shared: present, private, anonymous, not exclusively mapped (still shared
 * with a relative). unshared: shared at the last fork, exclusive now.
 * first_touch: not present at the last fork (or at mapping time), present now.
 * FSK_RK_FORKSCOPE regions (the tracer's own memory and library) are listed
 * with all counts 0: their pages are not read.
 */
struct fsk_region {
	uint64_t start;
	uint64_t end;
	uint64_t offset;
	uint64_t inode;
	uint32_t dev;              /* major << 20 | minor */
	uint16_t kind;             /* enum fsk_region_kind */
	uint16_t perms;            /* FSK_P_* */
	uint32_t resident;
	uint32_t swapped;
	uint32_t shared;
	uint32_t unshared;
	uint32_t first_touch;
	uint32_t shared_at_fork;
	uint32_t cow_faults;       /* COW faults this process took here */
	uint32_t copied;           /* shared at the last fork, now on another frame:
	                              this process took the copy. Counted only where
	                              PFNs are visible (scan flags FSK_HF_PFN_VISIBLE),
	                              else 0. unshared also counts pages that turned
	                              exclusive because the relative copied or exited. */
	/* then: path (fsk_str), empty for anonymous */
};

struct fsk_scan_end {
	uint32_t id;
	uint32_t regions;
	uint64_t cost_ns;          /* time the scan took */
};

enum fsk_fault_class { FSK_FAULT_COW = 1, FSK_FAULT_FIRST_TOUCH, FSK_FAULT_OTHER };
/* Or'ed into fsk_fault.cls: the faulting instruction is the tracer's own
 * (libforkscope.so, with the libunwind built into it): the program did not
 * make that access. Its pages still count in the scans (they were copied
 * or touched), but a reader that names the program's COW sites leaves it
 * out. The class is cls & FSK_FAULT_CLASS_MASK. */
#define FSK_FAULT_TRACER 0x100u
#define FSK_FAULT_CLASS_MASK 0xffu

struct fsk_fault {                 /* a sampled user page fault */
	uint64_t addr;
	uint64_t ip;
	uint32_t stack;
	uint16_t cls;              /* enum fsk_fault_class */
	uint16_t kind;             /* enum fsk_region_kind of addr */
};

struct fsk_module {                /* a loaded ELF object, for symbolization */
	uint64_t base;             /* lowest mapped address */
	uint64_t bias;             /* load bias (base - first PT_LOAD vaddr) */
	uint8_t build_id[20];
	uint32_t build_id_len;
	/* then: path (fsk_str) */
};

/* ---- compact malloc records (see the top of this file) ---- */

struct fsk_crec {                  /* replaces struct fsk_rec in CFREE/CALLOC */
	uint16_t type;
	uint16_t size;             /* 16 (CFREE), 24 (CALLOC) */
	uint32_t dt_ns;            /* after the current thread's CBASE ts_ns */
};

#define FSK_CADDR_FLAGS 0xfull     /* low address bits: FSK_AF_MMAPPED or 0 */

struct fsk_cfree {                 /* free(addr), fn FSK_FN_FREE, stack 0 */
	struct fsk_crec h;
	uint64_t addr;             /* 16-aligned address | FSK_AF_MMAPPED */
};

#define FSK_CSTACK_MAX 0xffffffu   /* stack ids that fit fsk_calloc.stack_fn */

struct fsk_calloc {                /* a successful malloc-family allocation */
	struct fsk_crec h;
	uint64_t addr;             /* 16-aligned address | FSK_AF_MMAPPED */
	uint32_t size;             /* requested bytes */
	uint32_t stack_fn;         /* bits 0-23 stack id, bits 24-31 enum fsk_alloc_fn */
};

#define FSK_CM_ADDR_BITS 44         /* fsk_cmalloc.word bits 0-43: address >> 4 */
#define FSK_CM_SIZE_BITS 19         /* bits 44-62: requested bytes */
#define FSK_CM_MMAPPED (1ull << 63) /* bit 63: FSK_AF_MMAPPED */

struct fsk_cmalloc {               /* malloc(size) = address, stack id 0 */
	struct fsk_crec h;
	uint64_t word;             /* address < 2^48, size < 2^19, see above */
};

/* A version 3-4 tiny record is one little-endian uint64 w (see the top):
 *   bit 15       FSK_TINY (bit 15 of the type field)
 *   bit 14       FSK_TINY_MALLOC: TMALLOC, else TFREE
 *   bit 13       FSK_AF_MMAPPED
 *   bits 16-58   address >> 4 (address < 2^47, 16-aligned)
 *   bits 0-12    TMALLOC: requested bytes, low 13 bits; TFREE: 0
 *   bits 59-63   TMALLOC: requested bytes >> 13 (so size < 2^18); TFREE: 0 */
#define FSK_TINY 0x8000u
#define FSK_TINY_MALLOC 0x4000u
#define FSK_TINY_MMAPPED 0x2000u
#define FSK_TINY_ADDR_BITS 43
#define FSK_TINY_SIZE_LOW 13
#define FSK_TINY_SIZE_BITS 18
#define FSK_TINY_SIZE_SHIFT 59      /* where the high size bits start */

/* Version 5 tiny and micro records (see the top). */
#define FSK_MICRO 0x4000u
#define FSK_TKIND(type) ((type) >> 12 & 3u)
enum fsk_tkind { FSK_TK_FREE, FSK_TK_MALLOC, FSK_TK_ALLOC, FSK_TK_PAD,
		 FSK_TK_LATER = FSK_TK_PAD /* an 8-byte record's kind 3 */ };
#define FSK_TL_MALLOC 0x800u          /* TLATER: bit 11 */
#define FSK_TL_DT_BITS 19             /* bits 16-34 */
#define FSK_TL_SAME_STACK (1ull << 35)
#define FSK_TL_DELTA_SHIFT 36         /* 28 bits */
#define FSK_T5_MMAPPED 0x800u        /* TFREE, TMALLOC */
#define FSK_T5_SIZE_LOW 11           /* TMALLOC: size bits 0-10 ... */
#define FSK_T5_SIZE_BITS 16          /* ... and 59-63 */
#define FSK_T5_DELTA_BITS 24         /* TALLOC: bits 16-39 */
#define FSK_T5_STACK_BITS 20         /* TALLOC: bits 40-59 */
#define FSK_T5_ASIZE_BITS 12         /* TALLOC: bits 0-11 */
#define FSK_M_FREE_BITS 28           /* MFREE's delta */
#define FSK_M_SIZE_BITS 11           /* MMALLOC, MSMALLOC: size ... */
#define FSK_M_DELTA_BITS 17          /* ... and delta */
#define FSK_MPAD 0xf000u

struct fsk_sample {                /* first record of a sampled stream */
	uint64_t mean_bytes;       /* N: mean bytes between recorded calls */
	uint64_t seed;             /* FORKSCOPE_SAMPLE_SEED, 0 = random */
};

/* The layout is the contract: any change here is a format version bump. */
_Static_assert(sizeof(struct fsk_header) == 88, "fsk_header");
_Static_assert(sizeof(struct fsk_rec) == 16, "fsk_rec");
_Static_assert(sizeof(struct fsk_alloc) == 24, "fsk_alloc");
_Static_assert(sizeof(struct fsk_free) == 16, "fsk_free");
_Static_assert(sizeof(struct fsk_realloc) == 32, "fsk_realloc");
_Static_assert(sizeof(struct fsk_brk) == 24, "fsk_brk");
_Static_assert(sizeof(struct fsk_map) == 56, "fsk_map");
_Static_assert(sizeof(struct fsk_fork) == 16, "fsk_fork");
_Static_assert(sizeof(struct fsk_exec) == 24, "fsk_exec");
_Static_assert(sizeof(struct fsk_exec_fail) == 8, "fsk_exec_fail");
_Static_assert(sizeof(struct fsk_exit) == 16, "fsk_exit");
_Static_assert(sizeof(struct fsk_wait) == 32, "fsk_wait");
_Static_assert(sizeof(struct fsk_thread) == 24, "fsk_thread");
_Static_assert(sizeof(struct fsk_stack) == 8, "fsk_stack");
_Static_assert(sizeof(struct fsk_dropped) == 32, "fsk_dropped");
_Static_assert(sizeof(struct fsk_note) == 8, "fsk_note");
_Static_assert(sizeof(struct fsk_end) == 24, "fsk_end");
_Static_assert(sizeof(struct fsk_scan) == 8, "fsk_scan");
_Static_assert(sizeof(struct fsk_region) == 72, "fsk_region");
_Static_assert(sizeof(struct fsk_scan_end) == 16, "fsk_scan_end");
_Static_assert(sizeof(struct fsk_fault) == 24, "fsk_fault");
_Static_assert(sizeof(struct fsk_module) == 40, "fsk_module");
_Static_assert(sizeof(struct fsk_crec) == 8, "fsk_crec");
_Static_assert(sizeof(struct fsk_cfree) == 16, "fsk_cfree");
_Static_assert(sizeof(struct fsk_calloc) == 24, "fsk_calloc");
_Static_assert(sizeof(struct fsk_cmalloc) == 16, "fsk_cmalloc");
_Static_assert(sizeof(struct fsk_sample) == 16, "fsk_sample");

#endif /* FORKSCOPE_TRACE_H */
