/* describe: see describe.h. */
#include "describe.h"
#include "regions_diff.h"
#include "report.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned describe_class(uint32_t kind)
{
	switch (kind) {
	case MODEL_EV_OPEN: case FSK_REC_FORK: case FSK_REC_SPAWN: case FSK_REC_EXEC:
	case FSK_REC_EXEC_FAIL: case FSK_REC_EXIT: case FSK_REC_WAIT: case FSK_REC_END:
	case FSK_REC_THREAD:
		return DESCRIBE_LIFECYCLE;
	case FSK_REC_ALLOC: case FSK_REC_FREE: case FSK_REC_REALLOC:
		return DESCRIBE_MALLOC;
	case FSK_REC_BRK: case FSK_REC_MAP:
		return DESCRIBE_MAP;
	case FSK_REC_SCAN: case FSK_REC_REGION: case FSK_REC_SCAN_END:
		return DESCRIBE_REGION;
	case FSK_REC_FAULT:
		return DESCRIBE_COW;
	default:
		return DESCRIBE_OTHER;
	}
}

uint32_t describe_pid(const struct model_event *ev)
{
	return ev->stream ? ev->stream->pid : 0;
}

int describe_is_runner(const struct model_event *ev)
{
	return ev->stream && ev->stream->state != READER_HEADER &&
	       (ev->stream->hdr.flags & FSK_HF_RUNNER);
}

/* The fixed payload of ev, zero-filled if the record is shorter. */
static void describe_get(const struct model_event *ev, void *out, size_t n)
{
	memset(out, 0, n);
	memcpy(out, ev->payload, ev->len < n ? ev->len : n);
}

int describe_is_fork(const struct model_event *ev)
{
	struct fsk_fork f;
	struct fsk_exec x;

	if (ev->kind == FSK_REC_FORK) {
		describe_get(ev, &f, sizeof(f));
		return f.side == FSK_SIDE_PARENT && f.child_pid;
	}
	if (ev->kind == FSK_REC_SPAWN) {
		describe_get(ev, &x, sizeof(x));
		return x.child_pid != 0;
	}
	return 0;
}

int describe_is_exit(const struct model_event *ev)
{
	struct fsk_wait w;

	if (ev->kind == FSK_REC_EXIT)
		return 1;
	if (ev->kind != FSK_REC_WAIT)
		return 0;
	describe_get(ev, &w, sizeof(w));
	return w.result > 0 && w.state == FSK_WS_SIGNALED && !w.nowait;
}

static const char *describe_sig(int sig)
{
	const char *a = sig > 0 && sig < 65 ? sigabbrev_np(sig) : NULL;

	return a ? a : "?";
}

/* The first string after a fixed payload of size fixed, cleaned for a
 * terminal line: a malloc'd copy or NULL. */
