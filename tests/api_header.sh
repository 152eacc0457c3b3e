#!/bin/sh
# api_header.sh - the typed API of <percpu.h> (PCPU_ALLOC, pcpu_alloc_init,
# pcpu_sum, pcpu_for_each_ptr, struct pcpu_counter, exported variables)
# through every compiler at hand: tests/api_header_use.c built as C by gcc
# and clang and as C++ by g++ and clang++, at -O0 and -O2, with
# -Wall -Wextra -Werror, linked against the static library and run; and the
# programs that must not compile (api_header_use.c -DNEGATIVE=n) refused by
# each.  Used by CTest (api_header); exits 77 when fewer than two of the four
# compilers are installed.
# Usage: api_header.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1 build=$2
. "$src/tests/compilers.sh"
for cc in $compilers; do
	use_cc $cc -std=gnu11 -std=gnu++17 || continue
	inc="-I$build/include -I$src/include"
	for opt in -O0 -O2; do
		if ! $cc $lang -Wall -Wextra -Werror $opt $inc "$src/tests/api_header_use.c" -x none "$lib" \
			-lpthread -ldl -o "$out/t" 2>"$out/err"; then
			echo "FAIL: $cc $opt does not compile:"; head -20 "$out/err"; fail=1
			continue
		fi
		if "$out/t" >"$out/log" 2>&1 && grep -qx ok "$out/log"; then
			echo "ok: $cc $opt"
		else
			echo "FAIL: $cc $opt:"; cat "$out/log"; fail=1
		fi
	done
	for n in 1 2 3; do
		if $cc $lang -Wall -Wextra $inc -DNEGATIVE=$n -fsyntax-only "$src/tests/api_header_use.c" \
			>"$out/err" 2>&1; then
			echo "FAIL: $cc compiles NEGATIVE=$n, which must not compile"; fail=1
		else
			echo "ok: $cc refuses NEGATIVE=$n: $(grep -m1 -i error "$out/err" | cut -c1-150)"
		fi
	done
done
[ $found -ge 2 ] || { echo "fewer than two compilers: skipping"; exit 77; }
exit $fail
