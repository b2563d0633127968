/*
 * ui_cmd: the viewer's commands. `view DIR` opens a trace directory (it
 * follows one still being written); `live -- CMD` starts CMD as `run` does
 * (run_prepare/run_spawn), reaps it in a thread of its own (run_wait) and
 * shows the trace while it grows. CMD's output goes to a file so that it
 * cannot garble the screen.
 */
#include "ui_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run.h"
#include "ui.h"

#define UI_CMD_OUTPUT "output.txt"  /* CMD's output in the trace directory */

void ui_cmd_view_usage(FILE *f)
{
	fputs("usage: forkscope view DIR\n"
	      "Open the viewer on a trace directory written by `forkscope run` or\n"
	      "`forkscope live`; a trace still being written is followed.\n"
	      "  -h, --help  show this help\n"
	      "In the viewer, ? lists the keys and q quits.\n", f);
}

void ui_cmd_live_usage(FILE *f)
{
	fputs("usage: forkscope live [options] [--] CMD [ARGS...]\n"
	      "Run CMD under the tracer as `forkscope run` does and watch it in the viewer.\n"
	      "It stays open after CMD ends (q quits); the exit status is CMD's.\n"
	      "  --output pane|FILE  where CMD's output goes: FILE, or `pane`: the trace\n"
	      "                      directory's output.txt shown in the viewer's output\n"
	      "                      pane; default: output.txt in the trace directory\n"
	      "                      (o shows it). CMD's stdin is /dev/null.\n", f);
	fputs("  every option of `forkscope run` (-o DIR, -f, --no-malloc, --stack-depth N,\n"
	      "  --scan-ms N, --no-faults, --no-env-restore)\n"
	      "  -h, --help          show this help\n", f);
}

static int ui_cmd_tty(const char *cmd)
{
	if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
		return 0;
	fprintf(stderr, "forkscope %s: the viewer needs a terminal (for a summary without "
		"one: forkscope run, forkscope report)\n", cmd);
	return -1;
}

int ui_cmd_view(int argc, char **argv)
{
	struct ui u = { .mode = "view" };
	char out[4096];
	struct stat st;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		ui_cmd_view_usage(stdout);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		ui_cmd_view_usage(stderr);
		return 2;
	}
	if (stat(argv[1], &st) < 0 || !S_ISDIR(st.st_mode)) {
		int e = errno;
		if (stat(argv[1], &st) == 0)
			e = ENOTDIR;
		fprintf(stderr, "forkscope: cannot open trace directory: %s: %s\n", argv[1],
			strerror(e));
		return 2;
	}
	if (ui_cmd_tty("view") < 0)
		return 2;
	u.dir = argv[1];
	snprintf(out, sizeof(out), "%s/" UI_CMD_OUTPUT, argv[1]);
	if (access(out, R_OK) == 0)
		u.output = out;
	return ui_run(&u);
}

/* Takes --output X / --output=X out of live's options (before CMD). */
static const char *ui_cmd_output_opt(int *argc, char **argv)
{
	const char *val = NULL;

	for (int i = 1; i < *argc; i++) {
		int drop = 0;
		if (!strcmp(argv[i], "--") || argv[i][0] != '-')
			break;
		if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--stack-depth") ||
		    !strcmp(argv[i], "--scan-ms")) {
			i++;
			continue;
		}
		if (!strcmp(argv[i], "--output") && i + 1 < *argc)
			val = argv[i + 1], drop = 2;
		else if (!strncmp(argv[i], "--output=", 9))
			val = argv[i] + 9, drop = 1;
		if (drop) {
			memmove(&argv[i], &argv[i + drop], (size_t)(*argc - i - drop + 1) * sizeof(*argv));
			*argc -= drop;
			i--;
		}
	}
	return val;
}

struct ui_cmd_child {
	const char *output;     /* absolute path */
};

/* In CMD's process, before exec: its output to the file, stdin from
 * /dev/null, the signals a shell would give it. */
static void ui_cmd_child(void *arg)
{
	const struct ui_cmd_child *c = arg;
	int fd = open(c->output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd < 0 || in < 0) {
		/* stderr is still the terminal: the viewer has not started */
		fprintf(stderr, "forkscope: %s: %s\n", fd < 0 ? c->output : "/dev/null",
			strerror(errno));
		_exit(126);
	}
	dup2(in, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
}

struct ui_cmd_reaper {
	struct run_job *job;
	struct ui *ui;
};

static void *ui_cmd_reap(void *arg)
{
	struct ui_cmd_reaper *r = arg;

	r->ui->cmd_status = run_wait(r->job);
	__atomic_store_n(&r->ui->cmd_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

int ui_cmd_live(int argc, char **argv)
{
	struct ui u = { .mode = "live", .live = 1 };
	struct ui_cmd_reaper reaper = { .ui = &u };
	struct ui_cmd_child child;
	const char *opt = ui_cmd_output_opt(&argc, argv);
	char out[4096];
	struct run_job j;
	pthread_t th;
	int r;

	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			ui_cmd_live_usage(stdout);
			return 0;
		}
	if (ui_cmd_tty("live") < 0)
		return 2;
	r = run_prepare(argc, argv, ui_cmd_live_usage, &j);
	if (r >= 0)
		return r;
	if (!opt || !strcmp(opt, "pane"))
		snprintf(out, sizeof(out), "%s/" UI_CMD_OUTPUT, j.dir);
	else
		snprintf(out, sizeof(out), "%s", opt);
	child.output = out;
	if (run_spawn(&j, ui_cmd_child, &child) < 0) {
		run_job_free(&j);
		return 2;
	}
	reaper.job = &j;
	if ((errno = pthread_create(&th, NULL, ui_cmd_reap, &reaper))) {
		fprintf(stderr, "forkscope: cannot start the reaper: %s\n", strerror(errno));
		kill(j.pid, SIGTERM);
		ui_cmd_reap(&reaper);
		run_job_free(&j);
		return 2;
	}
	ui_kill_on_exit(j.pid);
	u.dir = j.dir;
	u.output = out;
	if (opt && !strcmp(opt, "pane"))
		u.bottom_output = 1;
	r = ui_run(&u);
	if (!__atomic_load_n(&u.cmd_done, __ATOMIC_ACQUIRE)) {
		kill(j.pid, SIGTERM);
		fprintf(stderr, "forkscope: stopped CMD (SIGTERM); waiting for its processes\n");
	}
	pthread_join(th, NULL);
	fprintf(stderr, "forkscope: trace in %s (look again: forkscope view %s)\n", j.dir, j.dir);
	run_job_free(&j);
	return r ? r : u.cmd_status;
}
