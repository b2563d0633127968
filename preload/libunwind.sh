#!/bin/sh
# libunwind for the preload library, built from Debian's source of the
# version Debian 12 ships, into one static, position-independent archive.
#
#   preload/libunwind.sh DIR          builds DIR/lib/libunwind.a (once)
#   preload/libunwind.sh --flags DIR  prints the compile and link flags:
#                                     that archive, or the system's
#                                     libunwind.so where it could not be built
#
# Why not Debian's own packages: libunwind-dev's libunwind.a is not
# position-independent (it cannot go into a shared object), and
# libunwind.so.8 costs every traced image two more objects to load
# (libunwind and liblzma, ~100 us and 11 mappings a process, each copied
# at every fork and listed by every scan). Debian also builds it to mask
# all signals around each of its locks, two rt_sigprocmask calls per
# unwind-table search: a make -j2 made ~140 K of them. Our hooks never
# enter libunwind twice on one thread (t_unwinding), which is what the
# masking guards against, so this build leaves it out
# (--disable-block-signals), and the parts we do not use (coredump, ptrace,
# setjmp, LZMA/zlib debug info, C++ exception support, the weak
# `backtrace` symbol).
#
# The tarball is Debian's (checked against the checksum in Debian's .dsc);
# FORKSCOPE_LIBUNWIND_TARBALL names a copy already on disk. With no network
# and no copy, or FORKSCOPE_SYSTEM_LIBUNWIND=1, the system's libunwind.so
# is used: everything works, each image just starts slower.
set -e
VER=1.6.2
TGZ=libunwind_$VER.orig.tar.gz
SHA=4a6aec666991fb45d0889c44aede8ad6eb108071c3554fcdff671f9c94794976
URL=http://deb.debian.org/debian/pool/main/libu/libunwind/$TGZ

if [ "$1" = --flags ]; then
	d=$2
	if [ "${FORKSCOPE_SYSTEM_LIBUNWIND:-0}" != 1 ] && [ -f "$d/lib/libunwind.a" ]; then
		echo "-DFSK_LIBUNWIND_STATIC -I$d/include $d/lib/libunwind.a"
	else
		pkg-config --cflags --libs libunwind 2>/dev/null || echo -lunwind
	fi
	exit 0
fi

d=$1
[ -n "$d" ] || { echo "usage: $0 DIR | --flags DIR" >&2; exit 2; }
[ "${FORKSCOPE_SYSTEM_LIBUNWIND:-0}" = 1 ] && exit 0
[ -f "$d/lib/libunwind.a" ] && exit 0
mkdir -p "$d"
d=$(cd "$d" && pwd)
say() { echo "forkscope: libunwind: $*" >&2; }

tgz=${FORKSCOPE_LIBUNWIND_TARBALL:-$d/$TGZ}
if [ ! -f "$tgz" ]; then
	tgz=$d/$TGZ
	if command -v curl >/dev/null; then
		curl -fsS --retry 2 --max-time 120 -o "$tgz.part" "$URL" || true
	elif command -v wget >/dev/null; then
		wget -q -T 60 -t 2 -O "$tgz.part" "$URL" || true
	fi
	[ -s "$tgz.part" ] && mv "$tgz.part" "$tgz" || rm -f "$tgz.part"
fi
if [ ! -f "$tgz" ]; then
	say "could not fetch $URL: using the system's libunwind.so"
	exit 1
fi
if ! echo "$SHA  $tgz" | sha256sum -c - >/dev/null 2>&1; then
	say "$tgz does not match Debian's checksum: using the system's libunwind.so"
	exit 1
fi

src=$d/libunwind-$VER
rm -rf "$src" "$d/include" "$d/lib"
tar -xzf "$tgz" -C "$d"
cd "$src"
log=$d/build.log
# libunwind tests whether it may read an address (where it guesses a frame
# from rbp) by writing a byte from there into a pipe it opens at its init:
# two fds of the program's lowest free numbers (a traced `ls /proc/self/fd`
# listed them), which it then reads, writes and even closes and opens
# again after the program has closed them and put files of its own on
# those numbers. Here it asks fsk_unw_readable (preload/unwind.c) instead,
# which touches no fd, and opens no pipe.
g=src/x86_64/Ginit.c
sed -i -e '1i extern int fsk_unw_readable (void *addr);' -e 's/^  open_pipe ();$//' \
	-e '/^write_validate (void \*addr)$/{n;s/^{$/{ return fsk_unw_readable (addr);/}' "$g"
if ! grep -q '^{ return fsk_unw_readable (addr);$' "$g" || grep -q '^  open_pipe ();$' "$g"; then
	say "$g is not what this script expects: using the system's libunwind.so"
	exit 1
fi
if ! { CFLAGS="-O2 -g -fPIC" ./configure --prefix="$d" --libdir="$d/lib" \
		--disable-shared --enable-static --with-pic \
		--disable-block-signals --disable-minidebuginfo --disable-zlibdebuginfo \
		--disable-coredump --disable-ptrace --disable-setjmp --disable-cxx-exceptions \
		--disable-weak-backtrace --disable-unwind-header \
		--disable-documentation --disable-tests &&
	make -j"$(nproc 2>/dev/null || echo 2)" && make install; } >"$log" 2>&1; then
	rm -rf "$d/include" "$d/lib"
	say "building libunwind $VER failed (see $log): using the system's libunwind.so"
	exit 1
fi
rm -rf "$src"
say "built libunwind $VER from Debian's source into $d"
