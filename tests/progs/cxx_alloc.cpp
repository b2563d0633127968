/*
 * cxx_alloc: C++ leaks at known functions for the demangling checks
 * (tests/t_cxx.py). It leaks from a namespaced class method, a template
 * function, through operator new and from a method inlined into another,
 * and prints one line per leak site:
 *   @ site name=N bytes=B blocks=K
 * The test knows each site's function as c++filt prints it. Everything
 * else is freed. Output is write(2) only, so stdio allocates nothing the
 * checks would have to skip.
 */
#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <vector>

static void say(const char *name, long bytes, int blocks)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "@ site name=%s bytes=%ld blocks=%d\n", name, bytes, blocks);
	if (n > 0 && write(1, buf, (size_t)n) < 0)
		_exit(99);
}

static void *kept[64];
static int nkept;

static void keep(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
	kept[nkept++] = p;
}

namespace ns {

struct Node {
	long v[5];      /* 40 bytes */
};

class Widget {
public:
	/* one block of n bytes per call */
	__attribute__((noinline)) void grow(unsigned long n)
	{
		keep(malloc(n));
	}

	/* inlined into stash_all: the leak's first frame is this one */
	__attribute__((always_inline)) inline void stash(unsigned long n)
	{
		keep(malloc(n));
	}

	__attribute__((noinline)) void stash_all(int k)
	{
		for (int i = 0; i < k; i++)
			stash(96);
	}
};

/* operator new calls malloc: the first frame in this program is this one */
__attribute__((noinline)) void make_nodes(int k)
{
	for (int i = 0; i < k; i++)
		keep(new Node());
}

} // namespace ns

/* one block of n * sizeof(T) bytes; v is filled and freed by its owner */
template <typename T> __attribute__((noinline)) void fill(std::vector<T> &v, int n)
{
	T *p = static_cast<T *>(malloc(n * sizeof(T)));
	for (int i = 0; i < n; i++)
		p[i] = T(i);
	v.assign(p, p + n);
	keep(p);
}

int main()
{
	ns::Widget w;
	for (int i = 0; i < 2; i++)
		w.grow(300);
	say("grow", 600, 2);
	std::vector<int> v;
	fill(v, 50);
	say("fill", 200, 1);
	ns::make_nodes(3);
	say("make_nodes", 3 * (long)sizeof(ns::Node), 3);
	w.stash_all(4);
	say("stash", 4 * 96, 4);
	return v.size() == 50 ? 0 : 1;
}
