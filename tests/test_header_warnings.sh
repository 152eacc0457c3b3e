#!/bin/sh
# test_header_warnings.sh - header_warnings.c (small uses of <percpu.h>:
# pcpu_for_each_cpu with signed and unsigned counters, pcpu_sum,
# pcpu_alloc_size(NULL)) compiled by every compiler at hand as C and C++
# with -Wall -Wextra -Wsign-compare -Werror, linked against the static
# library and run.  Skips (77) when no compiler is found.
# Usage: test_header_warnings.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1 build=$2
. "$src/tests/skip.sh"
. "$src/tests/compilers.sh"
for cc in $compilers; do
	use_cc $cc || continue
	if ! $cc $lang -Wall -Wextra -Wsign-compare -Werror -O2 -I"$build/include" -I"$src/include" \
		"$src/tests/header_warnings.c" -x none "$lib" -lpthread -ldl -o "$out/t" 2>"$out/err"; then
		echo "FAIL: $cc:"; head -20 "$out/err"; fail=1
		continue
	fi
	if "$out/t" >"$out/log" 2>&1; then
		echo "ok: $cc"
	else
		echo "FAIL: $cc runs:"; cat "$out/log"; fail=1
	fi
done
[ $found -ge 1 ] || { echo "no compiler: skipping"; exit 77; }
exit $fail
