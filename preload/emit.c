/*
 * Streams and per-thread buffers.
 *
 * Each thread appends records to its own buffer without a lock; `committed`
 * is published with release order. A buffer is written out (one write() of
 * whole records) when full (by the flusher, tb_full, or its owner), by the
 * flusher thread every 50 ms
 * (so a follower sees a quiet thread's records promptly), and by everyone's
 * exit/exec path. Writing out takes the buffer's lock (the holder's tid), so
 * the owner appending and another thread writing the committed part never
 * touch the same bytes; the owner resets the buffer only under the lock.
 * No lock is ever held across fork: a fork child resets them all.
 *
 * Every block of a buffer written out starts with a CTX record naming the
 * thread, built in the 16 bytes before it (already written, or the head
 * room TB_HEAD), so the compact malloc records in it need no tid. The
 * malloc hooks stamp their records with the buffer's clock: the TSC scaled
 * by a calibration against CLOCK_MONOTONIC (see clock_* below), or, for a
 * block of a heap window only its thread allocates in, the stamp of its
 * previous record (emit.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "emit.h"

#define TB_MAX 1024
#define WIN_BITS 8
#define WIN_SLOTS (1u << WIN_BITS)

/* The heap windows' table (win_lookup) and the thread slots, in one
 * page-aligned block: the table (2 KiB) and the first slots share a page,
 * which an image that allocates writes both of at its start, and so does
 * a fork child that allocates (they were two faults). */
static struct {
	_Atomic uint64_t win[WIN_SLOTS];
	struct tbuf slots[TB_MAX];
} s_tw FSK_COLD __attribute__((aligned(4096)));
_Static_assert(sizeof(s_tw.win) + sizeof(struct tbuf) <= 4096, "the table and the first slot share a page");
/* A slot has a buffer: before, the exit path need not look at the slots
 * (its page: a fault, in most images that buffer nothing) */
static _Atomic int s_slots_mapped;
__thread struct tbuf *t_buf;
/* The thread's buffer while a young fork child writes through (init.c):
 * t_buf stays NULL, so every record takes the slow path, which writes it
 * out at once (tb_through). */
static __thread struct tbuf *t_through;
_Atomic uint64_t emit_clock;
_Atomic int emit_fast_ticks;
static __thread int32_t t_tid;

static int s_fd = -1;
static dev_t s_dev;
static ino_t s_ino;
static char s_path[640];
static _Atomic int s_dead;        /* tracing stopped: an error was reported */
static _Atomic int s_ended;       /* END written */
static _Atomic uint64_t s_direct_records;
static _Atomic uint64_t s_released_records;
static _Atomic uint64_t s_dropped_records, s_dropped_bytes, s_dropped_since;
static _Atomic uint64_t s_dropped_reported;
static _Atomic int s_drop_err;
static pthread_key_t s_key;
static int s_key_ok;
static _Atomic int s_reopen_lock;
/* The stream's size after our last write (the size fstat gave before it,
 * plus what it wrote): where the next write starts, unless another
 * thread's came first (tb_cap). */
static _Atomic uint64_t s_end;

/* The stream file is made by its first write, which puts the header
 * before the first records (the START scan of an exec'd image, the FORK
 * records of a fork child): one write instead of two, no empty or
 * header-only file meanwhile, and an image's header names the executable
 * the START scan found in the maps (scan.c), where /proc/self/exe would
 * cost a readlink through /proc. What the header says of the start is
 * taken by emit_open_stream, before the scan. */
enum { HDR_DONE, HDR_PENDING, HDR_WRITING };
static _Atomic int s_hdr;
static uint32_t s_hdr_ppid, s_hdr_seq;
static const char *s_hdr_fail; /* what to say when the file cannot be made */
static uint64_t s_hdr_fork_ns, s_hdr_start_ns, s_hdr_rt_ns;
static int hdr_write(const char *a, size_t alen, const char *b, size_t blen);
static int hdr_claim(void);

static int32_t self_tid(void)
{
	if (unlikely(!t_tid))
		t_tid = sys_gettid();
	return t_tid;
}

int32_t emit_tid(void)
{
	return self_tid();
}

/* ---- the stream file ---- */

int emit_fd_high(int fd)
{
	static const int targets[] = { 1000, 500, 200, 100, 10 };
	/* no getrlimit first: a target at or above RLIMIT_NOFILE fails with
	 * EINVAL, a full table above it with EMFILE, and the next is tried */
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		int nfd = fcntl(fd, F_DUPFD_CLOEXEC, targets[i]);
		if (nfd >= 0) {
			close(fd);
			return nfd;
		}
	}
	return fd;
}

static void drop(uint64_t records, uint64_t bytes, int err)
{
	uint64_t zero = 0;
	atomic_compare_exchange_strong(&s_dropped_since, &zero, sys_now_ns());
	atomic_fetch_add(&s_dropped_records, records);
	atomic_fetch_add(&s_dropped_bytes, bytes);
	if (err)
		atomic_store(&s_drop_err, err);
}

void emit_dropped(uint64_t records, uint64_t bytes)
{
	drop(records, bytes, 0);
}

static uint64_t count_records(const char *p, size_t len)
{
	uint64_t n = 0;
	for (size_t off = 0; off + 4 <= len;) {
		uint16_t type, size;
		__builtin_memcpy(&type, p + off, 2);
		__builtin_memcpy(&size, p + off + 2, 2);
		if (type & FSK_TINY) {
			n += type != FSK_MPAD || size;
			off += type & FSK_MICRO ? 4 : 8;
			continue;
		}
		if (off + sizeof(struct fsk_rec) > len || size < sizeof(struct fsk_rec))
			break;
		off += size;
		n += type != FSK_REC_CTX && type != FSK_REC_CBASE;
	}
	return n;
}

static void stream_fail(const char *what, int err)
{
	if (atomic_exchange(&s_dead, 1))
		return;
	lost_say(what, s_path, err);
}

/* Reopens the stream when the program closed our fd or put another file
 * on its number. Returns 0 when the fd is ours again, with the file's
 * size in *size. */
