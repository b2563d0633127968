/*
 * libsig_early.so: linked into tests/progs/sigchain with -z initfirst, so
 * its constructor installs a SIGILL handler before any other constructor
 * runs, forkscope's included: the handler forkscope finds already there.
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>

void sig_early_handler(int sig)
{
	static const char msg[] = "early handler ran\n";
	(void)sig;
	if (write(STDOUT_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(97);
}

__attribute__((constructor)) static void sig_early_init(void)
{
	signal(SIGILL, sig_early_handler);
}
