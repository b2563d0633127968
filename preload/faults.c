/*
 * Precise COW attribution: a perf page-fault sampler per thread
 * (PERF_COUNT_SW_PAGE_FAULTS, every fault, user space only, IP + TIME +
 * ADDR: the thread is the sampler's own), opened from the first fork on.
 * Only the ring buffer is kept: the fd is closed once the buffer is
 * mapped (the mapping holds the event), so a program that closes every fd
 * does not notice us and cannot stop us. The buffers are drained under
 * the scan lock (scan.c), on the flusher's tick and at every scan, and
 * each fault is classified against the fork baseline: a fault on a page
 * shared at the baseline is a COW break this process took; on a page
 * absent then, a first touch.
 */
#include <errno.h>
#include <linux/perf_event.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fsk.h"

#define RING_PAGES 64   /* data pages per thread: 256 KiB, 8192 samples */
/* A fork child's ring is sized by what it may fault before its first
 * drain (a short-lived child drains only at exit): each page shared at
 * the fork may break once, plus RING_SLACK other faults. Allocating
 * (and clearing) 64 pages cost a small child more than the rest of its
 * sampling; a big parent's children need more than 64 to lose none. */
#define RING_CHILD_MIN 8
#define RING_CHILD_MAX 256
#define RING_SLACK 512
#define MAX_SAMPLERS 256

struct sampler {
	_Atomic int32_t tid;   /* 0 = free slot */
	struct perf_event_mmap_page *meta;
	size_t len;
	uint64_t tail;         /* what the drains read: meta's data_tail, or ahead
				* of it after a last drain (faults_drain) */
};

static struct sampler s_samp[MAX_SAMPLERS] FSK_COLD;
static int s_state FSK_EARLY; /* 0 not tried, 1 works, -1 unavailable or off */
static uint64_t s_lost;       /* samples the kernel dropped (ring full) */
static uint64_t s_lost_noted;

/* No PERF_SAMPLE_TID: a sampler follows one thread, which the drain knows;
 * asking for it cost ~85 ns more a fault (a sampled fault costs ~600 ns
 * over an unsampled one here, ~1.5 us). */
struct sample {                /* PERF_SAMPLE_IP | TIME | ADDR */
	struct perf_event_header h;
	uint64_t ip;
	uint64_t time;
	uint64_t addr;
};

int faults_active(void)
{
	return s_state > 0;
}

/* Opens a sampler with a ring of `pages` data pages (a power of two), or
 * fewer where the locked-memory limit refuses that many. */
