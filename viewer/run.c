/*
 * run: `forkscope run [options] -- CMD ARGS...`: runs CMD with the preload
 * library, as child subreaper so that orphans come back to us, records
 * every wait status in its own runner stream, prints a summary from the
 * model and exits with CMD's status.
 */
#include "run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "forkscope/lost.h"
#include "load.h"
#include "reader.h"
#include "report.h"
#include "writer.h"

#define RUN_LIB "libforkscope.so"

static volatile sig_atomic_t run_child;
static uint64_t run_records;    /* written to the runner stream, END excluded */

void run_usage(FILE *f)
{
	fputs("usage: forkscope run [options] [--] CMD [ARGS...]\n"
	      "Run CMD and its whole process tree under the forkscope tracer.\n"
	      "  -o DIR              trace directory (default: forkscope.<pid>)\n"
	      "  -f                  reuse a non-empty DIR, deleting the streams in it\n"
	      "  -q, --quiet         no summary at the end (the trace is still written)\n"
	      "  --no-malloc         do not trace the malloc family\n"
	      "  --stack-depth N     call-stack frames per event (default 32, 0 = off)\n"
	      "  --scan-ms N         address-space scan interval, 0 = off (default 100)\n"
	      "  --sample-bytes N    record about one malloc-family call per N bytes\n"
	      "                      allocated (larger blocks likelier): totals become\n"
	      "                      estimates, the cost of hot allocators drops\n"
	      "  --no-faults         no precise page-fault sampling\n"
	      "  --no-env-restore    do not put the tracer back into an exec'd\n"
	      "                      environment that dropped it\n"
	      "  -h, --help          show this help\n", f);
}

static uint64_t run_now(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int run_number(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || end == s || *end || *out > max || *s == '-') {
		fprintf(stderr, "forkscope run: not a number from 0 to %lu: %s\n", max, s);
		return -1;
	}
	return 0;
}

/* Removes the streams of an earlier trace from dir (-f) when `streams`,
 * and the spare stream files a killed process left; other files stay. */
static int run_clear(const char *dir, int streams)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int fd, e = 0;

	if (!d)
		return -errno;
	fd = dirfd(d);
	while ((de = readdir(d))) {
		uint32_t pid, seq;
		if (((streams && reader_parse_name(de->d_name, &pid, &seq) == 0) ||
		     !strncmp(de->d_name, FSK_SPARE_PREFIX, strlen(FSK_SPARE_PREFIX))) &&
		    unlinkat(fd, de->d_name, 0) < 0)
			e = -errno;
	}
	closedir(d);
	return e;
}

static int run_empty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int empty = 1;

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = 0;
	closedir(d);
	return empty;
}

/* The table of unwind rules the traced processes share (trace.h,
 * FSK_RULES_FILE_BYTES): a memfd, gone with the runner and the last
 * mapping. Made empty here, before CMD starts (its name goes into CMD's
 * environment); run_rules_fill gives it its pages. Without it each image
 * learns its rules alone, so a failure is not an error. */
static int run_rules_make(void)
{
	return memfd_create("forkscope-rules", MFD_CLOEXEC);
}

/* Right after CMD is started, while it execs and loads on the other CPU:
 * every page of the table allocated, so that a write through a process's
 * mapping never needs one (that would be a SIGBUS in the program), then
 * the magic. Allocating the megabyte before the start cost every run
 * ~0.2 ms. A process checks size, blocks and magic before it maps the
 * file (unwind_cache.c): one that looks earlier, or after a failure here,
 * finds no table and learns alone. On failure the fd stays open, empty,
 * so that its number names no other file of ours. */
static void run_rules_fill(const struct run_job *j)
{
	uint64_t magic = FSK_RULES_MAGIC;

	if (j->rules_fd >= 0 && posix_fallocate(j->rules_fd, 0, FSK_RULES_FILE_BYTES) == 0)
		(void)!pwrite(j->rules_fd, &magic, sizeof(magic), 0);
}