static char *describe_str(const struct model_event *ev, uint32_t fixed)
{
	uint32_t pos = fixed;
	char *s = NULL;

	if (!ev->payload || ev->len < fixed || reader_str(ev->payload, ev->len, &pos, &s) < 0)
		return NULL;
	for (char *c = s; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	return s;
}

static void describe_wait(const struct model_event *ev, char *buf, size_t n)
{
	struct fsk_wait w;

	describe_get(ev, &w, sizeof(w));
	if (w.result <= 0)
		snprintf(buf, n, "wait failed (%s)", strerror(w.err));
	else if (w.state == FSK_WS_EXITED)
		snprintf(buf, n, "wait -> %d exited %d%s", w.result, w.value,
			 w.nowait ? " (peek, not reaped)" : "");
	else if (w.state == FSK_WS_SIGNALED)
		snprintf(buf, n, "wait -> %d killed by SIG%s%s%s", w.result,
			 describe_sig(w.value), w.core ? " (core)" : "",
			 w.nowait ? " (peek, not reaped)" : "");
	else
		snprintf(buf, n, "wait -> %d %s", w.result,
			 w.state == FSK_WS_STOPPED ? "stopped" : "continued");
}

static void describe_map(const struct model_event *ev, char *buf, size_t n)
{
	static const char *const op[] = { "?", "mmap", "munmap", "mremap", "mprotect", "madvise" };
	struct fsk_map m;
	char sz[32];

	describe_get(ev, &m, sizeof(m));
	report_bytes(sz, sizeof(sz), m.op == FSK_MAP_MREMAP ? m.arg : m.len);
	if (m.err)
		snprintf(buf, n, "%s %s failed (%s)", op[m.op < 6 ? m.op : 0], sz, strerror(m.err));
	else if (m.op == FSK_MAP_MMAP || m.op == FSK_MAP_MREMAP)
		snprintf(buf, n, "%s %s = 0x%" PRIx64 "%s", op[m.op], sz, m.result,
			 m.fd >= 0 && m.op == FSK_MAP_MMAP ? " (file)" : "");
	else
		snprintf(buf, n, "%s 0x%" PRIx64 " %s", op[m.op < 6 ? m.op : 0], m.addr, sz);
}

static void describe_exec(const struct model_event *ev, char *buf, size_t n)
{
	struct fsk_exec x;
	char *path = describe_str(ev, sizeof(x));

	describe_get(ev, &x, sizeof(x));
	if (ev->kind == FSK_REC_SPAWN)
		snprintf(buf, n, "spawn -> %u %s", x.child_pid, path ? path : "?");
	else
		snprintf(buf, n, "exec %s", path ? path : "?");
	free(path);
}

static void describe_heap(const struct model_event *ev, char *buf, size_t n)
{
	char sz[32];

	if (ev->kind == FSK_REC_ALLOC) {
		struct fsk_alloc a;
		describe_get(ev, &a, sizeof(a));
		report_bytes(sz, sizeof(sz), a.size);
		snprintf(buf, n, "malloc %s = 0x%" PRIx64 "%s", sz, a.addr,
			 a.flags & FSK_AF_MMAPPED ? " (mmapped)" : "");
	} else if (ev->kind == FSK_REC_FREE) {
		struct fsk_free f;
		describe_get(ev, &f, sizeof(f));
		snprintf(buf, n, "free 0x%" PRIx64, f.addr);
	} else {
		struct fsk_realloc r;
		describe_get(ev, &r, sizeof(r));
		report_bytes(sz, sizeof(sz), r.size);
		snprintf(buf, n, "realloc 0x%" PRIx64 " -> %s = 0x%" PRIx64, r.old_addr, sz,
			 r.new_addr);
	}
}

static void describe_life(const struct model_event *ev, char *buf, size_t n)
{
	switch (ev->kind) {
	case MODEL_EV_OPEN:
		snprintf(buf, n, "starts (image %u)", ev->stream ? ev->stream->seq : 0);
		break;
	case FSK_REC_FORK: {
		struct fsk_fork f;
		describe_get(ev, &f, sizeof(f));
		if (f.side == FSK_SIDE_CHILD)
			snprintf(buf, n, "fork returned 0 (child side)");
		else if (f.child_pid)
			snprintf(buf, n, "%s -> child %u", f.kind == FSK_VFORK ? "vfork" : "fork",
				 f.child_pid);
		else
			snprintf(buf, n, "fork failed (%s)", strerror(f.err));
		break;
	}
	case FSK_REC_EXEC_FAIL: {
		struct fsk_exec_fail x;
		describe_get(ev, &x, sizeof(x));
		snprintf(buf, n, "exec failed (%s)", strerror(x.err));
		break;
	}
	case FSK_REC_EXIT: {
		struct fsk_exit x;
		describe_get(ev, &x, sizeof(x));
		if (x.how == FSK_EXIT_SIGNAL)
			snprintf(buf, n, "dies of SIG%s", describe_sig(x.code));
		else
			snprintf(buf, n, "exit %d via %s", x.code, model_exit_how_name(x.how));
		break;
	}
	case FSK_REC_END: {
		struct fsk_end e;
		describe_get(ev, &e, sizeof(e));
		snprintf(buf, n, "stream ends (%s)", e.reason == FSK_END_EXEC ? "exec"
			 : e.reason == FSK_END_SIGNAL ? "signal"
			 : e.reason == FSK_END_STOPPED ? "tracing stopped" : "exit");
		break;
	}
	case FSK_REC_THREAD: {
		struct fsk_thread t;
		describe_get(ev, &t, sizeof(t));
		snprintf(buf, n, "thread %u %s", t.tid, t.what == FSK_THREAD_START ? "starts" : "exits");
		break;
	}
	}
}

void describe_event(const struct model_event *ev, char *buf, size_t n)
{
	char a[32], b[32];

	buf[0] = 0;
	if (!ev->payload && ev->kind != MODEL_EV_OPEN)
		return;
	switch (ev->kind) {
	case FSK_REC_WAIT:
		describe_wait(ev, buf, n);
		return;
	case FSK_REC_MAP:
		describe_map(ev, buf, n);
		return;
	case FSK_REC_SPAWN: case FSK_REC_EXEC:
		describe_exec(ev, buf, n);
		return;
	case FSK_REC_ALLOC: case FSK_REC_FREE: case FSK_REC_REALLOC:
		describe_heap(ev, buf, n);
		return;
	case FSK_REC_BRK: {
		struct fsk_brk k;
		describe_get(ev, &k, sizeof(k));
		report_bytes(a, sizeof(a), k.new_brk > k.old_brk ? k.new_brk - k.old_brk
			       : k.old_brk - k.new_brk);
		snprintf(buf, n, "brk %s %s to 0x%" PRIx64, k.new_brk >= k.old_brk ? "+" : "-", a,
			 k.new_brk);
		return;
	}
	case FSK_REC_SCAN: {
		struct fsk_scan s;
		describe_get(ev, &s, sizeof(s));
		snprintf(buf, n, "address-space scan %u begins", s.id);
		return;
	}
	case FSK_REC_SCAN_END: {
		struct fsk_scan_end s;
		describe_get(ev, &s, sizeof(s));
		report_dur(a, sizeof(a), s.cost_ns);
		snprintf(buf, n, "address-space scan %u: %u regions in %s", s.id, s.regions, a);
		return;
	}
	case FSK_REC_REGION: {
		struct fsk_region r;
		describe_get(ev, &r, sizeof(r));
		report_bytes(a, sizeof(a), r.end - r.start);
		snprintf(buf, n, "  region %s %s at 0x%" PRIx64 ", %u unshared", model_region_kind_name(r.kind),
			 a, r.start, r.unshared);
		return;
	}
	case FSK_REC_FAULT: {
		struct fsk_fault f;
		describe_get(ev, &f, sizeof(f));
		unsigned cls = f.cls & FSK_FAULT_CLASS_MASK;
		snprintf(buf, n, "%s fault at 0x%" PRIx64 " (%s) ip 0x%" PRIx64 "%s",
			 cls == FSK_FAULT_COW ? "COW" : cls == FSK_FAULT_FIRST_TOUCH ? "first-touch"
			 : "page", f.addr, model_region_kind_name(f.kind), f.ip,
			 (f.cls & FSK_FAULT_TRACER) ? ", forkscope's own code" : "");
		return;
	}
	case FSK_REC_DROPPED: {
		struct fsk_dropped d;
		describe_get(ev, &d, sizeof(d));
		report_bytes(b, sizeof(b), d.bytes);
		snprintf(buf, n, "LOST %" PRIu64 " records (%s)", d.records, b);
		return;
	}
	case FSK_REC_NOTE: {
		char *s = describe_str(ev, sizeof(struct fsk_note));
		snprintf(buf, n, "note: %s", s ? s : "?");
		free(s);
		return;
	}
	case FSK_REC_SAMPLE: {
		struct fsk_sample sm;
		describe_get(ev, &sm, sizeof(sm));
		snprintf(buf, n, "malloc sampled 1/%" PRIu64 " bytes: totals are estimates",
			 sm.mean_bytes);
		return;
	}
	case FSK_REC_STACK:
		snprintf(buf, n, "call stack interned");
		return;
	case FSK_REC_MODULE: {
		char *s = describe_str(ev, sizeof(struct fsk_module));
		snprintf(buf, n, "module %s", s ? s : "?");
		free(s);
		return;
	}
	default:
		if (describe_class(ev->kind) == DESCRIBE_LIFECYCLE)
			describe_life(ev, buf, n);
		else
			snprintf(buf, n, "record type %u", ev->kind);
	}
}

void describe_rev(const struct model_rev *e, char *buf, size_t n)
{
	char sz[32], old[64] = "";

	report_bytes(sz, sizeof(sz), e->end - e->start);
	if (e->what == MODEL_REV_PROT)
		snprintf(old, sizeof(old), " %c%c%c -> %c%c%c", e->old_perms & FSK_P_READ ? 'r' : '-',
			 e->old_perms & FSK_P_WRITE ? 'w' : '-', e->old_perms & FSK_P_EXEC ? 'x' : '-',
			 e->perms & FSK_P_READ ? 'r' : '-', e->perms & FSK_P_WRITE ? 'w' : '-',
			 e->perms & FSK_P_EXEC ? 'x' : '-');
	else if (e->old_start || e->old_end)
		snprintf(old, sizeof(old), " %s 0x%" PRIx64 "-0x%" PRIx64,
			 e->what == MODEL_REV_MOVED ? "from" : "was", e->old_start, e->old_end);
	snprintf(buf, n, "region %s %s 0x%" PRIx64 "-0x%" PRIx64 " (%s)%s by %s",
		 regions_diff_what_name(e->what), model_region_kind_name(e->kind), e->start, e->end,
		 sz, old, regions_diff_cause_name(e->cause));
}

const char *describe_state(const struct model *m, const struct model_proc *p)
{
	const struct model_image *im = model_image_last(p);

	if (p->reaped)
		return "reaped";
	if (p->has_end)
		return "zombie";
	if (!p->traced && m->partial)
		return "running";
	if (!p->traced || im->state == MODEL_SS_UNTRACED)
		return "untraced";
	if (im->state == MODEL_SS_CUT || im->state == MODEL_SS_CORRUPT)
		return "cut";
	return "running";
}
