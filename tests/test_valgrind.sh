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
. "$(dirname "$0")/skip.sh"
skip_unless_built "$have" "<valgrind/memcheck.h>"
skip_without valgrind
log=$(mktemp /tmp/pcpu-test-valgrind-XXXXXX)
trap 'rm -f "$log"' EXIT
fail=0

# vg MODE RC PATTERN WHAT: run the binary in MODE under valgrind; true if it
# exited RC and the log has PATTERN, else report WHAT with the log.
vg() {
	valgrind --error-exitcode=42 --leak-check=full --show-leak-kinds=definite,indirect,possible \
		--errors-for-leak-kinds=definite,indirect,possible --log-file="$log" "$bin" "$1" >/dev/null
	rc=$?
	[ $rc -eq "$2" ] && grep -q "$3" "$log" && return 0
	echo "FAIL: $4 (exit $rc, want $2)"
	cat "$log"
	fail=1
	return 1
}

if vg --workload 0 "ERROR SUMMARY: 0 errors" "clean workload under valgrind"; then
	echo "ok: clean workload, no errors: $(grep -E 'definitely lost|still reachable|All heap blocks' "$log" | sed 's/^==[0-9]*== *//' | tr '\n' ' ')"
fi
if vg --bad-write 42 "Invalid write" "write to a freed per-CPU copy not reported"; then
	echo "ok: write to a freed per-CPU copy reported"
	grep -A3 "Invalid write" "$log" | sed 's/^==[0-9]*== *//'
fi
exit $fail
