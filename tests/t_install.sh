#!/bin/sh
# make install puts the command, the library, the man page and the samples
# under PREFIX, and the installed forkscope finds its library under
# ../lib/forkscope/ without FORKSCOPE_LIB.
cd "$(dirname "$0")/.." || exit 99
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
if make -s install DESTDIR="$d/dest" PREFIX=/usr >"$d/log" 2>&1; then
	echo "PASS install_runs"
else
	echo "FAIL install_runs: $(tail -n 3 "$d/log")"
	exit 1
fi
for f in usr/bin/forkscope usr/lib/forkscope/libforkscope.so usr/share/man/man1/forkscope.1 \
	usr/share/forkscope/samples/fork_twice usr/share/forkscope/samples/fork_twice.c; do
	if [ -e "$d/dest/$f" ]; then echo "PASS installed_$(basename $f)"; else echo "FAIL installed_$(basename $f): missing /$f"; fi
done
unset FORKSCOPE_LIB
out=$("$d/dest/usr/bin/forkscope" run -q -o "$d/trace" -- /bin/sh -c 'exit 5' 2>&1)
rc=$?
[ $rc = 5 ] && echo "PASS installed_run_status" || echo "FAIL installed_run_status: exit $rc, want 5: $out"
n=$(ls "$d/trace" | grep -c '\.fst$')
[ "$n" -ge 2 ] && echo "PASS installed_lib_found ($n streams)" || echo "FAIL installed_lib_found: $n streams in the trace: $out"
if command -v man >/dev/null && MANWIDTH=80 man -l "$d/dest/usr/share/man/man1/forkscope.1" 2>&1 | grep -q 'forkscope run'; then
	echo "PASS man_page_renders"
elif ! command -v man >/dev/null; then
	echo "PASS man_page_present (man not installed)"
else
	echo "FAIL man_page_renders: man -l gives no 'forkscope run'"
fi
"$d/dest/usr/bin/forkscope" --version | grep -q '[0-9]\.[0-9]' && echo "PASS version" || echo "FAIL version"
"$d/dest/usr/bin/forkscope" frobnicate >/dev/null 2>&1
[ $? = 2 ] && echo "PASS unknown_command_exit_2" || echo "FAIL unknown_command_exit_2"
"$d/dest/usr/bin/forkscope" run >/dev/null 2>&1
[ $? = 2 ] && echo "PASS missing_cmd_exit_2" || echo "FAIL missing_cmd_exit_2"
