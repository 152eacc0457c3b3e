#!/bin/sh
# Build one libFuzzer target (fuzz/CMakeLists.txt, clang, fuzzer + ASan +
# UBSan) in BUILD_DIR and run it on the seed corpus fuzz/corpus/NAME.  New
# inputs go to BUILD_DIR/corpus-NAME, kept from run to run (the repository's
# seeds are read only); with PCPU_FUZZ_FRESH=1 (CTest) to an emptied
# BUILD_DIR/corpus-NAME-fresh instead, so a run's length does not grow with
# what earlier runs found.  Crashes go to BUILD_DIR/crash-*.  Extra
# arguments go to libFuzzer, e.g. -max_total_time=60 or -runs=20000.  Exits
# 77 (skip) when clang or its libFuzzer runtime (Debian: libclang-rt-dev) is
# missing.
#
# Usage: run.sh SOURCE_DIR BUILD_DIR fuzz_alloc|fuzz_chunk [libFuzzer args...]
# Replay a crash: BUILD_DIR/fuzz_alloc BUILD_DIR/crash-...
set -eu
src=$1 build=$2 target=$3
shift 3
name=${target#fuzz_}
command -v clang >/dev/null 2>&1 || { echo "clang not installed: skipping"; exit 77; }
mkdir -p "$build"
probe="$build/probe"
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$probe.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" >"$probe.log" 2>&1; then
	echo "clang cannot link libFuzzer (apt-get install libclang-rt-dev): skipping"
	exit 77
fi
CC=clang cmake -S "$src/fuzz" -B "$build" >/dev/null
cmake --build "$build" -j2 --target "$target" >/dev/null
corpus="$build/corpus-$name"
if [ "${PCPU_FUZZ_FRESH:-0}" = 1 ]; then
	corpus="$corpus-fresh"
	rm -rf "$corpus"
fi
mkdir -p "$corpus"
export ASAN_OPTIONS="${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1 ${UBSAN_OPTIONS:-}"
echo "== $target $* (corpus $corpus + $src/fuzz/corpus/$name)"
exec "$build/$target" -artifact_prefix="$build/" -print_final_stats=1 "$@" \
	"$corpus" "$src/fuzz/corpus/$name"