/* Creates (or checks) the trace directory; returns its absolute path. */
static char *run_dir(const char *dir, int force)
{
	struct stat st;
	char *abs;
	int e;

	if (mkdir(dir, 0700) < 0) {
		if (errno != EEXIST || lstat(dir, &st) < 0) {
			fprintf(stderr, "forkscope: cannot create trace directory: %s: %s\n",
				dir, strerror(errno));
			return NULL;
		}
		if (!S_ISDIR(st.st_mode)) {
			fprintf(stderr, "forkscope: not a directory: %s\n", dir);
			return NULL;
		}
		if (st.st_uid != geteuid()) {
			fprintf(stderr, "forkscope: trace directory is owned by another user: %s\n", dir);
			return NULL;
		}
		e = run_empty(dir);
		if (e == 0 && !force) {
			fprintf(stderr, "forkscope: trace directory is not empty "
				"(-f reuses it): %s\n", dir);
			return NULL;
		}
		if (e < 0 || (e == 0 && (e = run_clear(dir, 1)) < 0)) {
			fprintf(stderr, "forkscope: cannot use trace directory: %s: %s\n",
				dir, strerror(-e));
			return NULL;
		}
		if (chmod(dir, 0700) < 0) {
			fprintf(stderr, "forkscope: chmod: %s: %s\n", dir, strerror(errno));
			return NULL;
		}
	}
	abs = realpath(dir, NULL);
	if (!abs)
		fprintf(stderr, "forkscope: %s: %s\n", dir, strerror(errno));
	return abs;
}

/* FORKSCOPE_LIB, else next to this binary, else <bindir>/../lib/forkscope. */
static char *run_find_lib(void)
{
	static const char *const rel[] = { "/" RUN_LIB, "/../lib/forkscope/" RUN_LIB };
	const char *env = getenv("FORKSCOPE_LIB");
	char self[PATH_MAX], cand[PATH_MAX + 64];
	ssize_t n;

	if (env && *env) {
		char *abs = realpath(env, NULL);
		if (!abs || access(abs, R_OK) < 0) {
			fprintf(stderr, "forkscope: FORKSCOPE_LIB: %s: %s\n", env, strerror(errno));
			free(abs);
			return NULL;
		}
		return abs;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		const char *bindir = dirname(self); /* may modify self: once only */
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(cand, sizeof(cand), "%s%s", bindir, rel[i]);
			if (access(cand, R_OK) == 0)
				return realpath(cand, NULL);
		}
	}
	fprintf(stderr, "forkscope: cannot find " RUN_LIB ": install it next to forkscope "
		"or in ../lib/forkscope/, or set FORKSCOPE_LIB\n");
	return NULL;
}

/* The runner stream: header now, a WAIT per reaped pid, END at the end. */
/* The marker of forkscope/lost.h: gone before a run and after it, so
 * the first loss of this run is said (by us or the preload), and only it. */
static const char *run_lost_dir;

static void run_lost_clear(void)
{
	char m[128];

	fsk_lost_marker(m, sizeof(m), (uint32_t)getuid(), run_lost_dir);
	unlink(m);
}

static char run_path[PATH_MAX + 32]; /* the runner stream */

/* Says once per trace, like the preload (forkscope/lost.h), that the
 * runner cannot write its stream: from then on its records are lost. */
