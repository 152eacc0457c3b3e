#!/bin/sh
# cross_aarch64.sh - the library and the this_cpu tests cross-built for
# aarch64 (aarch64-linux-gnu-gcc, and -g++ for the C++ test when present)
# and run under qemu-user.  qemu-user implements neither rseq nor exec of
# foreign binaries, so glibc registers no area there: the tests check the
# atomic mode (every sequence bails out to the atomic path, multithreaded),
# the critical-section descriptors, and, in test_this_cpu_ops's "fake"
# mode, every operation and width through its aarch64 sequence, one thread,
# with the library told that glibc's unregistered area is registered.
# Used by CTest (aarch64_qemu); exits 77 without the cross compiler or qemu.
# Usage: cross_aarch64.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1 build=$2
for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
	command -v $tool >/dev/null 2>&1 || { echo "$tool not installed: skipping"; exit 77; }
done
sysroot=/usr/aarch64-linux-gnu
[ -d $sysroot/lib ] || { echo "no $sysroot (libc6-dev-arm64-cross): skipping"; exit 77; }
tests="test_this_cpu test_this_cpu_ops test_this_cpu_cid test_cpu"
cxx=
if command -v aarch64-linux-gnu-g++ >/dev/null 2>&1; then
	cxx=-DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++
	tests="$tests test_this_cpu_cxx_O0 test_this_cpu_cxx_O3"
fi
cmake -S "$src" -B "$build" -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
	-DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc $cxx -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DCMAKE_C_FLAGS="-Werror" >/dev/null
cmake --build "$build" -j2 --target percpu $tests >/dev/null
export PCPU_TEST_NO_EXEC=1 PCPU_THIS_CPU_OPS=${PCPU_THIS_CPU_OPS:-100000}
fail=0
run() {
	echo "== qemu-aarch64 $*"
	rc=0
	qemu-aarch64 -L $sysroot "$build/tests/$@" >"$build/last.log" 2>&1 || rc=$?
	tail -n 3 "$build/last.log"
	case $rc in 0) ;; 77) echo "(skipped)" ;; *) echo "FAIL: status $rc"; cat "$build/last.log"; fail=1 ;; esac
}
for t in $tests; do
	run $t 1
done
run test_this_cpu_ops 1 fake
exit $fail
