/* ui_cmd: `forkscope live` and `forkscope view`, the viewer's commands. */
#ifndef FORKSCOPE_UI_CMD_H
#define FORKSCOPE_UI_CMD_H

#include <stdio.h>

int ui_cmd_live(int argc, char **argv);
void ui_cmd_live_usage(FILE *f);
int ui_cmd_view(int argc, char **argv);
void ui_cmd_view_usage(FILE *f);

#endif /* FORKSCOPE_UI_CMD_H */
