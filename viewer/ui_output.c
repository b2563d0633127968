/*
 * ui_output: the tail of CMD's output (live) or of the output file a live
 * session left in the trace directory (view). CMD writes to a file, never
 * to a pipe of ours, so a slow viewer can never block it; this pane reads
 * the end of that file at each draw.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ui.h"

#define UI_OUTPUT_TAIL 65536    /* bytes of the file's end that are read */

void ui_output_draw(struct ui *u, const struct ui_rect *r)
{
	static char buf[UI_OUTPUT_TAIL + 1];
	char *lines[512], t[600];
	int fd, nl = 0, rows = r->h - 1, first;
	struct stat st;
	ssize_t n = 0;

	snprintf(t, sizeof(t), " Output of CMD: %s", u->output ? u->output : "(none recorded)");
	ui_title(u, r, UI_OUTPUT, t);
	if (!u->output || rows < 1)
		return;
	fd = open(u->output, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ui_put(r->y + 1, r->x + 2, r->w - 2, "no output yet");
		if (fd >= 0)
			close(fd);
		return;
	}
	if (st.st_size > 0)
		n = pread(fd, buf, UI_OUTPUT_TAIL, st.st_size > UI_OUTPUT_TAIL
			  ? st.st_size - UI_OUTPUT_TAIL : 0);
	close(fd);
	if (n <= 0) {
		ui_put(r->y + 1, r->x + 2, r->w - 2, "no output yet");
		return;
	}
	buf[n] = 0;
	for (char *p = buf, *e; *p && nl < 512; p = e + 1) {
		lines[nl++] = p;
		e = strchr(p, '\n');
		if (!e)
			break;
		*e = 0;
		if (!e[1])
			break;
	}
	if (u->output_top > nl - rows)
		u->output_top = nl - rows > 0 ? nl - rows : 0;
	first = nl - rows - u->output_top;
	if (first < 0)
		first = 0;
	for (int i = 0; i < rows && first + i < nl; i++)
		ui_putpad(r->y + 1 + i, r->x, r->w, lines[first + i]);
}

int ui_output_key(struct ui *u, int key)
{
	switch (key) {
	case KEY_UP: case 'k': u->output_top++; return 1;
	case KEY_DOWN: case 'j': if (u->output_top) u->output_top--; return 1;
	case KEY_PPAGE: u->output_top += 10; return 1;
	case KEY_NPAGE: u->output_top = u->output_top > 10 ? u->output_top - 10 : 0; return 1;
	case 'G': u->output_top = 0; return 1;
	}
	return 0;
}
