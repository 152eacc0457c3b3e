#!/bin/sh
# test_valgrind.sh - the allocator under Valgrind's memcheck: a clean
# workload gives no error and no leak (the allocator's metadata is reachable,
# per-CPU allocations are not malloc blocks), and a write to a freed per-CPU
# copy is reported ("Invalid write").  Used by CTest (valgrind_memcheck).
# Skips (exit 77) when valgrind is not installed or the library was built
# without <valgrind/memcheck.h>.
# Usage: test_valgrind.sh TEST_ASAN_BINARY HAVE_VALGRIND
set -u
bin=$1 have=${2:-}
case "$have" in
1|ON|TRUE|YES|on|true|yes) ;;
*) echo "built without <valgrind/memcheck.h>: skipping"; exit 77 ;;
esac
command -v valgrind >/dev/null 2>&1 || { echo "valgrind not installed: skipping"; exit 77; }
log=$(mktemp /tmp/pcpu-test-valgrind-XXXXXX)
trap 'rm -f "$log"' EXIT
vg="valgrind --error-exitcode=42 --leak-check=full --show-leak-kinds=definite,indirect,possible
    --errors-for-leak-kinds=definite,indirect,possible --log-file=$log"
fail=0

$vg "$bin" --workload >/dev/null
rc=$?
if [ $rc -ne 0 ] || ! grep -q "ERROR SUMMARY: 0 errors" "$log"; then
	echo "FAIL: clean workload under valgrind: exit $rc"
	cat "$log"
	fail=1
else
	echo "ok: clean workload, no errors: $(grep -E 'definitely lost|still reachable|All heap blocks' "$log" | sed 's/^==[0-9]*== *//' | tr '\n' ' ')"
fi

$vg "$bin" --bad-write >/dev/null
rc=$?
if [ $rc -ne 42 ] || ! grep -q "Invalid write" "$log"; then
	echo "FAIL: write to a freed per-CPU copy not reported (exit $rc)"
	cat "$log"
	fail=1
else
	echo "ok: write to a freed per-CPU copy reported"
	grep -A3 "Invalid write" "$log" | sed 's/^==[0-9]*== *//'
fi
exit $fail
