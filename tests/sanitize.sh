#!/bin/sh
# Build the library and the threaded tests with a sanitizer, using clang, in
# a build tree of their own, and run them.  Used by CTest (tsan_threads);
# skips (exit 77) when clang is not installed.
# Usage: sanitize.sh SOURCE_DIR BUILD_DIR SANITIZER TEST...
set -eu
src=$1 build=$2 san=$3
shift 3
. "$(dirname "$0")/skip.sh"
skip_without clang
CC=clang cmake -S "$src" -B "$build" -DPCPU_SANITIZE="$san" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target "$@" >/dev/null
# The library starts its balancer thread in a forked child when needed,
# which ThreadSanitizer only allows with die_after_fork=0.
export TSAN_OPTIONS="die_after_fork=0 halt_on_error=1 ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="detect_leaks=0 ${ASAN_OPTIONS:-}"
for t in "$@"; do
	echo "== $san: $t"
	"$build/tests/$t"
done
