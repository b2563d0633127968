#!/bin/sh
# make bench entry point.
cd "$(dirname "$0")/../.." && exec python3 tests/bench/run.py "$@"
