#!/bin/sh
# chunk_insns.sh - instructions per in-chunk alloc and free, bitmap against
# area map, in the patterns of evaluations 1 and 2 (callgrind; stable on a
# noisy machine, unlike times).
#
# Usage: sh bench/insns/chunk_insns.sh BUILD_DIR [N [SIZES...]]
#   (defaults: N = 65536 objects, sizes 4 256 1024)
set -e
build=${1:?build directory}
n=${2:-65536}
shift 2 2>/dev/null || shift $#
sizes=${*:-4 256 1024}
exe=$build/bench/chunk-insns
command -v valgrind >/dev/null || { echo "valgrind not found"; exit 77; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Inclusive instructions of function $2 inside phase $1, per call: the
# phase's calls of the in-chunk allocator, or objects when $2 is the phase.
per_call() {   # phase fn eval size n alloc
	valgrind --tool=callgrind --callgrind-out-file="$out/cg" --toggle-collect="$1" \
		"$exe" "$3" "$4" "$5" "$6" >"$out/run" 2>"$out/err" || { cat "$out/err"; exit 1; }
	total=$(callgrind_annotate --inclusive=yes "$out/cg" 2>/dev/null |
		awk -v f=":$2" '{ sub(/^ +/, ""); n = $1; gsub(",", "", n) }
			index($0, f " ") || substr($0, length($0) - length(f) + 1) == f { if (n + 0 > m) m = n + 0 }
			END { print m + 0 }')
	if [ "$1" = "$2" ]; then
		calls=$5
	else
		field=$([ "$1" = alloc_phase ] && echo alloc_calls || echo free_calls)
		calls=$(sed -n "s/.* $field \([0-9]*\).*/\1/p" "$out/run")
	fi
	awk -v t="$total" -v c="$calls" 'BEGIN { printf "%8.0f", c ? t / c : 0 }'
}

# The area map's free is quadratic in the objects of a chunk (a memmove of
# the entries after it), and so is its eval2 alloc at small sizes: its free
# is not counted, and eval2 below 64 B runs 4096 objects.  "phase": the
# whole alloc phase per object (driver, zeroing, chunk creation included).
printf "instructions per call (callgrind, inclusive), N = %s\n" "$n"
printf "%-6s %6s %6s | %8s %8s %6s | %8s %8s | %8s\n" eval size N "bm alloc" "am alloc" ratio \
	"bm phase" "am phase" "bm free"
for ev in eval1 eval2; do
	for s in $sizes; do
		k=$n
		[ $ev = eval2 ] && [ "$s" -lt 64 ] && [ "$k" -gt 4096 ] && k=4096
		ba=$(per_call alloc_phase chunk_alloc $ev "$s" $k bitmap)
		aa=$(per_call alloc_phase areamap_alloc $ev "$s" $k areamap)
		bp=$(per_call alloc_phase alloc_phase $ev "$s" $k bitmap)
		ap=$(per_call alloc_phase alloc_phase $ev "$s" $k areamap)
		bf=$(per_call free_phase chunk_free $ev "$s" $k bitmap)
		r=$(awk -v a="$ba" -v b="$aa" 'BEGIN { printf "%.2f", a / b }')
		printf "%-6s %6s %6s | %8s %8s %6s | %8s %8s | %8s\n" $ev "$s" $k $ba $aa $r $bp $ap $bf
	done
done
