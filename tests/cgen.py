"""A C file that keeps gcc -O2 busy: n small recursive functions, each
calling the one before, and a main that calls them all. Shared by
`make bench` (the gcc workload) and tests/t_unwind_rules.py (cc1's
stacks)."""


def gen_c(path, funcs):
    with open(path, "w") as f:
        f.write("#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n")
        for i in range(funcs):
            f.write("static int f%d(int x) {\n  int a[8];\n  for (int i = 0; i < 8; i++) a[i] = x * %d + i;\n"
                    "  if (x > %d) return a[x & 7] ^ f%d(x - 1);\n  return a[3] + %d;\n}\n" %
                    (i, i + 3, i, max(i - 1, 0), i))
        f.write("int main(void) { int s = 0;\n")
        for i in range(funcs):
            f.write("  s += f%d(%d);\n" % (i, i % 5))
        f.write('  printf("%d\\n", s); return 0; }\n')
