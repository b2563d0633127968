#!/bin/sh
# make fuzz / tests/t_fuzz.sh: builds the libFuzzer harness, seeds the corpus
# with real traces of the samples (each stream file, and each with a second
# stream), replays the regression inputs, then fuzzes for $1 seconds (default
# 300). A crash is saved in tests/fuzz/regress/ by hand to become a test.
set -u
cd "$(dirname "$0")/../.." || exit 99
secs=${1:-300}
B=build/fuzz
command -v clang >/dev/null || { echo "clang is not installed (make deps installs it)"; exit 77; }
mkdir -p $B/corpus
core=$(ls viewer/*.c | grep -v -e viewer/main.c -e 'viewer/ui')
flags=$(pkg-config --cflags --libs libelf libdw 2>/dev/null)
clang -std=gnu11 -D_GNU_SOURCE -g -O1 -Iinclude -Iviewer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -o $B/fuzz_trace tests/fuzz/fuzz_trace.c $core $flags -lm \
	|| { echo "FAIL fuzz_build: clang could not build the harness"; exit 1; }
echo "PASS fuzz_build"
# seeds: real traces
if [ -x build/forkscope ] && ! ls $B/corpus/seed-* >/dev/null 2>&1; then
	for s in fork_twice exit_codes zombie malloc_threshold; do
		[ -x build/samples/$s ] || continue
		d=$(mktemp -d)
		rmdir "$d"
		build/forkscope run -q -o "$d" -- build/samples/$s >/dev/null 2>&1
		for f in "$d"/*.fst; do
			[ -f "$f" ] || continue
			{ printf '\000'; head -c 65536 "$f"; } > "$B/corpus/seed-$s-$(basename "$f")"
		done
		rm -rf "$d"
	done
fi
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
# the harness's trace directory goes under this one (in memory where it
# can), removed even after a crash
base=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
FSK_FUZZ_DIR=$(mktemp -d "$base/fsk-fuzz.XXXXXX") || exit 99
export FSK_FUZZ_DIR
trap 'rm -rf "$FSK_FUZZ_DIR"' EXIT
if ls tests/fuzz/regress/* >/dev/null 2>&1; then
	if $B/fuzz_trace tests/fuzz/regress/* >$B/regress.log 2>&1; then
		echo "PASS fuzz_regressions ($(ls tests/fuzz/regress | wc -l) inputs)"
	else
		echo "FAIL fuzz_regressions: see $B/regress.log"; tail -n 20 $B/regress.log; exit 1
	fi
fi
$B/fuzz_trace -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
	-artifact_prefix=$B/crash- $B/corpus >$B/fuzz.log 2>&1
rc=$?
execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' $B/fuzz.log)
if [ $rc = 0 ]; then
	echo "PASS fuzz_run: ${secs}s, ${execs:-?} executions, no crash"
else
	echo "FAIL fuzz_run: crash after ${execs:-?} executions; input in $B/crash-*"
	grep -m 5 -A 12 'ERROR\|runtime error' $B/fuzz.log
	exit 1
fi