static int stream_check(uint64_t *size)
{
	struct stat st;
	*size = 0;
	if (s_fd >= 0 && sys_fstat(s_fd, &st) == 0 && st.st_dev == s_dev && st.st_ino == s_ino) {
		if (st.st_nlink == 0) {
			stream_fail("trace file was removed:", ENOENT);
			return -1;
		}
		*size = (uint64_t)st.st_size;
		return 0;
	}
	int expect = 0;
	if (!atomic_compare_exchange_strong(&s_reopen_lock, &expect, 1))
		return -1;
	int fd = open(s_path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	int ok = fd >= 0 && sys_fstat(fd, &st) == 0 && st.st_dev == s_dev && st.st_ino == s_ino;
	if (!ok) {
		int err = fd < 0 ? errno : ESTALE;
		if (fd >= 0)
			close(fd);
		atomic_store(&s_reopen_lock, 0);
		stream_fail("cannot reopen trace file", err);
		return -1;
	}
	s_fd = emit_fd_high(fd);
	atomic_store(&s_reopen_lock, 0);
	*size = (uint64_t)st.st_size;
	return 0;
}

static void write_dropped(void);

/* Writes whole records, a then b (a may be empty), after one check that
 * the fd is still our stream; on failure counts them as dropped. */
static void stream_write2(const char *a, size_t alen, const char *b, size_t blen)
{
	if (!alen && !blen)
		return;
	if (unlikely(atomic_load_explicit(&s_hdr, memory_order_acquire) != HDR_DONE) && hdr_claim()) {
		hdr_write(a, alen, b, blen);
		return;
	}
	uint64_t size;
	if (atomic_load(&s_dead) || stream_check(&size) < 0) {
		drop(count_records(a, alen) + count_records(b, blen), alen + blen, 0);
		return;
	}
	int r = sys_write2_all(s_fd, a, alen, b, blen);
	if (r == -EBADF && stream_check(&size) == 0)
		r = sys_write2_all(s_fd, a, alen, b, blen);
	if (r < 0) {
		drop(count_records(a, alen) + count_records(b, blen), alen + blen, -r);
		stream_fail("cannot write trace file", r);
		return;
	}
	atomic_store_explicit(&s_end, size + alen + blen, memory_order_relaxed);
	if (unlikely(atomic_load(&s_dropped_records) != atomic_load(&s_dropped_reported)))
		write_dropped();
}

static __thread struct emit_hold *t_hold;

/* A signal handler on this thread sees busy set before anything of h
 * is read or changed, and cleared only after: one that came before saw
 * it clear and used h to the end, so h->len is read after setting it. */
static inline void hold_busy(struct emit_hold *h, uint32_t v)
{
	atomic_signal_fence(memory_order_seq_cst);
	h->busy = v;
	atomic_signal_fence(memory_order_seq_cst);
}

/* Writes out what h holds, with b after it. */
static void hold_write(struct emit_hold *h, const char *b, size_t blen)
{
	hold_busy(h, 1);
	stream_write2(h->buf, h->len, b, blen);
	h->len = 0;
	hold_busy(h, 0);
}

static void stream_write(const char *p, size_t len)
{
	struct emit_hold *h = t_hold;
	if (!h || h->busy) {
		stream_write2(NULL, 0, p, len);
		return;
	}
	hold_busy(h, 1);
	if (h->len + len > sizeof(h->buf)) {
		stream_write2(h->buf, h->len, p, len);
		h->len = 0;
	} else {
		__builtin_memcpy(h->buf + h->len, p, len);
		h->len += (uint32_t)len;
	}
	hold_busy(h, 0);
}

static void hold_flush(void)
{
	struct emit_hold *h = t_hold;
	if (h && !h->busy && h->len)
		hold_write(h, NULL, 0);
}

void emit_hold_begin(struct emit_hold *h)
{
	h->outer = t_hold;
	h->len = 0;
	h->busy = 0;
	if (!h->outer)
		t_hold = h;
}

void emit_hold_end(struct emit_hold *h)
{
	if (h->outer)
		return;
	hold_flush();
	t_hold = NULL;
	atomic_signal_fence(memory_order_seq_cst);
	if (h->len) /* a signal handler's, held before t_hold was cleared */
		hold_write(h, NULL, 0);
}

static void write_dropped(void)
{
	uint64_t n = atomic_load(&s_dropped_records);
	uint64_t seen = atomic_exchange(&s_dropped_reported, n);
	if (n == seen)
		return;
	struct {
		struct fsk_rec h;
		struct fsk_dropped d;
	} r = { 0 };
	fsk_rec_init(&r.h, FSK_REC_DROPPED, sizeof(r), sys_now_ns());
	r.h.tid = (uint32_t)self_tid();
	r.d.records = n;
	r.d.bytes = atomic_load(&s_dropped_bytes);
	r.d.since_ns = atomic_load(&s_dropped_since);
	r.d.err = atomic_load(&s_drop_err);
	if (s_fd >= 0)
		sys_write_all(s_fd, &r, sizeof(r));
}

int emit_stream_fd(void)
{
	return s_fd;
}

char *emit_put_str(char *p, const char *s, const char *end)
{
	return emit_put_strn(p, s, s ? (uint32_t)sys_strlen(s) : 0, end);
}

char *emit_put_strn(char *p, const char *s, uint32_t n, const char *end)
{
	if (p + 4 + n > end)
		n = end - p >= 4 ? (uint32_t)(end - p - 4) : 0;
	if (p + 4 > end)
		return p;
	*(uint32_t *)(void *)p = n;
	p += 4;
	if (n)
		__builtin_memcpy(p, s, n);
	p += n;
	while (((uintptr_t)p & 3) && p < end)
		*p++ = 0;
	return p;
}

/* Creates the stream file (a fork child first tries the spare its parent
 * made) and puts it on a high fd. 0 or -errno. */
static int stream_create(void)
{
	char *end = s_path + sizeof(s_path);
	int fd = -1;
	uint32_t seq;
	int spare = 1;
	struct stat st;
	int have_st = 0;
	for (seq = 0; seq < 100000; seq++) {
		char *p = sys_stpcpy(s_path, G.dir, end);
		p = sys_stpcpy(p, "/", end);
		p = sys_utoa(p, (uint64_t)G.pid, end);
		p = sys_stpcpy(p, ".", end);
		p = sys_utoa(p, seq, end);
		sys_stpcpy(p, FSK_STREAM_SUFFIX, end);
		if (spare) {
			fd = spare_take(s_path, &st);
			if (fd >= 0) {
				have_st = 1;
				break;
			}
			if (fd == -EEXIST)
				continue;
			spare = 0;
		}
		fd = open(s_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_APPEND, 0600);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0) {
		int e = errno;
		spare_forget();
		return -e;
	}
	if (!have_st && sys_fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	s_dev = st.st_dev;
	s_ino = st.st_ino;
	s_hdr_seq = seq;
	s_fd = emit_fd_high(fd);
	return 0;
}

void emit_open_stream(uint32_t ppid, uint64_t parent_fork_ns, const char *fail_msg)
{
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	s_hdr_start_ns = sys_now_ns();
	s_hdr_rt_ns = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
	s_hdr_ppid = ppid;
	s_hdr_fork_ns = parent_fork_ns;
	s_hdr_fail = fail_msg;
	s_fd = -1;
	atomic_store(&s_dead, 0);
	atomic_store(&s_ended, 0);
	atomic_store_explicit(&s_hdr, HDR_PENDING, memory_order_release);
}

/* Takes the header's writing; 0 when it is written (or being written by
 * another thread, which is waited for: nothing may land before it). */
static int hdr_claim(void)
{
	int expect = HDR_PENDING;
	if (atomic_compare_exchange_strong(&s_hdr, &expect, HDR_WRITING))
		return 1;
	for (int i = 0; i < 100000 && atomic_load(&s_hdr) == HDR_WRITING; i++)
		sched_yield();
	return 0;
}

/* The stream could not be made or its header written: said once, its
 * records dropped, and this image (or fork child) runs on untraced. */
static void hdr_failed(const char *a, size_t alen, const char *b, size_t blen, int err)
{
	drop(count_records(a, alen) + count_records(b, blen), alen + blen, -err);
	atomic_store(&s_dead, 1);
	lost_say(s_hdr_fail, G.dir, err);
	G.active = 0;
	G.hot = FSK_HOT_OFF;
	atomic_store_explicit(&s_hdr, HDR_DONE, memory_order_release);
}

/* The header, then a and b, in one write: under the claim (hdr_claim).
 * A stream whose header could not be written is only noise for a reader:
 * it is removed and the stream is dead. 0 or -errno. */
static int hdr_write(const char *a, size_t alen, const char *b, size_t blen)
{
	int r = stream_create();
	if (r < 0) {
		hdr_failed(a, alen, b, blen, r);
		return r;
	}
	if (!G.exe[0])
		init_exe_path();
	/* Header: fixed part, exe, argv; argv is cut to keep it under 64 KiB. */
	uint32_t size = sizeof(struct fsk_header) + fsk_str_size(G.exe);
	uint32_t argc = 0, flags = 0;
	for (int i = 0; G.argv && i < G.argc && G.argv[i]; i++) {
		uint32_t s = fsk_str_size(G.argv[i]);
		if (size + s > 60000) {
			flags |= FSK_HF_ARGV_TRUNC;
			break;
		}
		size += s;
		argc++;
	}
	size = (size + 7) & ~7u;
	/* a sampled stream says so in its first record, written with the header */
	uint32_t extra = G.malloc_on && G.sample_bytes ? 16 + sizeof(struct fsk_sample) : 0;
	/* most headers fit on the stack: a mapping costs a fork child an
	 * mmap, a page fault and an munmap */
	char small[2048] __attribute__((aligned(8)));
	char *buf = size + extra <= sizeof(small) ? small : sys_mmap(size + extra);
	r = -ENOMEM;
	if (buf) {
		__builtin_memset(buf, 0, size + extra);
		struct fsk_header *h = (void *)buf;
		__builtin_memcpy(h->magic, FSK_MAGIC, 8);
		h->version = FSK_VERSION;
		h->header_fixed = sizeof(*h);
		h->hdr_size = size;
		h->pid = (uint32_t)G.pid;
		h->ppid = s_hdr_ppid;
		h->seq = s_hdr_seq;
		h->page_size = G.page_size;
		h->start_ns = s_hdr_start_ns;
		h->start_realtime_ns = s_hdr_rt_ns;
		h->clock_id = CLOCK_MONOTONIC;
		h->flags = flags | (G.malloc_on ? FSK_HF_MALLOC : 0) | (extra ? FSK_HF_SAMPLED : 0) |
			   (G.malloc_on && !real.malloc_is_glibc ? FSK_HF_MALLOC_OTHER : 0);
		h->uid = (uint32_t)getuid();
		h->argc = argc;
		h->parent_start_ns = s_hdr_fork_ns;
		h->stack_depth = (uint32_t)G.stack_depth;
		h->scan_ms = (uint32_t)G.scan_ms;
		h->stack_table = unwind_stack_table();
		char *p = buf + sizeof(*h), *bend = buf + size;
		p = emit_put_str(p, G.exe, bend);
		for (uint32_t i = 0; i < argc; i++)
			p = emit_put_str(p, G.argv[i], bend);
		if (extra) {
			struct fsk_rec *sr = (void *)(buf + size);
			fsk_rec_init(sr, FSK_REC_SAMPLE, extra, h->start_ns);
			sr->tid = (uint32_t)G.pid;
			struct fsk_sample *sp = (void *)(sr + 1);
			sp->mean_bytes = G.sample_bytes;
			sp->seed = G.sample_seed;
		}
		struct iovec v[3] = { { buf, size + extra }, { (void *)a, alen }, { (void *)b, blen } };
		r = sys_writev_all(s_fd, v, 3);
		if (buf != small)
			sys_munmap(buf, size + extra);
	}
	if (r < 0) { /* a stream without its header is only noise for a reader */
		unlink(s_path);
		close(s_fd);
		s_fd = -1;
		hdr_failed(a, alen, b, blen, r);
		return r;
	}
	if (extra)
		atomic_fetch_add(&s_direct_records, 1);
	atomic_store_explicit(&s_end, size + extra + alen + blen, memory_order_relaxed);
	atomic_store_explicit(&s_hdr, HDR_DONE, memory_order_release);
	return 0;
}

void emit_header_flush(void)
{
	if (atomic_load(&s_hdr) != HDR_DONE && hdr_claim())
		hdr_write(NULL, 0, NULL, 0);
}

/* ---- the malloc clock ----
 *
 * clock_gettime costs ~25 ns, as much as the rest of a traced malloc.
 * Where the kernel itself keeps time with the TSC (so it is invariant and
 * synchronised across CPUs), a record takes rdtsc and scales it from the
 * thread's last (tsc, CLOCK_MONOTONIC) pair; the pair is renewed when it
 * is older than ~100 us. The scale comes from the first pair of the
 * process and the latest one (so it sharpens as the process ages) and is
 * lowered by 50 ppm (calibration error is below 10 ppm after 2 ms), so the
 * estimate lags the real clock rather than lead it: a lifecycle record,
 * read from the real clock later, never sorts before a malloc that came
 * first.
 *
 * Where the kernel keeps time otherwise (a VM booted with kvm-clock and
 * tsc=unstable), a record reads clock_gettime alone: ~27 ns there, where
 * the bracketed pair costs twice that and would serve no later record.
 */
#define CLOCK_RESYNC_NS 100000ull
#define CLOCK_CAL_MIN_NS 2000000ull  /* calibrate over at least 2 ms */
#define CLOCK_CAL_MAX_NS 1000000000ull

static uint64_t s_cal_tsc, s_cal_ns;  /* first pair of the process */
_Atomic int emit_cal_state;           /* EMIT_CAL_* (emit.h) */
_Atomic uint64_t emit_tsc_mult;   /* ns per tick << 32; 0 = not calibrated */
_Atomic uint64_t emit_tsc_resync; /* ticks in CLOCK_RESYNC_NS */

/* Does the kernel keep CLOCK_MONOTONIC with the TSC? Then it is invariant
 * and synchronised, and scaling it is exact enough. */
static int clock_tsc_usable(void)
{
	static const char path[] = "/sys/devices/system/clocksource/clocksource0/current_clocksource";
	char buf[16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	return n >= 4 && buf[0] == 't' && buf[1] == 's' && buf[2] == 'c' && buf[3] == '\n';
}

static void clock_calibrate(uint64_t tsc, uint64_t ns)
{
	int st = atomic_load_explicit(&emit_cal_state, memory_order_acquire);
	if (st == EMIT_CAL_PLAIN)
		return;
	if (st == EMIT_CAL_UNSET) {
		int expect = EMIT_CAL_UNSET;
		if (atomic_compare_exchange_strong(&emit_cal_state, &expect, EMIT_CAL_TAKING)) {
			s_cal_tsc = tsc;
			s_cal_ns = ns;
			atomic_store_explicit(&emit_cal_state, EMIT_CAL_FIRST, memory_order_release);
		}
		return;
	}
	if (st != EMIT_CAL_FIRST || ns - s_cal_ns < CLOCK_CAL_MIN_NS || tsc <= s_cal_tsc)
		return;
	uint64_t dns = ns - s_cal_ns, dt = tsc - s_cal_tsc;
	uint64_t old = atomic_load_explicit(&emit_tsc_mult, memory_order_relaxed);
	if (old && dns > CLOCK_CAL_MAX_NS)
		return; /* sharp enough */
	if (!old && !clock_tsc_usable()) {
		atomic_store(&emit_cal_state, EMIT_CAL_PLAIN);
		return;
	}
	unsigned __int128 m = ((unsigned __int128)dns << 32) / dt;
	m -= m / 20000; /* -50 ppm: lag, never lead */
	if (m == 0 || m >> 40)
		return;
	atomic_store_explicit(&emit_tsc_resync, (CLOCK_RESYNC_NS << 32) / (uint64_t)m,
			      memory_order_relaxed);
	atomic_store_explicit(&emit_tsc_mult, (uint64_t)m, memory_order_relaxed);
}

/* The pair takes the tick count after the clock read, so an estimate from
 * it is never ahead of the clock; it lags by the time between the two
 * reads, which is also how far two threads' stamps can disagree. So the
 * clock read is bracketed by counter reads, and taken again (a few times
 * at most) when an interrupt or preemption came in between: the pair
 * with the smallest bracket is kept. */
#define CLOCK_PAIR_TRIES 4
#define CLOCK_PAIR_TICKS 1000 /* ~0.4 us at 2.6 GHz */

static __attribute__((noinline)) uint64_t clock_resync(struct tbuf *b)
{
	uint64_t ns = 0, tsc = 0, best = ~0ull;
	for (int i = 0; i < CLOCK_PAIR_TRIES && best > CLOCK_PAIR_TICKS; i++) {
		_mm_lfence();
		uint64_t t1 = __rdtsc();
		_mm_lfence();
		uint64_t n = sys_now_ns();
		_mm_lfence();
		uint64_t t2 = __rdtsc();
		if (t2 - t1 < best) {
			best = t2 - t1;
			ns = n;
			tsc = t2;
		}
	}
	b->ref_tsc = tsc;
	b->ref_ns = ns;
	clock_calibrate(tsc, ns);
	return ns;
}

/* Now, for a record of the buffer's thread; never before its last one.
 * own: FSK_TS_CLOCK_OWN (emit_clock_after_read). */
static inline uint64_t clock_now(struct tbuf *b, int own)
{
	uint64_t read, ns = emit_clock_quick(b, &read);
	if (!ns)
		ns = clock_resync(b);
	if (unlikely(ns < b->last_ns))
		ns = b->last_ns;
	b->last_ns = ns;
	_mm_lfence(); /* (rare path) whatever counter read made ns is done */
	emit_clock_after_read(b, 0, ns, own);
	return ns;
}

/* Threads with a buffer: only those can be reusing a stamp. */
static _Atomic int s_bufs;

static int others_record(void)
{
	/* t_through: a young thread's buffer (written through) counts too */
	return atomic_load_explicit(&s_bufs, memory_order_relaxed) > (t_buf || t_through);
}

/* A record that is not a compact one of its thread's own window, with
 * emit_clock read (st) after its stamp: sets EMIT_CLOCK_MULTI when another
 * thread may be reusing a stamp; returns the word as it is then. */
static uint64_t clock_multi(uint64_t st)
{
	if (!(st & EMIT_CLOCK_MULTI) && others_record())
		st = atomic_fetch_or(&emit_clock, EMIT_CLOCK_MULTI) | EMIT_CLOCK_MULTI;
	return st;
}

/* Whether b's thread records fast enough for reused stamps to pay
 * (emit.h), over the records since its window started (ns: the time
 * just read for this record; so also before the TSC is calibrated, the
 * first 2 ms of a process, when every read is a clock_gettime). A cold
 * thread looks again every EMIT_REUSE records, a hot one at each claim
 * once the window holds that many or lasted as long as they would take
 * at the hot rate; each look starts a new window. */
static int clock_hot(struct tbuf *b, uint64_t ns)
{
	uint64_t dn = b->records - b->rate_recs;
	if (dn < EMIT_REUSE && !b->hot)
		return 0;
	uint64_t dt = ns - b->rate_ns; /* a thread's stamps never go back */
	if (dn < EMIT_REUSE && dt < (uint64_t)EMIT_REUSE * EMIT_HOT_NS)
		return 1;
	b->rate_ns = ns;
	b->rate_recs = b->records;
	b->hot = dn * EMIT_HOT_NS >= dt;
	return b->hot;
}

void emit_clock_claim(struct tbuf *b, uint64_t st, int own, uint64_t ns)
{
	uint64_t seen = b->clock;
	if (!own)
		st = clock_multi(st);
	/* Without a flusher while the process forks (init_fork_quiet), no
	 * epoch would end a reused stamp: each record reads the clock and
	 * comes here, where the first one after that time starts the flusher. */
	if (unlikely(init_quiet_until)) {
		if (ns < init_quiet_until) {
			b->clock = ~0ull;
			b->grant = b->reuse = 0;
			return;
		}
		init_quiet_end();
	}
	if (!(st & EMIT_CLOCK_MULTI) && !clock_hot(b, ns)) {
		b->clock = ~0ull; /* the next record comes back here */
		b->grant = b->reuse = 0;
		return;
	}
	while (!(st & (EMIT_CLOCK_MULTI | EMIT_CLOCK_REUSING))) {
		if (atomic_compare_exchange_weak(&emit_clock, &st, st | EMIT_CLOCK_REUSING)) {
			st |= EMIT_CLOCK_REUSING;
			/* the flusher's millisecond epochs bound how long
			 * stamps get reused: wake it if it is not ticking */
			if (!atomic_load(&emit_fast_ticks)) {
				int err = errno;
				init_flusher_kick();
				errno = err;
			}
			break;
		}
	}
	b->clock = st;
	int plain = atomic_load_explicit(&emit_cal_state, memory_order_relaxed) == EMIT_CAL_PLAIN;
	b->grant = st & EMIT_CLOCK_MULTI ? 0 : plain ? EMIT_REUSE_PLAIN : EMIT_REUSE;
	/* The stamp in hand was read before this look: reused only when the
	 * word is the one the look before it saw. */
	b->reuse = st == seen ? b->grant : 0;
}

void emit_clock_global(uint64_t ts)
{
	clock_multi(emit_clock_load_after(ts));
}

/* Heap windows and the one thread that allocates in each: an entry is
 * gen << 48 | window << 24 | tid, tid WIN_SHARED once a second thread
 * allocated there. A fork child starts a new generation: its one thread
 * has none of the parent's tids, and older entries count as free slots
 * (a lookup stops at one, an insertion takes the first). */
#define WIN_SHARED 0xffffffull
static uint64_t s_win_gen = 1; /* 1..0xffff: an empty slot is generation 0 */

static int win_lookup(uint64_t w, uint64_t tid, int claim)
{
	uint64_t gen = s_win_gen, key = gen << 48 | w << 24;
	uint32_t i = (uint32_t)((w * 0x9e3779b97f4a7c15ull) >> (64 - WIN_BITS));
	for (uint32_t n = 0; n < WIN_SLOTS; n++, i = (i + 1) & (WIN_SLOTS - 1)) {
		uint64_t v = 0;
		/* an empty slot taken with a write first: the table's page then
		 * costs one fault, not a zero-page map and a copy */
		if (claim && atomic_compare_exchange_strong(&s_tw.win[i], &v, key | tid))
			return 1;
		if (!claim)
			v = atomic_load_explicit(&s_tw.win[i], memory_order_acquire);
		if (v >> 48 == gen) {
			if ((v & ~0xffffffull) != key)
				continue;
			uint64_t who = v & 0xffffff;
			if (who == tid)
				return 1;
			if (claim && who != WIN_SHARED)
				atomic_compare_exchange_strong(&s_tw.win[i], &v, key | WIN_SHARED);
			return 0;
		}
		if (!claim)
			return 0; /* a free slot ends the probe: nobody allocated there */
		if (atomic_compare_exchange_strong(&s_tw.win[i], &v, key | tid))
			return 1;
		if (v >> 48 == gen && (v & ~0xffffffull) == key)
			return (v & 0xffffff) == tid;
		/* another window took the slot: probe on */
	}
	return 0;
}

int emit_clock_own(struct tbuf *b, uint64_t blk, int claim)
{
	if (blk == ~0ull || !blk || (uint32_t)b->tid >= WIN_SHARED)
		return 0;
	uint64_t w = blk >> EMIT_WIN_SHIFT;
	if (w >> 24)
		return 0; /* beyond the 24 bits of an entry (5-level paging) */
	if (w == b->own_win)
		return 1;
	if (w == b->own_win2 || win_lookup(w, (uint32_t)b->tid, claim)) {
		b->own_win2 = b->own_win;
		b->own_win = w;
		return 1;
	}
	return 0;
}

/* Might a thread be reusing a stamp (emit.h)? The flusher then starts
 * epochs more often. */
int emit_clock_reused(void)
{
	uint64_t st = atomic_load(&emit_clock);
	return (st & EMIT_CLOCK_REUSING) && !(st & EMIT_CLOCK_MULTI);
}

int emit_clock_reusing(void)
{
	return (atomic_load(&emit_clock) & EMIT_CLOCK_REUSING) != 0;
}

/* A flusher tick: a new epoch with neither bit (emit.h). */
void emit_clock_tick(void)
{
	uint64_t st = atomic_load(&emit_clock);
	while (!atomic_compare_exchange_weak(&emit_clock, &st,
					     ((st >> 33) + 1) * EMIT_CLOCK_EPOCH))
		;
}

/* ---- per-thread buffers ---- */

static void tb_lock(struct tbuf *b, int32_t tid)
{
	int32_t expect = 0;
	while (!atomic_compare_exchange_weak_explicit(&b->lock, &expect, tid, memory_order_acquire,
						      memory_order_relaxed)) {
		expect = 0;
		sched_yield();
	}
}

static int tb_trylock(struct tbuf *b, int32_t tid)
{
	int32_t expect = 0;
	return atomic_compare_exchange_strong_explicit(&b->lock, &expect, tid, memory_order_acquire,
						       memory_order_relaxed);
}

static void tb_unlock(struct tbuf *b)
{
	atomic_store_explicit(&b->lock, 0, memory_order_release);
}

/* Writes [from, to) of a buffer of b's thread behind a CTX record that
 * names the thread; the CTX goes into the 16 bytes before it, which are
 * the head room or already written. */
static void tb_write_part(struct tbuf *b, char *data, uint32_t from, uint32_t to)
{
	if (to <= from)
		return;
	struct fsk_rec ctx;
	fsk_rec_init(&ctx, FSK_REC_CTX, sizeof(ctx), 0);
	ctx.tid = (uint32_t)b->tid;
	/* from is a multiple of 4 only after a micro record */
	__builtin_memcpy(data + from - TB_HEAD, &ctx, sizeof(ctx));
	stream_write(data + from - TB_HEAD, to - from + TB_HEAD);
}

/* The full buffer left to the flusher, if any, then becomes the spare.
 * Caller holds the lock. */
static void tb_write_full(struct tbuf *b)
{
	if (!b->full)
		return;
	tb_write_part(b, b->full, b->full_from, b->full_to);
	b->spare = b->full;
	b->full = NULL;
}

/* Writes everything committed and not written yet, oldest first: the
 * full buffer, then the committed part of the current one. Caller holds
 * the lock. */
static void tb_write(struct tbuf *b)
{
	tb_write_full(b);
	uint32_t c = atomic_load_explicit(&b->committed, memory_order_acquire);
	if (c > b->flushed) {
		tb_write_part(b, b->data, b->flushed, c);
		b->flushed = c;
	}
}

/*
 * Where a full buffer's write ends. A page cache that holds files in
 * large folios (ext4 on the test VM's Linux 6.18) makes one of up to
 * 128 KiB only where the writes fill it whole: 42 MiB written in 128 KiB
 * writes took 13.5 ms of CPU at offsets that are multiples of 128 KiB,
 * 15.0 ms 100 bytes off them (a 128 KiB buffer ends 8 bytes short of
 * full, so its writes were never aligned). So an empty buffer is given
 * the room that ends its write at the stream's next 128 KiB boundary
 * (tb_pad fills the last few bytes), as long as nobody else writes
 * before it. Where that room would be less than TB_ALIGN_MIN, the write
 * stops twice that short of a whole buffer, and the next one can align.
 */
#define TB_ALIGN (128u * 1024u)
#define TB_ALIGN_MIN 4096u
#define TB_PAD_MAX 256u

_Static_assert(TB_ALIGN <= TB_CAP, "a whole TB_ALIGN fits a buffer");

/* Where the stream will end when what is to go before b's next write
 * (the full buffer b left to the flusher) has gone out. */
static uint64_t tb_stream_end(const struct tbuf *b)
{
	uint64_t o = atomic_load_explicit(&s_end, memory_order_relaxed);
	return b->full ? o + b->full_to - b->full_from + TB_HEAD : o;
}

static uint32_t tb_cap(const struct tbuf *b)
{
	uint32_t left = TB_ALIGN - (uint32_t)(tb_stream_end(b) % TB_ALIGN);
	return left >= TB_ALIGN_MIN ? left : TB_CAP - 2 * TB_ALIGN_MIN;
}

static void tb_empty(struct tbuf *b)
{
	b->flushed = TB_HEAD;
	atomic_store_explicit(&b->committed, TB_HEAD, memory_order_relaxed);
	b->cap = tb_cap(b);
}

/* b is about to be written out (a record did not fit under b->cap):
 * MPADs after its records up to the end that puts the stream at a
 * TB_ALIGN boundary, when that is near. Its owner, under the lock. */
static void tb_pad(struct tbuf *b)
{
	uint32_t c = atomic_load_explicit(&b->committed, memory_order_relaxed);
	if (c <= b->flushed)
		return; /* nothing to write (written through): no write of pads alone */
	uint64_t end = tb_stream_end(b) + (c - b->flushed + TB_HEAD);
	uint32_t gap = (TB_ALIGN - (uint32_t)(end % TB_ALIGN)) % TB_ALIGN;
	if (!gap || gap > TB_PAD_MAX || gap % 4 || c + gap > TB_CAP)
		return;
	for (uint32_t i = 0; i < gap; i += 4)
		*(uint32_t *)(b->data + c + i) = FSK_MPAD;
	atomic_store_explicit(&b->committed, c + gap, memory_order_release);
}

static void key_destructor(void *v)
{
	emit_thread_exit(v);
}

/* Called once by the constructor, single-threaded, after G.pid is set:
 * a preloaded library's constructor runs on the main thread, whose tid
 * is the pid (the START and EXIT paths then ask the kernel for neither). */
void emit_init(void)
{
	t_tid = G.pid;
	if (!s_key_ok)
		s_key_ok = pthread_key_create(&s_key, key_destructor) == 0 ? 1 : -1;
}

/* The pages of ours a fork's side writes at every fork (fork_populate):
 * the direct-record counter's and the thread slots' first. */
int emit_hot_pages(uint64_t *out)
{
	out[0] = (uint64_t)(uintptr_t)&s_direct_records;
	out[1] = (uint64_t)(uintptr_t)&s_tw;
	return 2;
}

/* A thread buffer. What it holds at a fork is the parent's to write (the
 * child starts empty: emit_reset_child), so a fork child gets it empty
 * (MADV_WIPEONFORK): the fork copies none of its page tables, and the
 * parent's next records into it take no copy-on-write fault while the
 * child lives (a bash loop: ~3 such faults a fork). */
static char *tb_map(void)
{
	char *d = sys_mmap(TB_CAP);
	if (d) {
		syscall(SYS_madvise, d, TB_CAP, MADV_WIPEONFORK);
		scan_own_add(d, TB_CAP);
	}
	return d;
}

static struct tbuf *tb_acquire(void)
{
	for (int i = 0; i < TB_MAX; i++) {
		struct tbuf *b = &s_tw.slots[i];
		int expect = 0;
		/* no load first: the slots' first touch is then a write, one
		 * page fault instead of a zero-page map and a copy */
		if (!atomic_compare_exchange_strong(&b->inuse, &expect, 1))
			continue;
		if (!b->data) {
			b->data = tb_map();
			if (!b->data) {
				atomic_store(&b->inuse, 0);
				return NULL;
			}
			atomic_store(&s_slots_mapped, 1);
		}
		b->tid = self_tid();
		b->pending = 0;
		b->records = 0;
		b->base_ns = 0;
		b->last_ns = 0;
		b->last_cns = 0;
		b->clock = ~0ull; /* no value of emit_clock: the first read claims */
		b->reuse = 0;
		b->grant = 0;
		b->own_win = b->own_win2 = ~0ull;
		b->rate_ns = b->rate_recs = 0;
		b->hot = 0;
		b->ho_left = 0;
		b->ho_n = 0;
		atomic_store_explicit(&b->full_ns, 0, memory_order_relaxed);
		b->ref_tsc = 0;
		b->ref_ns = 0;
		tb_empty(b);
		atomic_fetch_add(&s_bufs, 1);
		if (s_key_ok > 0)
			pthread_setspecific(s_key, b);
		if (init_flusher_ensure())
			t_through = b;
		else
			t_buf = b;
		faults_thread_start();
		return b;
	}
	return NULL;
}

/*
 * The thread's buffer is full. Writing it out here would cost the thread
 * the write (~15% of a traced malloc loop's time, copying into the page
 * cache), so where a flusher runs and the thread's other buffer is free,
 * the full one is left to the flusher and the thread goes on in the
 * other. When the flusher has not written the last one yet, the thread
 * writes both itself, oldest first (it waits for the flusher only while
 * that is writing this thread's last one): a thread's records reach the
 * stream in order either way, so compact records follow the CBASE they
 * count from.
 */
static _Atomic int s_full_kick; /* some thread left a full buffer */
static int s_ncpu;               /* CPUs we may run on, 0 = not asked yet */
static _Atomic int s_spare_bufs;  /* second buffers mapped (TB_SPARE_MAX) */

#define TB_BUSY_NS (20ull * 1000 * 1000)
#define TB_HOT_NS (2ull * 1000 * 1000)

static int ncpu(void)
{
	if (!s_ncpu) {
		cpu_set_t set;
		int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
		s_ncpu = n > 0 ? n : 1;
	}
	return s_ncpu;
}

/* Whether the system leaves a CPU for the flusher: fewer tasks than CPUs
 * were runnable when it last looked, itself not counted (the fourth field
 * of /proc/loadavg, "running/total"). The threads of this process alone
 * do not tell: the children of a prefork server each have one busy
 * thread, and all the CPUs (with a busy loop on the other CPU, malloc_bench
 * went 2.84x -> 3.58x). -1 until the flusher looked (the first thread to
 * fill buffers fast asks it to, until it can tell), 1 when /proc cannot
 * be read. */
static _Atomic int s_cpu_free = -1;
static _Atomic uint64_t s_fills; /* buffers filled, for emit_load_check */
static int s_busy_looks;         /* the flusher's: looks in a row that found no CPU free */

#define LOAD_CHECK_NS (10ull * 1000 * 1000)

void emit_load_check(void)
{
	static uint64_t seen, last_ns;
	uint64_t fills = atomic_load_explicit(&s_fills, memory_order_relaxed);
	uint64_t t = sys_now_ns();
	if (fills - seen < 2 || (atomic_load(&s_cpu_free) >= 0 && t - last_ns < LOAD_CHECK_NS))
		return; /* no thread filled buffers since, or looked just now */
	seen = fills;
	last_ns = t;
	char buf[128];
	int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	long running = 0;
	const char *p = buf;
	if (n > 0) {
		buf[n] = 0;
		for (int field = 0; field < 3 && *p; p++)
			field += *p == ' ';
		for (; *p >= '0' && *p <= '9'; p++)
			running = running * 10 + (*p - '0');
	}
	if (n <= 0 || *p != '/' || running <= 0) {
		atomic_store_explicit(&s_cpu_free, 1, memory_order_relaxed); /* cannot tell */
		return;
	}
	/* a kernel thread runnable for a moment is no load: busy only when
	 * two looks in a row say so */
	if (running - 1 < ncpu()) {
		s_busy_looks = 0;
		atomic_store_explicit(&s_cpu_free, 1, memory_order_relaxed);
	} else if (++s_busy_looks >= 2) {
		atomic_store_explicit(&s_cpu_free, 0, memory_order_relaxed);
	}
}

/*
 * Where leaving full buffers to the flusher could pay (tb_handoff_pays),
 * whether it does is measured, not assumed: it saves the thread its
 * write, but the buffers' cache lines then move between CPUs, and on a
 * VM whose virtual CPUs the host runs far apart that cost more than the
 * write. On this 2-CPU VM malloc_bench (events only) took 1.99x with the
 * thread writing its buffers and 3.00x leaving them to the flusher one
 * day, while on others leaving them saved ~15%. So the thread tries both
 * ways, TB_PROBE fills each (the first fill of each way only settles the
 * buffers, its interval is not used), keeps the way whose median fill
 * interval is shorter (leaving only when that is clearly so: it also
 * takes a CPU from the system) for TB_KEEP fills, then measures again.
 * The interval from one fill to the next holds the program's work, the
 * recording, and the write or the cache misses the last fill's way cost.
 */
#define TB_KEEP 256u

static uint32_t median_us(uint32_t *v, uint32_t n)
{
	for (uint32_t i = 1; i < n; i++)
		for (uint32_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
			uint32_t t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v[n / 2];
}

static int tb_handoff_tune(struct tbuf *b, uint64_t interval_ns)
{
	if (G.handoff < 2)
		return G.handoff;
	if (b->ho_left) {
		b->ho_left--;
		return b->ho_pick;
	}
	/* the probe: fills 0 .. TB_PROBE-1 leave the buffer to the flusher,
	 * TB_PROBE .. 2*TB_PROBE-1 write it; fill k's interval says what
	 * fill k-1's way cost (under TB_HOT_NS: tb_handoff_pays) */
	uint32_t k = b->ho_n++, way = k <= TB_PROBE, i = way ? k - 2 : k - TB_PROBE - 2;
	if (k % TB_PROBE != 1 && k > 0) /* not a way's first fill's interval */
		b->ho_iv[way][i] = (uint32_t)(interval_ns / 1000);
	if (k < 2 * TB_PROBE)
		return k < TB_PROBE;
	uint32_t leave = median_us(b->ho_iv[1], TB_PROBE - 1);
	uint32_t write = median_us(b->ho_iv[0], TB_PROBE - 1);
	b->ho_pick = (uint64_t)leave * 100 < (uint64_t)write * 97;
	b->ho_n = 0;
	b->ho_left = TB_KEEP;
	return b->ho_pick;
}

/* Whether leaving the buffer to the flusher can pay: the thread fills
 * buffers fast (its last one less than TB_HOT_NS ago), so the write is a
 * good part of its time, and the flusher likely has a CPU of its own: the
 * system had one free when the flusher last looked (emit_load_check), and
 * fewer threads than there are CPUs filled a buffer in the last
 * TB_BUSY_NS (threads that record little, or wait, leave theirs free).
 * Otherwise the flusher takes the time of a recording thread, or of
 * another process, and costs more than the write it saved (a wake-up, and
 * the buffer's cache lines move between CPUs twice): 2 threads on 2 CPUs
 * went 2.32x -> 2.63x. A thread that fills one now and then (a shell)
 * would wake the flusher for little. */
static int tb_handoff_pays(struct tbuf *self)
{
	uint64_t now = sys_now_ns();
	uint64_t prev = atomic_exchange_explicit(&self->full_ns, now, memory_order_relaxed);
	atomic_fetch_add_explicit(&s_fills, 1, memory_order_relaxed);
	if (!prev || now - prev > TB_HOT_NS || !init_flusher_alive())
		return 0;
	int free = atomic_load_explicit(&s_cpu_free, memory_order_relaxed);
	if (free < 0)
		init_flusher_kick(); /* to look (emit_load_check) */
	if (free <= 0)
		return 0;
	int cpus = ncpu(), busy = 0;
	for (int i = 0; i < TB_MAX && s_tw.slots[i].data; i++) {
		uint64_t t = atomic_load_explicit(&s_tw.slots[i].full_ns, memory_order_relaxed);
		if (t && (int64_t)(now - t) < (int64_t)TB_BUSY_NS && ++busy >= cpus)
			return 0;
	}
	return tb_handoff_tune(self, now - prev);
}

static __attribute__((noinline)) void tb_full(struct tbuf *b)
{
	int handoff = tb_handoff_pays(b);
	tb_lock(b, self_tid());
	tb_pad(b);
	if (handoff && !b->full && !b->spare &&
	    atomic_load(&s_spare_bufs) < (int)TB_SPARE_MAX &&
	    atomic_fetch_add(&s_spare_bufs, 1) < (int)TB_SPARE_MAX) {
		char *d = tb_map(); /* the slot keeps it for its next thread */
		if (!d)
			atomic_fetch_sub(&s_spare_bufs, 1);
		b->spare = d;
	}
	if (handoff && !b->full && b->spare) {
		b->full = b->data;
		b->full_from = b->flushed;
		b->full_to = atomic_load_explicit(&b->committed, memory_order_relaxed);
		b->data = b->spare;
		b->spare = NULL;
		tb_empty(b);
		tb_unlock(b);
		if (!atomic_exchange(&s_full_kick, 1))
			init_flusher_kick();
		return;
	}
	tb_write(b);
	tb_empty(b);
	tb_unlock(b);
}

/* The flusher, when kicked: writes the full buffers threads left it, not
 * the parts being filled (those wait for its tick, in bigger writes). */
void emit_write_full(void)
{
	if (!atomic_exchange(&s_full_kick, 0))
		return;
	int32_t tid = self_tid();
	for (int i = 0; i < TB_MAX; i++) {
		struct tbuf *b = &s_tw.slots[i];
		if (!b->data)
			break;
		if (!tb_trylock(b, tid))
			continue; /* busy: its owner is writing it out itself */
		tb_write_full(b);
		tb_unlock(b);
	}
}

/* The calling thread's buffer with room for `size` more bytes, or NULL
 * (the record is counted as dropped). */
static inline struct tbuf *tb_room(uint32_t size, uint32_t *at)
{
	struct tbuf *b = t_buf;
	if (unlikely(!b)) {
		b = t_through ? t_through : tb_acquire();
		if (!b) {
			drop(1, size, 0);
			return NULL;
		}
	}
	uint32_t c = atomic_load_explicit(&b->committed, memory_order_relaxed);
	if (unlikely(c + size + 4 > b->cap)) {
		tb_full(b);
		c = TB_HEAD;
	}
	if (c & 4) {
		/* after a micro record: an MPAD keeps the next one 8-aligned,
		 * committed with it (emit_commit) or now (compact records) */
		*(uint32_t *)(b->data + c) = FSK_MPAD;
		c += 4;
	}
	*at = c;
	return b;
}

/* Writes out the calling thread's own buffer b, unless we interrupted our
 * own write-out of it (a signal handler): then the next one takes it. */
static void tb_write_own(struct tbuf *b)
{
	int32_t tid = self_tid();
	if (atomic_load(&b->lock) == tid)
		return;
	tb_lock(b, tid);
	tb_write(b);
	tb_unlock(b);
}

/* After a record in write-through mode: out it goes, or, once the child is
 * old enough (or the flusher runs), the thread buffers from now on. */
static void tb_through(struct tbuf *b)
{
	if (!init_flusher_ensure()) {
		t_through = NULL;
		t_buf = b;
		return;
	}
	tb_write_own(b);
}

void *emit_reserve(uint16_t type, uint32_t size, uint64_t ts)
{
	uint32_t c;
	struct tbuf *b = tb_room(size, &c);
	if (!b)
		return NULL;
	if (ts == FSK_TS_CLOCK || ts == FSK_TS_CLOCK_OWN) {
		ts = clock_now(b, ts == FSK_TS_CLOCK_OWN);
	} else {
		/* an event (an mmap) orders against other threads' reused
		 * stamps; STACK and MODULE records define ids, no event */
		if (type != FSK_REC_STACK && type != FSK_REC_MODULE)
			emit_clock_global(ts);
		if (ts < b->last_ns)
			ts = b->last_ns; /* a thread's records never go back in time */
		else
			b->last_ns = ts;
	}
	struct fsk_rec *r = (void *)(b->data + c);
	r->type = type;
	r->size = (uint16_t)size;
	r->tid = (uint32_t)b->tid;
	r->ts_ns = ts;
	/* with the MPAD tb_room put before it, if any */
	b->pending = size + c - atomic_load_explicit(&b->committed, memory_order_relaxed);
	return r;
}

/* The compact record of emit_compact() (emit.h) when its fast path cannot
 * write it: takes a buffer, makes room, resyncs the clock, and puts a CBASE
 * in front when the thread has none or its last one is more than 4 s old. */
void emit_compact_slow(uint32_t head, uint64_t w1, uint64_t w2, uint64_t blk, uint64_t a, int ev,
		       uint32_t stack)
{
	int err = errno;
	uint32_t c, size = head >> 16;
	struct tbuf *b = tb_room(size + (uint32_t)sizeof(struct fsk_rec), &c);
	if (!b) {
		errno = err;
		return;
	}
	int own = emit_clock_own(b, blk, (head & 0xffff) != FSK_REC_CFREE);
	uint64_t now = clock_now(b, own), dt = now - b->base_ns;
	char *p = b->data + c;
	if (!b->base_ns || dt > UINT32_MAX) {
		struct fsk_rec *base = (void *)p;
		fsk_rec_init(base, FSK_REC_CBASE, sizeof(*base), now);
		base->tid = (uint32_t)b->tid;
		b->base_ns = now;
		dt = 0;
		p += sizeof(*base);
	}
	uint64_t *r = (void *)p;
	r[0] = head | dt << 32;
	r[1] = w1;
	if (size > 16)
		r[2] = w2;
	b->last_cns = now;
	emit_compact_done(b, (uint32_t)(p + size - b->data), a, ev, stack);
	if (unlikely(b == t_through))
		tb_through(b);
	errno = err;
}

/* A record written through goes out at its commit, except a STACK or
 * MODULE record: those define ids for the event record that follows in
 * the same call (the first stack of an image brings a MODULE record for
 * each object loaded), and go out with it, in one write. */
void emit_commit(void)
{
	struct tbuf *b = t_buf;
	if (unlikely(!b))
		b = t_through; /* never both set */
	uint32_t c = atomic_load_explicit(&b->committed, memory_order_relaxed);
	b->records++;
	atomic_store_explicit(&b->committed, c + b->pending, memory_order_release);
	if (unlikely(b == t_through)) {
		const char *q = b->data + c;
		if (*(const uint32_t *)q == FSK_MPAD)
			q += 4;
		uint16_t type = ((const struct fsk_rec *)q)->type;
		if (type == FSK_REC_STACK || type == FSK_REC_MODULE)
			return;
		int err = errno;
		tb_through(b);
		errno = err;
	} else if (unlikely(init_quiet_until) && b->last_ns >= init_quiet_until) {
		int err = errno;
		init_quiet_end(); /* a record with a stamp of its own (emit_reserve) */
		errno = err;
	}
}

void emit_flush_self(void)
{
	struct tbuf *b = t_buf ? t_buf : t_through; /* the latter: deferred definitions */
	if (b)
		tb_write_own(b);
}

/* The lock, waiting for its holder until `deadline` at most. */
static int tb_lock_until(struct tbuf *b, int32_t tid, uint64_t deadline)
{
	while (!tb_trylock(b, tid)) {
		if (sys_now_ns() >= deadline)
			return 0;
		sched_yield();
	}
	return 1;
}

void emit_flush_all(int wait)
{
	int32_t tid = self_tid();
	uint64_t deadline = wait == EMIT_WAIT_SOME ? sys_now_ns() + EMIT_WAIT_SOME_NS : 0;
	hold_flush();
	emit_clock_tick();
	for (int i = 0; i < TB_MAX && atomic_load(&s_slots_mapped); i++) {
		struct tbuf *b = &s_tw.slots[i];
		if (!b->data)
			break; /* slots are taken in order: none after this */
		if (!atomic_load(&b->inuse) || atomic_load(&b->lock) == tid)
			continue;
		if (wait == 1)
			tb_lock(b, tid);
		else if (!tb_trylock(b, tid) && !(deadline && tb_lock_until(b, tid, deadline)))
			continue;
		tb_write(b);
		tb_unlock(b);
	}
}

/* A record written through read the real clock: the thread's next
 * buffered records must not sort before it (a malloc right after a fork
 * belongs after the FORK), however its TSC estimate lags. */
static void tb_not_before(uint64_t ts)
{
	struct tbuf *b = t_buf;
	if (!b)
		return;
	if (ts > b->last_ns)
		b->last_ns = ts;
	b->reuse = 0; /* the next record reads the clock again */
}

void emit_direct(void *rec, uint32_t size)
{
	struct fsk_rec *r = rec;
	emit_clock_global(r->ts_ns);
	tb_not_before(r->ts_ns);
	r->tid = (uint32_t)self_tid();
	if (!t_guard)
		emit_flush_self();
	atomic_fetch_add(&s_direct_records, 1);
	stream_write(rec, size);
}

void emit_block(void *buf, size_t len)
{
	int32_t tid = self_tid();
	uint64_t n = 0;
	for (size_t off = 0; off + sizeof(struct fsk_rec) <= len; n++) {
		struct fsk_rec *r = (void *)((char *)buf + off);
		if (r->size < sizeof(struct fsk_rec))
			break;
		r->tid = (uint32_t)tid;
		if (!off)
			emit_clock_global(r->ts_ns);
		tb_not_before(r->ts_ns);
		off += r->size;
	}
	atomic_fetch_add(&s_direct_records, n);
	stream_write(buf, len);
}

void emit_thread_exit(void *v)
{
	struct tbuf *b = v;
	if (!b || (b != t_buf && b != t_through))
		return;
	int32_t tid = self_tid();
	tb_lock(b, tid);
	tb_write(b);
	atomic_fetch_add(&s_released_records, b->records);
	b->records = 0;
	tb_empty(b);
	t_buf = NULL;
	t_through = NULL;
	atomic_store_explicit(&b->full_ns, 0, memory_order_relaxed);
	tb_unlock(b);
	atomic_store(&b->inuse, 0);
	atomic_fetch_sub(&s_bufs, 1);
}

void emit_note(uint32_t level, const char *text)
{
	char buf[600];
	struct fsk_rec *h = (void *)buf;
	struct fsk_note *n = (void *)(h + 1);
	char *p = emit_put_str((char *)(n + 1), text, buf + sizeof(buf) - 8);
	while ((uintptr_t)(p - buf) & 7)
		*p++ = 0;
	fsk_rec_init(h, FSK_REC_NOTE, (uint32_t)(p - buf), sys_now_ns());
	n->level = level;
	n->pad = 0;
	emit_direct(buf, (uint32_t)(p - buf));
}

int emit_ended(void)
{
	return atomic_load(&s_ended);
}

void emit_end(uint32_t reason)
{
	if (atomic_load(&s_ended))
		return;
	if (reason != FSK_END_SIGNAL)
		unwind_check_report();
	if (atomic_exchange(&s_ended, 1))
		return;
	hold_flush();
	spare_drop();
	/* in a fatal-signal handler another thread may hold a buffer: wait
	 * for it a little (the flusher writing a full one lets go soon) */
	emit_flush_all(reason != FSK_END_SIGNAL ? 1 : EMIT_WAIT_SOME);
	uint64_t recs = atomic_load(&s_direct_records) + atomic_load(&s_released_records);
	for (int i = 0; i < TB_MAX && atomic_load(&s_slots_mapped) && s_tw.slots[i].data; i++)
		if (atomic_load(&s_tw.slots[i].inuse))
			recs += s_tw.slots[i].records;
	struct {
		struct fsk_rec h;
		struct fsk_end e;
	} r = { 0 };
	fsk_rec_init(&r.h, FSK_REC_END, sizeof(r), sys_now_ns());
	r.e.reason = reason;
	r.e.records = recs;
	r.e.dropped = atomic_load(&s_dropped_records);
	r.h.tid = (uint32_t)self_tid();
	/* not held: a fatal signal's handler ends the process right after */
	stream_write2(NULL, 0, (const char *)&r, sizeof(r));
}

/* Tracing of this image stops for good, the process going on: a NOTE
 * says why, what is buffered goes out with an END that says where, and
 * nothing more is recorded or written (no system call of ours either:
 * a seccomp filter may refuse one by killing the process). The caller
 * has ended the flusher. */
void emit_stop(const char *why)
{
	if (!G.active || t_vfork_child || atomic_load(&s_ended))
		return;
	emit_note(FSK_NOTE_WARN, why);
	emit_end(FSK_END_STOPPED);
	G.active = 0;
	G.hot = FSK_HOT_OFF;
	atomic_store(&s_dead, 1);
}

void emit_reset_child(void)
{
	atomic_store(&s_end, 0); /* its own stream, not made yet */
	for (int i = 0; i < TB_MAX && s_tw.slots[i].data; i++) {
		struct tbuf *b = &s_tw.slots[i];
		atomic_store(&b->lock, 0);
		if (b->full && !b->spare)
			b->spare = b->full; /* the parent writes what it holds */
		b->full = NULL;
		atomic_store_explicit(&b->full_ns, 0, memory_order_relaxed);
		b->ho_left = 0;
		b->ho_n = 0;
		tb_empty(b);
		b->records = 0;
		atomic_store(&b->inuse, 0);
	}
	t_buf = NULL;
	t_through = NULL;
	t_tid = G.pid; /* the thread that forked is the child's only one: its tid is
			* the pid (G.pid is set by then), so the fork path needs no gettid */
	atomic_store(&emit_clock, 0); /* one thread, no reuse yet */
	atomic_store(&s_bufs, 0);
	atomic_store(&s_full_kick, 0);
	atomic_store(&s_cpu_free, -1); /* its flusher looks again */
	s_busy_looks = 0;
	s_win_gen = s_win_gen % 0xffff + 1; /* the parent's windows are none of this thread's */
	atomic_store(&emit_fast_ticks, 0); /* no flusher yet */
	if (s_fd >= 0)
		close(s_fd);
	s_fd = -1;
	atomic_store(&s_reopen_lock, 0);
	atomic_store(&s_direct_records, 0);
	atomic_store(&s_released_records, 0);
	atomic_store(&s_dropped_records, 0);
	atomic_store(&s_dropped_bytes, 0);
	atomic_store(&s_dropped_since, 0);
	atomic_store(&s_dropped_reported, 0);
}
