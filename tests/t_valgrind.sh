#!/bin/sh
# valgrind memcheck on the report path (issue 7): `forkscope report DIR`
# and `--json` on a trace of every sample, of a bash pipeline (symbols from
# libdw) and of a trace cut short mid-record, with no error and no leak.
# The viewer under test is the plain build (valgrind and ASan do not mix).
cd "$(dirname "$0")/.." || exit 99
top=$(pwd)
lib=${FORKSCOPE_LIB:-$top/build/libforkscope.so}
bin=$(dirname "$lib")/forkscope
samples=${FSK_SAMPLES:-$top/build/samples}
if ! command -v valgrind >/dev/null; then
	echo "valgrind is not installed (tests/deps.sh installs it)"
	exit 77
fi
[ -x "$bin" ] || { echo "missing $bin (make builds it)"; exit 77; }
export FORKSCOPE_LIB="$lib"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# memcheck NAME DIR: both report forms under valgrind; one check each.
memcheck() {
	for form in text json; do
		opt=
		[ "$form" = json ] && opt=--json
		if valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
			--errors-for-leak-kinds=definite,indirect "$bin" report "$2" $opt >"$work/out" 2>"$work/err"; then
			echo "PASS valgrind.$1.$form"
		else
			echo "FAIL valgrind.$1.$form: exit $?: $(grep -m 3 '==[0-9]*== [A-Z]' "$work/err" | tr '\n' '|')"
		fi
	done
}

n=0
for s in "$samples"/*; do
	[ -x "$s" ] || continue
	name=$(basename "$s")
	(cd "$work" && timeout 60 "$bin" run -q -o "$work/$name" -- "$s" >/dev/null 2>&1)
	if [ -d "$work/$name" ]; then
		memcheck "$name" "$work/$name"
		n=$((n + 1))
	else
		echo "FAIL valgrind.$name.traced: no trace directory"
	fi
done
[ "$n" -gt 0 ] || echo "FAIL valgrind.samples: no sample found in $samples"

"$bin" run -q -o "$work/bash" -- bash -c 'seq 1 500 | sort -r | head -n 3; (echo sub); exit 3' >/dev/null 2>&1
memcheck bash "$work/bash"

# A stream cut in the middle of a record, as by SIGKILL mid-write.
cp -r "$work/bash" "$work/cut"
big=$(ls -S "$work/cut"/*.fst | head -n 1)
size=$(stat -c %s "$big")
truncate -s $((size / 2 + 3)) "$big"
memcheck cut "$work/cut"