static void *ring_open(pid_t tid, size_t *len, size_t pages)
{
	struct perf_event_attr a;
	__builtin_memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = PERF_TYPE_SOFTWARE;
	a.config = PERF_COUNT_SW_PAGE_FAULTS;
	a.sample_period = 1;
	a.sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_TIME | PERF_SAMPLE_ADDR;
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	a.use_clockid = 1;
	a.clockid = CLOCK_MONOTONIC; /* the trace's clock */
	int fd = (int)syscall(SYS_perf_event_open, &a, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		return NULL;
	long r;
	int err;
	for (;;) {
		*len = (pages + 1) * G.page_size;
		r = syscall(SYS_mmap, 0, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		err = errno;
		if (!(r < 0 && r > -4096) || pages <= RING_CHILD_MIN || (err != EPERM && err != ENOMEM))
			break;
		pages /= 2;
	}
	close(fd);
	if (r < 0 && r > -4096) {
		errno = err;
		return NULL;
	}
	scan_own_add_nodump((void *)r, *len);
	return (void *)r;
}

static void note_unavailable(int err)
{
	char msg[200], num[16];
	sys_utoa(num, (uint64_t)err, num + sizeof(num));
	char *p = sys_stpcpy(msg, "page-fault sampling unavailable (perf_event_open: errno ", msg + sizeof(msg));
	p = sys_stpcpy(p, num, msg + sizeof(msg));
	sys_stpcpy(p, "); COW numbers come from pagemap alone, cow_faults are not counted",
		   msg + sizeof(msg));
	emit_note(FSK_NOTE_WARN, msg);
}

/* Opens a sampler for thread tid unless it has one. Returns 0 or -errno. */
static int sampler_add(pid_t tid, size_t pages)
{
	if (s_state < 0)
		return -ENODEV;
	for (int i = 0; i < MAX_SAMPLERS; i++)
		if (atomic_load(&s_samp[i].tid) == tid)
			return 0;
	for (int i = 0; i < MAX_SAMPLERS; i++) {
		int32_t expect = 0;
		if (atomic_load(&s_samp[i].tid) || !atomic_compare_exchange_strong(&s_samp[i].tid, &expect, -1))
			continue;
		size_t len;
		void *m = ring_open(tid, &len, pages);
		if (!m) {
			int err = errno;
			atomic_store(&s_samp[i].tid, 0);
			if (s_state == 0) {
				s_state = -1;
				note_unavailable(err);
			}
			return -err;
		}
		s_samp[i].meta = m;
		s_samp[i].len = len;
		s_samp[i].tail = 0;
		s_state = 1;
		atomic_store(&s_samp[i].tid, tid);
		return 0;
	}
	return -ENOSPC;
}

/* The sampler table's first page, which a fork child writes (fork_populate). */
uint64_t faults_hot_page(void)
{
	return (uint64_t)(uintptr_t)&s_samp[0];
}

/* After fork, on both sides (scan lock not needed: only this thread runs
 * in the child; in the parent the new slots are published last). The
 * child forgets the parent's rings: the kernel does not copy a perf ring
 * mapping into a child (VM_DONTCOPY), so there is nothing to unmap. */
void faults_after_fork(int child)
{
	if (s_state < 0 || !G.faults_on)
		return;
	size_t pages = RING_PAGES;
	if (child) {
		for (int i = 0; i < MAX_SAMPLERS; i++)
			if (atomic_load(&s_samp[i].tid))
				atomic_store(&s_samp[i].tid, 0);
		uint64_t want = (scan_base_shared() + RING_SLACK) * sizeof(struct sample);
		for (pages = RING_CHILD_MIN; pages < RING_CHILD_MAX && pages * G.page_size < want;)
			pages *= 2;
	}
	sampler_add(emit_tid(), pages);
}

/* At the exit scan, after its drain (scan lock held): sampling the
 * faults of the scan itself and of the rest of the exit would only cost,
 * no drain reads them. The rings go (their mapping is the event's last
 * reference); faults_active() still says what the scans were made with.
 * keep_rings when the process ends right after: an munmap of a ring cost
 * a fork_bench child ~40 us (its TLB flush and page-table frees), the
 * exit's teardown of the whole address space next to nothing. Its
 * samples are never read. */
void faults_stop(int keep_rings)
{
	if (s_state <= 0)
		return; /* no sampler was opened: their table stays untouched */
	for (int i = 0; i < MAX_SAMPLERS; i++) {
		int32_t tid = atomic_load(&s_samp[i].tid);
		if (tid <= 0)
			continue;
		atomic_store(&s_samp[i].tid, 0);
		if (!keep_rings)
			sys_munmap(s_samp[i].meta, s_samp[i].len);
	}
}

/* A thread that starts to record after a fork gets its own sampler. */
void faults_thread_start(void)
{
	if (s_state > 0 && G.faults_on)
		sampler_add(emit_tid(), RING_PAGES);
}

static void emit_fault(char *buf, size_t *used, size_t cap, const struct sample *s, int32_t tid,
		       uint16_t cls, uint16_t kind)
{
	const size_t sz = sizeof(struct fsk_rec) + sizeof(struct fsk_fault);
	if (*used + sz > cap) {
		emit_block(buf, *used);
		*used = 0;
	}
	struct fsk_rec *h = (void *)(buf + *used);
	fsk_rec_init(h, FSK_REC_FAULT, (uint32_t)sz, s->time);
	h->tid = tid;
	struct fsk_fault *f = (void *)(h + 1);
	f->addr = s->addr;
	f->ip = s->ip;
	f->stack = 0;
	f->cls = cls;
	f->kind = kind;
	*used += sz;
}

/* len bytes at offset off of a ring of size bytes (a power of two),
 * which may wrap around its end. */
static void ring_copy(void *dst, const char *data, uint64_t size, uint64_t off, size_t len)
{
	off &= size - 1;
	size_t first = len < size - off ? len : (size_t)(size - off);
	__builtin_memcpy(dst, data + off, first);
	__builtin_memcpy((char *)dst + first, data, len - first);
}

/* Our own object, text to bss: a fault whose instruction is in it is the
 * tracer's (hidden, so they are this object's and not the program's). */
extern const char __ehdr_start[] __attribute__((visibility("hidden")));
extern const char _end[] __attribute__((visibility("hidden")));

static uint16_t tracer_flag(uint64_t ip)
{
	uint64_t lo = (uint64_t)(uintptr_t)__ehdr_start, hi = (uint64_t)(uintptr_t)_end;
	return ip >= lo && ip < hi ? FSK_FAULT_TRACER : 0;
}

/*
 * Reads every ring; the caller holds the scan lock, so the baseline is
 * stable. COW and first-touch faults become FAULT records (written as
 * blocks), COW faults also count against their baseline region. `last`:
 * no later drain reads these rings (exec and exit scans): the kernel is
 * not told what was read, which it needs only to make room. The first
 * write to a ring's first page is a page fault of its own, which every
 * fork child took there (fork_bench: 300 of 300 children), just before
 * it exited or execed. An exec that fails goes on from the tail kept
 * here, and the next drain tells the kernel.
 */
void faults_drain(int last)
{
	if (s_state <= 0)
		return;
	/* not on the stack: 4 KiB below the program's frame is a page of its
	 * stack that only we would write, copied after every fork (the
	 * scan lock, which the caller holds, makes one buffer enough). Once
	 * a scan made its buffers, theirs (scan_drain_buf): a page of our
	 * .bss was a COW fault on both sides of every fork. */
	static char own[4096] FSK_COLD;
	size_t cap = 0, used = 0;
	char *buf = scan_drain_buf(&cap);
	if (!buf) {
		buf = own;
		cap = sizeof(own);
	}
	for (int i = 0; i < MAX_SAMPLERS; i++) {
		int32_t tid = atomic_load(&s_samp[i].tid);
		if (tid <= 0)
			continue;
		struct perf_event_mmap_page *m = s_samp[i].meta;
		char *data = (char *)m + m->data_offset;
		uint64_t size = m->data_size;
		uint64_t head = __atomic_load_n(&m->data_head, __ATOMIC_ACQUIRE);
		uint64_t tail = s_samp[i].tail; /* only we write data_tail, from it */
		while (tail < head) {
			struct perf_event_header eh;
			char rec[64];
			ring_copy(&eh, data, size, tail, sizeof(eh));
			if (eh.size < sizeof(eh) || tail + eh.size > head)
				break;
			if (eh.type == PERF_RECORD_SAMPLE && eh.size >= sizeof(struct sample) &&
			    eh.size <= sizeof(rec)) {
				ring_copy(rec, data, size, tail, eh.size);
				const struct sample *s = (const void *)rec;
				uint16_t kind = 0;
				int cls = scan_fault_classify(s->addr, &kind);
				if (cls == FSK_FAULT_COW || cls == FSK_FAULT_FIRST_TOUCH)
					emit_fault(buf, &used, cap, s, tid,
						   (uint16_t)cls | tracer_flag(s->ip), kind);
			} else if (eh.type == PERF_RECORD_LOST) {
				uint64_t lost[3] = { 0 }; /* id, lost */
				size_t n = eh.size - sizeof(eh) < sizeof(lost) ? eh.size - sizeof(eh) : sizeof(lost);
				ring_copy(lost, data, size, tail + sizeof(eh), n);
				s_lost += lost[1];
			}
			tail += eh.size;
		}
		s_samp[i].tail = tail;
		if (!last && m->data_tail != tail)
			__atomic_store_n(&m->data_tail, tail, __ATOMIC_RELEASE);
	}
	if (used)
		emit_block(buf, used);
	if (s_lost != s_lost_noted) {
		char msg[160], num[24];
		sys_utoa(num, s_lost, num + sizeof(num));
		char *p = sys_stpcpy(msg, "page-fault samples lost (ring buffer full): ", msg + sizeof(msg));
		p = sys_stpcpy(p, num, msg + sizeof(msg));
		sys_stpcpy(p, " in all; cow_faults undercount", msg + sizeof(msg));
		emit_note(FSK_NOTE_WARN, msg);
		s_lost_noted = s_lost;
	}
}
