#include "calc.h"
#include "gen.h"

int mul(int a, int b)
{
	return a * b;
}
