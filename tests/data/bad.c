/* Does not compile, on purpose: tests/t_real.py checks that gcc's exit
 * status 1 comes through forkscope unchanged. */
int main(void)
{
	return undeclared_variable;
}