static void run_lost(int err)
{
	static int said;
	char m[128], when[32];
	struct timespec ts;
	struct tm tm;
	int mfd;

	if (said++)
		return;
	fsk_lost_marker(m, sizeof(m), (uint32_t)getuid(), run_lost_dir);
	mfd = open(m, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (mfd < 0 && errno == EEXIST)
		return;
	if (mfd >= 0)
		close(mfd);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	fprintf(stderr, "forkscope: cannot write the runner stream %s (errno %d, %s): the trace misses "
		"events from %s.%03ld UTC on, first in pid %d; the runner records no exits from there "
		"(said once)\n", run_path, err, strerror(err), when, ts.tv_nsec / 1000000, (int)getpid());
}

static int run_stream_open(const char *dir, const struct run_opts *o, char **argv)
{
	struct fsk_header h = { 0 };
	struct writer w;
	char *path = run_path, self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int fd, e;

	self[n > 0 ? n : 0] = 0;
	snprintf(path, sizeof(run_path), "%s/%d.0" FSK_STREAM_SUFFIX, dir, (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == ENOSPC || errno == EDQUOT)) {
		run_lost(errno);
		return -2;
	}
	if (fd < 0) {
		fprintf(stderr, "forkscope: cannot create %s: %s\n", path, strerror(errno));
		return -1;
	}
	h.pid = (uint32_t)getpid();
	h.ppid = (uint32_t)getppid();
	h.page_size = (uint32_t)sysconf(_SC_PAGESIZE);
	h.start_ns = run_now(CLOCK_MONOTONIC);
	h.start_realtime_ns = run_now(CLOCK_REALTIME);
	h.clock_id = CLOCK_MONOTONIC;
	h.flags = FSK_HF_RUNNER;
	h.uid = getuid();
	h.stack_depth = (uint32_t)o->stack_depth;
	h.scan_ms = (uint32_t)o->scan_ms;
	writer_init(&w);
	writer_header(&w, &h, self, argv);
	e = writer_flush(&w, fd);
	writer_free(&w);
	if (e < 0) { /* a full disk: CMD still runs, the loss is said once */
		run_lost(-e);
		close(fd);
		unlink(path);
		return -2;
	}
	return fd;
}

static void run_stream_rec(int fd, uint16_t type, const void *p, size_t n)
{
	struct writer w;

	if (fd < 0)
		return;
	writer_init(&w);
	writer_rec(&w, type, (uint32_t)getpid(), run_now(CLOCK_MONOTONIC), p, n);
	if (writer_flush(&w, fd) < 0)
		run_lost(errno);
	else
		run_records++;
	writer_free(&w);
}

/* CMD as a SPAWN record: the model then knows its command line even when
 * it never wrote a stream (not found, static, setuid). ts is taken before
 * the fork, as the preload stamps FORK: a CMD that has already ended when
 * the record is written must still sort after its creation. */
static void run_stream_spawn(int fd, pid_t pid, char **cmd, uint64_t ts)
{
	struct fsk_exec x = { .child_pid = (uint32_t)pid, .fn = FSK_EXEC_EXECVP };
	struct writer w;

	if (fd < 0)
		return;
	while (cmd[x.argc])
		x.argc++;
	writer_init(&w);
	writer_begin(&w, FSK_REC_SPAWN, (uint32_t)getpid(), ts);
	writer_put(&w, &x, sizeof(x));
	writer_str(&w, cmd[0]);
	for (uint32_t i = 0; i < x.argc; i++)
		writer_str(&w, cmd[i]);
	writer_end(&w);
	if (w.err == -E2BIG) { /* a huge command line: keep the path only */
		writer_free(&w);
		x.argc = 0;
		x.flags = FSK_EF_ARGV_TRUNC;
		writer_begin(&w, FSK_REC_SPAWN, (uint32_t)getpid(), ts);
		writer_put(&w, &x, sizeof(x));
		writer_str(&w, cmd[0]);
		writer_end(&w);
	}
	if (writer_flush(&w, fd) == 0)
		run_records++;
	writer_free(&w);
}

static void run_forward(int sig)
{
	if (run_child > 0)
		kill(run_child, sig);
}

/* gcc's ASan runtime (libasan.so, which an ASan-built program loads)
 * refuses to run unless it is the first library loaded, and a preloaded
 * one always comes before it: such a program exits 1 at once, traced.
 * Its check is turned off for the traced tree unless the user set it;
 * ASan then works as untraced, our hooks calling its malloc as the real
 * one (another malloc than glibc's, as the report says). */
static void run_asan_options(void)
{
	const char *old = getenv("ASAN_OPTIONS");
	const char *opt = "verify_asan_link_order=0";
	if (old && strstr(old, "verify_asan_link_order"))
		return;
	if (!old || !*old) {
		setenv("ASAN_OPTIONS", opt, 1);
		return;
	}
	char *both = malloc(strlen(old) + strlen(opt) + 2);
	if (both) {
		sprintf(both, "%s:%s", old, opt);
		setenv("ASAN_OPTIONS", both, 1);
		free(both);
	}
}

/* Sets the tracer's variables in this process's environment, for CMD,
 * and marks j so (env_set); `runner`: the process that holds j's rules
 * fd. -1 when out of memory. */
static int run_env(struct run_job *j, pid_t runner)
{
	const struct run_opts *o = &j->o;
	const char *old = getenv("LD_PRELOAD"), *lib = j->lib;
	char num[32], *pre;

	if (old && *old) {
		pre = malloc(strlen(lib) + strlen(old) + 2);
		if (pre)
			sprintf(pre, "%s %s", lib, old);
	} else {
		pre = strdup(lib);
	}
	if (!pre || setenv("LD_PRELOAD", pre, 1) < 0 || setenv("FORKSCOPE_DIR", j->dir, 1) < 0) {
		free(pre);
		return -1;
	}
	free(pre);
	setenv("FORKSCOPE_MALLOC", o->malloc_on ? "1" : "0", 1);
	snprintf(num, sizeof(num), "%lu", o->stack_depth);
	setenv("FORKSCOPE_STACK_DEPTH", num, 1);
	snprintf(num, sizeof(num), "%lu", o->scan_ms);
	setenv("FORKSCOPE_SCAN_MS", num, 1);
	setenv("FORKSCOPE_FAULTS", o->faults_on ? "1" : "0", 1);
	setenv("FORKSCOPE_ENV_RESTORE", o->env_restore ? "1" : "0", 1);
	if (o->sample_bytes) {
		snprintf(num, sizeof(num), "%lu", o->sample_bytes);
		setenv("FORKSCOPE_SAMPLE_BYTES", num, 1);
	}
	run_asan_options();
	if (j->rules_fd >= 0) {
		snprintf(num, sizeof(num), "/proc/%d/fd/%d", (int)runner, j->rules_fd);
		setenv("FORKSCOPE_RULES", num, 1);
	} else {
		unsetenv("FORKSCOPE_RULES");
	}
	j->env_set = 1;
	return 0;
}

/* Why CMD could not be run, as a shell says it; the exit status. */
static int run_exec_failed(const char *cmd, int err)
{
	fprintf(stderr, "forkscope: %s: %s\n", cmd, err == ENOENT ? "command not found" : strerror(err));
	return err == ENOENT ? 127 : 126;
}

/* The child of a fork: CMD with the tracer's environment (set here
 * unless the runner's own holds it already). */
static void run_exec(struct run_job *j)
{
	if (!j->env_set && run_env(j, getppid()) < 0) {
		fputs("forkscope: out of memory\n", stderr);
		_exit(126);
	}
	execvp(j->cmd[0], j->cmd);
	_exit(run_exec_failed(j->cmd[0], errno));
}

/* Reaps every descendant (we are their subreaper) until none is left;
 * returns CMD's wait status. */
static int run_reap(int fd, pid_t cmd)
{
	int cmd_status = 0, st;
	pid_t pid;

	for (;;) {
		struct fsk_wait w = { .pid_arg = -1, .fn = FSK_WAIT_WAIT4 };
		pid = wait4(-1, &st, 0, NULL);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid < 0)
			break;
		w.result = pid;
		w.raw_status = st;
		if (WIFEXITED(st)) {
			w.state = FSK_WS_EXITED;
			w.value = WEXITSTATUS(st);
		} else if (WIFSIGNALED(st)) {
			w.state = FSK_WS_SIGNALED;
			w.value = WTERMSIG(st);
			w.core = WCOREDUMP(st) ? 1 : 0;
		}
		run_stream_rec(fd, FSK_REC_WAIT, &w, sizeof(w));
		if (pid == cmd) {
			cmd_status = st;
			run_child = 0;
		}
	}
	return cmd_status;
}

