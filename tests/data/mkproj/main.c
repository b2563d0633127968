#include <stdlib.h>
#include "calc.h"
#include "gen.h"

int main(int argc, char **argv)
{
	int a = argc > 1 ? atoi(argv[1]) : 1, b = argc > 2 ? atoi(argv[2]) : 2;
	fmt("sum", add(a, b));
	fmt("product", mul(a, b));
	fmt("base", CALC_BASE);
	return 0;
}
