#!/bin/sh
# this_cpu_matrix.sh - <percpu.h>'s this_cpu operations compiled by every
# compiler at hand (gcc, g++, clang, clang++) at -O0 to -O3, with
# -Wall -Wextra -Werror, each program linked against the static library and
# run: test_this_cpu_cxx.cpp (semantics of every operation and width, a
# short stress).  PIC and non-PIC alternate so that every compiler family
# and level meets both (ALL=1: every level both ways, twice the builds).
# Used by CTest (this_cpu_matrix); exits 77 when fewer than two of the four
# compilers are installed.
# Usage: [ALL=1] this_cpu_matrix.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1 build=$2
. "$src/tests/compilers.sh"
runs=0
for cc in $compilers; do
	use_cc $cc || continue
	case $cc in *++) first=0 ;; *) first=1 ;; esac
	i=0
	for opt in -O0 -O1 -O2 -O3; do
		i=$((i + 1))
		for pic in "-fPIC -pie" "-fno-pic -no-pie"; do
			# Alternate: C takes the other half of C++'s combinations.
			if [ "${ALL:-0}" != 1 ]; then
				case "$pic" in -fPIC*) p=0 ;; *) p=1 ;; esac
				[ $(((i + first + p) % 2)) -eq 0 ] || continue
			fi
			exe=$out/t
			if ! $cc $lang -D_GNU_SOURCE -Wall -Wextra -Werror $opt $pic -I"$build/include" -I"$src/include" -I"$src/src" \
				-I"$src/tests" "$src/tests/test_this_cpu_cxx.cpp" -x none "$lib" \
				-lpthread -ldl -o "$exe" 2>"$out/err"; then
				echo "FAIL: $cc $opt $pic does not compile:"; head -8 "$out/err"; fail=1
				continue
			fi
			runs=$((runs + 1))
			if PCPU_THIS_CPU_OPS=20000 "$exe" 1 >"$out/log" 2>&1; then
				echo "ok: $cc $opt $pic: $(tail -n 1 "$out/log")"
			else
				echo "FAIL: $cc $opt $pic:"; tail -20 "$out/log"; fail=1
			fi
		done
	done
done
[ $found -ge 2 ] || { echo "fewer than two compilers: skipping"; exit 77; }
echo "$runs builds ran, failures: $fail"
exit $fail