static int run_parse(int argc, char **argv, struct run_opts *o, void (*usage)(FILE *f))
{
	enum { O_NOMALLOC = 256, O_DEPTH, O_SCAN, O_NOFAULTS, O_NOENV, O_SAMPLE };
	static const struct option opts[] = {
		{ "no-malloc", no_argument, NULL, O_NOMALLOC },
		{ "stack-depth", required_argument, NULL, O_DEPTH },
		{ "scan-ms", required_argument, NULL, O_SCAN },
		{ "sample-bytes", required_argument, NULL, O_SAMPLE },
		{ "no-faults", no_argument, NULL, O_NOFAULTS },
		{ "no-env-restore", no_argument, NULL, O_NOENV },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static char me[64];
	char *name = argv[0];
	int c;

	snprintf(me, sizeof(me), "forkscope %s", name);
	argv[0] = me; /* for getopt's messages */
	*o = (struct run_opts){ .malloc_on = 1, .faults_on = 1, .env_restore = 1, .scan_ms = 100,
				 .stack_depth = 32 };
	optind = 1;
	while ((c = getopt_long(argc, argv, "+o:fqh", opts, NULL)) != -1) {
		switch (c) {
		case 'o': o->dir = optarg; break;
		case 'f': o->force = 1; break;
		case 'q': o->quiet = 1; break;
		case O_NOMALLOC: o->malloc_on = 0; break;
		case O_NOFAULTS: o->faults_on = 0; break;
		case O_NOENV: o->env_restore = 0; break;
		case O_DEPTH:
			if (run_number(optarg, 128, &o->stack_depth) < 0)
				return 2;
			break;
		case O_SCAN:
			if (run_number(optarg, 3600000, &o->scan_ms) < 0)
				return 2;
			break;
		case O_SAMPLE:
			if (run_number(optarg, 10000000, &o->sample_bytes) < 0)
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	argv[0] = name;
	if (optind >= argc) {
		fprintf(stderr, "%s: missing CMD\n", me);
		usage(stderr);
		return 2;
	}
	return -1;
}

static void run_summary(const char *dir)
{
	struct load l;
	int e = load_dir(&l, dir);

	fputs("\n--- forkscope ", stderr);
	if (e >= 0)
		report_text(stderr, &l, dir);
	report_messages(stderr, &l);
	fprintf(stderr, "--- details: forkscope report %s\n", dir);
	load_free(&l);
}

int run_prepare(int argc, char **argv, void (*usage)(FILE *f), struct run_job *j)
{
	char defdir[64];
	int r;

	memset(j, 0, sizeof(*j));
	j->fd = -1;
	j->rules_fd = -1;
	r = run_parse(argc, argv, &j->o, usage);
	if (r >= 0)
		return r;
	j->cmd = argv + optind;
	if (!j->o.dir) {
		snprintf(defdir, sizeof(defdir), "forkscope.%d", (int)getpid());
		j->o.dir = defdir;
	}
	j->lib = run_find_lib();
	if (!j->lib)
		return 2;
	if (strpbrk(j->lib, ": \t")) {
		fprintf(stderr, "forkscope: the library path cannot go into LD_PRELOAD "
			"(it holds ':' or a space): %s\n", j->lib);
		run_job_free(j);
		return 2;
	}
	j->dir = run_dir(j->o.dir, j->o.force);
	j->o.dir = NULL;
	if (!j->dir) {
		run_job_free(j);
		return 2;
	}
	run_lost_dir = j->dir;
	run_lost_clear();
	/* only stacks need rules: a megabyte of tmpfs pages made and freed
	 * is ~0.4 ms of a short command's run */
	j->rules_fd = j->o.stack_depth ? run_rules_make() : -1;
	j->fd = run_stream_open(j->dir, &j->o, argv - 1);
	if (j->fd == -1 || prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		if (j->fd != -1)
			fprintf(stderr, "forkscope: PR_SET_CHILD_SUBREAPER: %s\n", strerror(errno));
		run_job_free(j);
		return 2;
	}
	if (j->fd < 0)
		j->fd = -1; /* no runner stream: said once, CMD runs all the same */
	return -1;
}

/* CMD runs as pid since ts (either way of starting it): recorded, and the
 * rules table filled while it loads. 0. */
static int run_started(struct run_job *j, pid_t pid, uint64_t ts)
{
	j->pid = pid;
	run_child = pid;
	run_stream_spawn(j->fd, pid, j->cmd, ts);
	run_rules_fill(j);
	return 0;
}

int run_spawn(struct run_job *j, void (*child)(void *arg), void *arg)
{
	pid_t pid;
	uint64_t ts;

	fflush(NULL);
	ts = run_now(CLOCK_MONOTONIC);
	pid = fork();
	if (pid == 0) {
		if (child)
			child(arg);
		run_exec(j);
	}
	if (pid < 0) {
		fprintf(stderr, "forkscope: fork: %s\n", strerror(errno));
		return -1;
	}
	return run_started(j, pid, ts);
}

int run_wait(struct run_job *j)
{
	struct fsk_end end = { .reason = FSK_END_EXIT };
	int st = run_reap(j->fd, j->pid);

	run_clear(j->dir, 0); /* every traced process is gone */

	end.records = run_records;
	run_stream_rec(j->fd, FSK_REC_END, &end, sizeof(end));
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	run_lost_clear();
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

void run_job_free(struct run_job *j)
{
	if (j->fd >= 0)
		close(j->fd);
	if (j->rules_fd >= 0)
		close(j->rules_fd);
	j->rules_fd = -1;
	free(j->lib);
	free(j->dir);
	j->fd = -1;
	j->lib = j->dir = NULL;
}

/* The child side of run_main: CMD gets back the signal dispositions. */
struct run_saved {
	struct sigaction i, q, t, h;
	sigset_t mask;
};

/* run_spawn_cmd's child, between its clone and its exec. */
struct run_cmd_arg {
	struct run_job *j;
	const struct run_saved *s;
	int err; /* why the exec failed; 0 while it has not */
};

static void run_restore(void *arg);

/* On a stack of its own, in our memory, while we wait for its exec: CMD
 * with the dispositions and mask we started with. Only the four signals
 * we changed are set: the exec resets any handler to SIG_DFL and keeps
 * what is ignored, so every other signal is already as CMD must get it,
 * glibc's own 32 and 33 included. All signals are blocked from the clone
 * until run_restore's mask: none reaches a handler of ours here. */
static int run_cmd_child(void *arg)
{
	struct run_cmd_arg *a = arg;
	run_restore((void *)a->s);
	execvp(a->j->cmd[0], a->j->cmd); /* a file without #! goes to /bin/sh */
	a->err = errno ? errno : ENOEXEC;
	_exit(127);
}

/*
 * run_main's spawn: a clone(CLONE_VM | CLONE_VFORK) of our own, as glibc
 * makes posix_spawn, instead of a fork. A fork of this process copied
 * its page tables, and the child's setenv and signal resets then wrote
 * copies of our pages before the exec. posix_spawn itself was dearer
 * than needed: glibc 2.36's child asks for every signal's disposition and
 * sets it again (118 system calls before the exec, while we waited);
 * this child makes 5. 0 once CMD runs; -1 after a message; the exit
 * status when it could not be run.
 */
static int run_spawn_cmd(struct run_job *j, const struct run_saved *s)
{
	struct run_cmd_arg a = { .j = j, .s = s, .err = 0 };
	sigset_t all, was;
	size_t argc = 0, size;
	uint64_t ts;
	pid_t pid;
	char *stack;
	int err;

	if (run_env(j, getpid()) < 0) {
		fputs("forkscope: out of memory\n", stderr);
		return -1;
	}
	/* execvp's own needs on the child's stack: a path buffer (PATH and
	 * the name, at most ~4.4 KiB) and, for a file without #!, a copy of
	 * argv for /bin/sh */
	while (j->cmd[argc])
		argc++;
	size = (64 * 1024 + (argc + 2) * sizeof(char *) + 4095) & ~(size_t)4095;
	stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return run_exec_failed(j->cmd[0], errno);
	fflush(NULL);
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &was);
	ts = run_now(CLOCK_MONOTONIC);
	pid = clone(run_cmd_child, stack + size, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
	err = errno;
	sigprocmask(SIG_SETMASK, &was, NULL);
	munmap(stack, size);
	if (pid < 0)
		return run_exec_failed(j->cmd[0], err);
	if (a.err) { /* it has exited: reaped here, no process ran */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return run_exec_failed(j->cmd[0], a.err);
	}
	return run_started(j, pid, ts);
}

static void run_restore(void *arg)
{
	struct run_saved *s = arg;

	sigaction(SIGINT, &s->i, NULL);
	sigaction(SIGQUIT, &s->q, NULL);
	sigaction(SIGTERM, &s->t, NULL);
	sigaction(SIGHUP, &s->h, NULL);
	sigprocmask(SIG_SETMASK, &s->mask, NULL);
}

int run_main(int argc, char **argv)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, fwd = { .sa_handler = run_forward };
	struct run_saved saved;
	struct run_job j;
	sigset_t block;
	int r;

	r = run_prepare(argc, argv, run_usage, &j);
	if (r >= 0)
		return r;
	/* Like time(1): ^C and ^\ go to CMD, we stay to reap and report.
	 * TERM and HUP are forwarded unless we were started ignoring them:
	 * then CMD ignores them too (an exec would reset a handler). */
	sigaction(SIGINT, &ign, &saved.i);
	sigaction(SIGQUIT, &ign, &saved.q);
	sigaction(SIGTERM, NULL, &saved.t);
	sigaction(SIGHUP, NULL, &saved.h);
	if (saved.t.sa_handler != SIG_IGN)
		sigaction(SIGTERM, &fwd, NULL);
	if (saved.h.sa_handler != SIG_IGN)
		sigaction(SIGHUP, &fwd, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &saved.mask);
	r = run_spawn_cmd(&j, &saved);
	sigprocmask(SIG_SETMASK, &saved.mask, NULL);
	if (r < 0) {
		run_job_free(&j);
		return 2;
	}
	if (r > 0) /* CMD could not be run: no process, the stream just ends */
		run_wait(&j);
	else
		r = run_wait(&j);
	if (!j.o.quiet)
		run_summary(j.dir);
	run_job_free(&j);
	return r;
}
