#include <stdio.h>
#include "calc.h"
#include "gen.h"

void fmt(const char *what, int value)
{
	printf("%s = %d\n", what, value);
}
