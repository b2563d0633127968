#!/bin/sh
# A short fuzz run of the trace reader, model and report (make fuzz runs longer).
exec sh "$(dirname "$0")/fuzz/run.sh" "${FSK_FUZZ_SECONDS:-30}"
