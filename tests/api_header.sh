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
lib=$build/libpercpu.a
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
[ -f "$lib" ] || { echo "no $lib"; exit 1; }
found=0 fail=0
for cc in gcc g++ clang clang++; do
	command -v $cc >/dev/null 2>&1 || { echo "skip: $cc not installed"; continue; }
	found=$((found + 1))
	case $cc in *++) lang="-x c++ -std=gnu++17" ;; *) lang="-x c -std=gnu11" ;; esac
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
