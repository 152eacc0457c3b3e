#!/bin/sh
# The libraries define only the library's own names: every global symbol
# libpercpu.a defines starts with pcpu_ (or _pcpu_), the archive defines
# exactly what libpercpu.so exports, and a program with its own
# chunk_alloc, os_populate and pcpu (names the internals use) links
# statically against the archive and runs.
# usage: test_symbols.sh libpercpu.a libpercpu.so CC WORK_DIR INCLUDE_DIR...
set -u
ar=$1 so=$2 cc=$3 work=$4
shift 4
inc=
for d in "$@"; do inc="$inc -I$d"; done
command -v nm >/dev/null 2>&1 || { echo "nm not found"; exit 77; }
mkdir -p "$work" || exit 1
nm -g --defined-only "$ar" | awk 'NF == 3 { print $3 }' | sort -u > "$work/archive.txt"
nm -D --defined-only "$so" | awk 'NF == 3 { print $3 }' | sort -u > "$work/shared.txt"
fail=0
bad=$(grep -v -E '^_?pcpu_' "$work/archive.txt")
if [ -n "$bad" ]; then
	echo "libpercpu.a defines names outside the pcpu_ namespace:"; echo "$bad"; fail=1
fi
if ! cmp -s "$work/archive.txt" "$work/shared.txt"; then
	echo "libpercpu.a and libpercpu.so define different names:"
	diff "$work/archive.txt" "$work/shared.txt"; fail=1
fi
[ -s "$work/archive.txt" ] || { echo "no symbols read from $ar"; fail=1; }
cat > "$work/clash.c" <<'EOC'
#include <percpu.h>
#include <stdio.h>
/* Names the library's internals use; the archive must not clash with them. */
int chunk_alloc(void) { return 1; }
int os_populate(void) { return 2; }
int bitmap_next_set(void) { return 3; }
int pcpu = 4;
int main(void)
{
	long __percpu *h = pcpu_alloc(sizeof(long), sizeof(long));
	if (!h)
		return 1;
	this_cpu_add(h, 5);
	long sum = pcpu_sum(h);
	pcpu_free(h);
	printf("sum %ld, own names %d\n", sum, chunk_alloc() + os_populate() + bitmap_next_set() + pcpu);
	return sum == 5 && pcpu_verify() == 0 ? 0 : 1;
}
EOC
if ! "$cc" -o "$work/clash" $inc "$work/clash.c" "$ar" -lpthread -ldl; then
	echo "a program defining chunk_alloc/os_populate/pcpu does not link with $ar"; fail=1
elif ! "$work/clash"; then
	echo "the statically linked program failed"; fail=1
fi
[ $fail = 0 ] && echo "libpercpu.a: $(wc -l < "$work/archive.txt") global names, all pcpu_, same as libpercpu.so"
exit $fail
