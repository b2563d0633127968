#!/bin/sh
# Installs what forkscope needs from Debian's packages, once. As root it runs
# apt-get itself; otherwise it prints the exact command to run.
pkgs="gcc make pkg-config libc6-dev libunwind-dev libelf-dev libdw-dev libncurses-dev libbz2-dev curl
python3 tmux strace procps clang libclang-rt-14-dev valgrind g++ perl git libjemalloc2
libtcmalloc-minimal4"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "forkscope: installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $missing >/dev/null \
		|| { echo "forkscope: apt-get install failed:$missing" >&2; exit 1; }
else
	echo "forkscope: missing packages; run as root:" >&2
	echo "  apt-get update && apt-get install -y$missing" >&2
	exit 1
fi
