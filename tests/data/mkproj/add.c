#include "calc.h"
#include "gen.h"

int add(int a, int b)
{
	return a + b + CALC_BASE - CALC_BASE;
}
