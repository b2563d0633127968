# forkscope: `make` builds build/libforkscope.so and build/forkscope.
# `make demo` and `make test` are the README's two commands; both run
# `make deps` first so a fresh Debian 12 machine needs nothing else.

CC      ?= gcc
PREFIX  ?= /usr/local
DESTDIR ?=
B       := build
VERSION := 0.1.0

WARN    := -Wall -Wextra -Werror
BASE    := -std=gnu11 -D_GNU_SOURCE -Iinclude -g $(WARN) -DFSK_VERSION_STR='"$(VERSION)"'
PC       = $(shell pkg-config --cflags --libs $(1) 2>/dev/null)

# The preload library: no stdio/malloc on its paths, initial-exec TLS so a
# TLS access never allocates, only the hooks exported (forkscope.map).
PRELOAD_SRC := $(wildcard preload/*.c)
PRELOAD_CFLAGS := $(BASE) -O2 -fPIC -fvisibility=hidden -ftls-model=initial-exec \
	-fno-omit-frame-pointer -fno-stack-protector
# libunwind is built from Debian's source into a static archive linked into
# the library (preload/libunwind.sh says why); where it cannot be, the
# system's libunwind.so is used.
UNW := $(B)/unwind
UNW_FLAGS = $$(sh preload/libunwind.sh --flags $(UNW))
PRELOAD_LIBS = -ldl -lpthread -Wl,--wrap=dl_iterate_phdr $(UNW_FLAGS)

# The viewer: the model and front ends; only ui*.c may include curses.
VIEWER_SRC := $(wildcard viewer/*.c)
VIEWER_CORE := $(filter-out viewer/main.c viewer/ui%.c,$(VIEWER_SRC))
VIEWER_CFLAGS := $(BASE) -O2 $(shell pkg-config --cflags ncursesw libelf libdw 2>/dev/null)
VIEWER_LIBS := $(shell pkg-config --libs ncursesw libelf libdw 2>/dev/null)
# build/forkscope has curses, libelf and libdw linked in: loading them and
# the compression libraries libdw needs (9 shared objects) cost every
# `forkscope run` ~1 ms of its start, and `run` uses none of them. Linked
# in, an update of those packages needs a rebuild. Where that link fails
# (a static archive missing, or needing a library not named here), or
# with FSK_DYNAMIC=1, they are linked shared.
VIEWER_STATIC := ncursesw tinfo dw elf z lzma bz2
VIEWER_LINK := $(if $(FSK_DYNAMIC),$(VIEWER_LIBS),-Wl,-Bstatic $(addprefix -l,$(VIEWER_STATIC)) -Wl,-Bdynamic -ldl -lpthread)
# libm is not linked either (0.3-0.4 ms of every run's start): the
# estimates of a sampled trace load it (viewer/heap.c). C++ names are
# demangled by libstdc++'s __cxa_demangle, loaded by
# viewer/symbols.c when a name needs it.
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SAMPLES := $(patsubst samples/%.c,$(B)/samples/%,$(wildcard samples/*.c))
UNIT := $(patsubst tests/unit/%.c,$(B)/unit/%,$(wildcard tests/unit/test_*.c)) \
	$(patsubst tests/unit/preload/test_%.c,$(B)/unit/test_preload_%,$(wildcard tests/unit/preload/test_*.c))
TESTPROGS := $(patsubst tests/progs/%.c,$(B)/progs/%,$(wildcard tests/progs/*.c))
# C++ test programs only where g++ is installed (their tests skip otherwise)
ifneq ($(shell command -v g++ 2>/dev/null),)
TESTPROGS += $(patsubst tests/progs/%.cpp,$(B)/progs/%,$(wildcard tests/progs/*.cpp))
endif
BENCHPROGS := $(patsubst tests/bench/%.c,$(B)/bench/%,$(wildcard tests/bench/*.c))
# The malloc rows' naive floors: preload libraries, one per kind
BENCHFLOORS := $(foreach k,shim word clock tsc unwind,$(B)/bench/floor_$(k).so) $(B)/bench/floor_scan.so

.PHONY: all deps demo test check bench install clean samples asan stress fuzz
all: $(B)/libforkscope.so $(B)/forkscope samples

$(B)/libforkscope.so: $(PRELOAD_SRC) $(wildcard preload/*.h) include/forkscope/trace.h preload/forkscope.map $(UNW)/stamp
	@mkdir -p $(B)
	$(CC) $(PRELOAD_CFLAGS) -shared -Wl,--version-script=preload/forkscope.map \
		-Wl,-z,now -o $@ $(PRELOAD_SRC) $(PRELOAD_LIBS)

# Made once (and again when the script changes); a failed build leaves the
# stamp too, so the library falls back to libunwind.so instead of failing.
$(UNW)/stamp: preload/libunwind.sh
	@rm -rf $(UNW)/lib $(UNW)/include
	@sh preload/libunwind.sh $(UNW) || true
	@touch $@

# The same library built so that re-entering the malloc hook aborts: the
# tests use it to catch a hook that allocates.
$(B)/strict/libforkscope.so: $(PRELOAD_SRC) $(wildcard preload/*.h) include/forkscope/trace.h preload/forkscope.map $(UNW)/stamp
	@mkdir -p $(B)/strict
	$(CC) $(PRELOAD_CFLAGS) -DFSK_STRICT -shared -Wl,--version-script=preload/forkscope.map \
		-Wl,-z,now -o $@ $(PRELOAD_SRC) $(PRELOAD_LIBS)

$(B)/forkscope: $(VIEWER_SRC) $(wildcard viewer/*.h) include/forkscope/trace.h
	@mkdir -p $(B)
	$(CC) $(VIEWER_CFLAGS) -o $@ $(VIEWER_SRC) $(VIEWER_LINK) || \
		{ echo "forkscope: that link failed; linking with $(strip $(VIEWER_LIBS)) instead" >&2; \
		  $(CC) $(VIEWER_CFLAGS) -o $@ $(VIEWER_SRC) $(VIEWER_LIBS); }

# ASan/UBSan build of the viewer: `make test` runs every test through it.
$(B)/asan/forkscope: $(VIEWER_SRC) $(wildcard viewer/*.h) include/forkscope/trace.h
	@mkdir -p $(B)/asan
	$(CC) $(VIEWER_CFLAGS) -O1 $(SAN) -o $@ $(VIEWER_SRC) $(VIEWER_LIBS)
asan: $(B)/asan/forkscope

samples: $(SAMPLES)
$(B)/samples/%: samples/%.c samples/sample.h
	@mkdir -p $(B)/samples
	$(CC) $(BASE) -O1 -o $@ $< -lpthread

$(B)/progs/%: tests/progs/%.c samples/sample.h tests/progs/cases.h tests/progs/chains.h tests/progs/nocfi.h \
		tests/progs/fault_counter.h
	@mkdir -p $(B)/progs
	$(CC) $(BASE) -O1 -o $@ $< -lpthread -ldl $(PROG_LDFLAGS)

# static: no preloaded library runs in it (t_run_spawn)
$(B)/progs/sig_state: tests/progs/sig_state.c
	@mkdir -p $(B)/progs
	$(CC) $(BASE) -O1 -static -o $@ $<

$(B)/progs/%: tests/progs/%.cpp
	@mkdir -p $(B)/progs
	g++ -std=gnu++17 -g -O1 -Wall -Wextra -Werror -o $@ $<

# cow_truth's GOT is resolved at load and read-only: with lazy binding its
# first calls after fork (_exit in the child, waitpid in the parent) write
# one more page of its data region, copied by whichever side gets there first.
$(B)/progs/cow_truth: PROG_LDFLAGS := -Wl,-z,now

# tests/progs/stacks dlopens this library from its own directory.
$(B)/progs/libstacks_lib.so: tests/progs/lib/stacks_lib.c
	@mkdir -p $(B)/progs
	$(CC) $(BASE) -O1 -fPIC -shared -o $@ $<
$(B)/progs/stacks: $(B)/progs/libstacks_lib.so

# Built with gcc's ASan, whose runtime is a library of its own (t_asan_prog.py).
$(B)/progs/asan_prog: PROG_LDFLAGS := -fsanitize=address

# A malloc that is not glibc's, preloaded after ours (tests/t_other_malloc.py).
$(B)/progs/libother_malloc.so: tests/progs/lib/other_malloc.c
	@mkdir -p $(B)/progs
	$(CC) $(BASE) -O1 -fPIC -shared -o $@ $<
TESTPROGS += $(B)/progs/libother_malloc.so

# tests/progs/ctor_alloc links this library, whose constructor allocates
# before forkscope's runs (tests/t_preinit.py).
$(B)/progs/libctor_alloc.so: tests/progs/lib/ctor_alloc.c
	@mkdir -p $(B)/progs
	$(CC) $(BASE) -O1 -fPIC -shared -o $@ $<
$(B)/progs/ctor_alloc: tests/progs/ctor_alloc.c $(B)/progs/libctor_alloc.so
	$(CC) $(BASE) -O1 -o $@ $< -L$(B)/progs -lctor_alloc -Wl,-rpath,'$$ORIGIN'

# tests/progs/sigchain links this library, initialized before every other
# (forkscope's too), so it finds a SIGILL handler already installed.
$(B)/progs/libsig_early.so: tests/progs/lib/sig_early.c
	@mkdir -p $(B)/progs
	$(CC) $(BASE) -O1 -fPIC -shared -Wl,-z,initfirst -o $@ $<
$(B)/progs/sigchain: tests/progs/sigchain.c samples/sample.h $(B)/progs/libsig_early.so
	$(CC) $(BASE) -O1 -o $@ $< -L$(B)/progs -lsig_early -Wl,-rpath,'$$ORIGIN'

$(B)/bench/fork_floor: tests/bench/floor/sampler.h
$(B)/bench/%: tests/bench/%.c
	@mkdir -p $(B)/bench
	$(CC) $(BASE) -O2 -o $@ $< -lpthread

# The lifecycle floor: what scanning every image needs at least, preloaded
$(B)/bench/floor_scan.so: tests/bench/floor/scan_floor.c tests/bench/floor/sampler.h
	@mkdir -p $(B)/bench
	$(CC) $(BASE) -O2 -fPIC -shared -o $@ $< -ldl

$(B)/bench/floor_%.so: tests/bench/floor/malloc_floor.c
	@mkdir -p $(B)/bench
	$(CC) $(BASE) -O2 -fPIC -shared -ftls-model=initial-exec -DFLOOR_KIND_$*=1 -o $@ $< \
		$(if $(filter unwind,$*),$(call PC,libunwind))

$(B)/unit/%: tests/unit/%.c $(VIEWER_CORE) $(wildcard viewer/*.h)
	@mkdir -p $(B)/unit
	$(CC) $(VIEWER_CFLAGS) -O1 $(SAN) -Iviewer -o $@ $< $(VIEWER_CORE) $(VIEWER_LIBS)

# a unit of the preload with the test's stand-ins for the rest of it
$(B)/unit/test_preload_%: tests/unit/preload/test_%.c preload/%.c $(wildcard preload/*.h)
	@mkdir -p $(B)/unit
	$(CC) $(BASE) -O1 $(SAN) -Ipreload -o $@ $< preload/$*.c

deps:
	@sh tests/deps.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@sh samples/demo.sh

test: deps
	@$(MAKE) --no-print-directory all $(B)/strict/libforkscope.so $(B)/asan/forkscope $(UNIT) $(TESTPROGS) \
		$(BENCHPROGS) $(BENCHFLOORS)
	@sh tests/run.sh

check: test

# Slow: every real program of tests/t_real.py (make test runs a fast
# subset) with the fault, hostile-program and stress tests.
stress: deps
	@$(MAKE) --no-print-directory all $(B)/strict/libforkscope.so $(B)/asan/forkscope $(TESTPROGS)
	@FSK_REAL_ALL=1 sh tests/run.sh t_real t_faults t_hostile t_stress t_malloc_count

# Fuzzes the trace reader, model and report; FUZZ_SECONDS long (default 300).
fuzz: deps all
	@sh tests/fuzz/run.sh $(or $(FUZZ_SECONDS),300)

bench: deps
	@$(MAKE) --no-print-directory all $(BENCHPROGS) $(BENCHFLOORS) $(B)/progs/malloc_count $(B)/progs/scan_cost
	@sh tests/bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/forkscope \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/forkscope/samples
	install -m 755 $(B)/forkscope $(DESTDIR)$(PREFIX)/bin/forkscope
	install -m 755 $(B)/libforkscope.so $(DESTDIR)$(PREFIX)/lib/forkscope/libforkscope.so
	install -m 644 viewer/forkscope.1 $(DESTDIR)$(PREFIX)/share/man/man1/forkscope.1
	install -m 755 $(SAMPLES) $(DESTDIR)$(PREFIX)/share/forkscope/samples/
	install -m 644 samples/*.c samples/*.h $(DESTDIR)$(PREFIX)/share/forkscope/samples/

clean:
	rm -rf $(B)
