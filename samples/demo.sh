#!/bin/sh
# `make demo`: records a few samples with `forkscope run` and prints what
# `forkscope report` makes of them. On a terminal it ends by showing the
# prefork sample in the live viewer (forkscope live).
# Run from the repository root, after `make all`.
set -u
fsk=build/forkscope
[ -x "$fsk" ] || { echo "demo: $fsk is missing; run make first" >&2; exit 1; }
out=build/demo
rm -rf "$out"
mkdir -p "$out"
status=0
for s in fork_twice cow_variable exit_codes zombie malloc_threshold prefork; do
	prog=build/samples/$s
	[ -x "$prog" ] || { echo "demo: $prog is missing" >&2; status=1; continue; }
	echo "=== $s: $(sed -n '2s/^ \* //p' "samples/$s.c")"
	echo "--- its own output (the '@ ' lines for tests left out):"
	# The run's own summary goes to a log: the report below says it all.
	"$fsk" run -o "$out/$s" -- "$prog" 2>"$out/$s.log" | grep -v '^@ '
	echo "--- forkscope report $out/$s:"
	"$fsk" report "$out/$s" || status=1
	echo
done
if [ -t 1 ] && "$fsk" --help 2>&1 | grep -q live; then
	echo "Starting the live viewer on the prefork sample (q quits)."
	sleep 2
	"$fsk" live -o "$out/live" -- build/samples/prefork
fi
echo "Traces are in $out/; look again with: $fsk report $out/<sample>"
exit $status
