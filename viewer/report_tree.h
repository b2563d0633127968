/* report_tree: the process-tree analysis of `forkscope report` (text). */
#ifndef FORKSCOPE_REPORT_TREE_H
#define FORKSCOPE_REPORT_TREE_H

#include <stdio.h>

#include "model.h"

/* Totals of the tree and of each subtree, then where observation stops
 * (untraced processes, streams cut without END). Prints nothing on ENOMEM. */
void report_tree_text(FILE *f, const struct model *m);

#endif /* FORKSCOPE_REPORT_TREE_H */
