/*
 * main: `forkscope COMMAND ...` dispatch. A new command is one line in
 * main_cmds (its entry point receives argv from the command name on).
 */
#include <stdio.h>
#include <string.h>

#include "export.h"
#include "report.h"
#include "run.h"
#include "ui_cmd.h"

struct main_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	void (*usage)(FILE *f);
	const char *summary;
};

static const struct main_cmd main_cmds[] = {
	{ "run", run_main, run_usage, "run a command under the tracer, then summarize" },
	{ "live", ui_cmd_live, ui_cmd_live_usage, "run a command and watch it in the viewer" },
	{ "view", ui_cmd_view, ui_cmd_view_usage, "open the viewer on a trace directory" },
	{ "report", report_main, report_usage, "analyse a trace directory (text or --json)" },
	{ "export", export_main, export_usage, "a trace as Chrome trace JSON, folded stacks or massif" },
};

#define MAIN_NCMDS (sizeof(main_cmds) / sizeof(main_cmds[0]))

static void main_usage(FILE *f)
{
	fputs("usage: forkscope COMMAND [options] [args]\n"
	      "Trace what a process tree does with its memory.\n\ncommands:\n", f);
	for (size_t i = 0; i < MAIN_NCMDS; i++)
		fprintf(f, "  %-8s %s\n", main_cmds[i].name, main_cmds[i].summary);
	fputs("\n  forkscope COMMAND --help   options of a command\n"
	      "  forkscope --version        print the version\n"
	      "See forkscope(1).\n", f);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		main_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		main_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("forkscope %s\n", FSK_VERSION_STR);
		return 0;
	}
	for (size_t i = 0; i < MAIN_NCMDS; i++)
		if (!strcmp(argv[1], main_cmds[i].name))
			return main_cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "forkscope: unknown command: %s\n", argv[1]);
	main_usage(stderr);
	return 2;
}
