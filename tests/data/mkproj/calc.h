#ifndef CALC_H
#define CALC_H
int add(int a, int b);
int mul(int a, int b);
void fmt(const char *what, int value);
#endif
