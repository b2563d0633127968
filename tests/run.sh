#!/bin/sh
# Runs every test and ends with "N passed, N failed".
# A test is an executable in build/unit/ or a tests/t_*.sh / tests/t_*.py
# script. It prints one line per check: "PASS name" or "FAIL name: why";
# exit 77 means skipped, any other non-zero exit without a FAIL line counts
# as one failure. The viewer under test is the ASan/UBSan build.
cd "$(dirname "$0")/.." || exit 99
top=$(pwd)
export FSK_TOP="$top"
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
# Tests also run programs as nobody (setpriv). When the checkout cannot be
# reached by that user (a clone inside a 0700 directory), every test uses
# a world-readable copy of build/ instead.
bdir="$top/build"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
	! setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$bdir/libforkscope.so" 2>/dev/null; then
	chmod 755 "$log"
	cp -a "$top/build" "$log/build" && chmod -R a+rX "$log/build" && bdir="$log/build"
	echo "note: running from a world-readable copy of build/ (the checkout is not reachable by nobody)"
fi
export FSK="${FSK:-$bdir/asan/forkscope}"
export FORKSCOPE_LIB="${FORKSCOPE_LIB:-$bdir/libforkscope.so}"
export FSK_STRICT_LIB="$bdir/strict/libforkscope.so"
export FSK_SAMPLES="$bdir/samples"
export FSK_PROGS="$bdir/progs"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH="$top/tests${PYTHONPATH:+:$PYTHONPATH}"
only="$*" # names (substrings) of the tests to run; all when empty
pass=0 fail=0 skip=0
for t in build/unit/test_* tests/t_*.sh tests/t_*.py; do
	[ -e "$t" ] || continue
	if [ -n "$only" ]; then
		hit=
		for o in $only; do case "$t" in *"$o"*) hit=1 ;; esac; done
		[ -n "$hit" ] || continue
	fi
	name=$(basename "$t")
	case "$t" in
	*.sh) cmd="bash $t" ;;
	*.py) cmd="python3 $t" ;;
	*) cmd="$t" ;;
	esac
	out="$log/$name.out"
	timeout 600 $cmd >"$out" 2>&1
	rc=$?
	p=$(grep -c '^PASS ' "$out")
	f=$(grep -c '^FAIL ' "$out")
	if [ "$rc" = 77 ]; then
		echo "SKIP $name: $(tail -n 1 "$out")"
		skip=$((skip + 1))
		continue
	fi
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		f=1
		echo "FAIL $name: exit status $rc" >>"$out"
	fi
	pass=$((pass + p)) fail=$((fail + f))
	if [ "$f" != 0 ]; then
		echo "--- $name: $p passed, $f failed"
		grep -v '^PASS ' "$out" | tail -n 40
	else
		echo "ok  $name ($p checks)"
	fi
done
[ "$skip" != 0 ] && echo "$skip test files skipped"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
