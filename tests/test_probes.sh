#!/bin/sh
# test_probes.sh - the USDT probes (provider "percpu") are in the library's
# ELF notes, each with its number of arguments.  Used by CTest (usdt_probes).
# Skips (exit 77) when the build found no <sys/sdt.h> or readelf is missing.
# Usage: test_probes.sh LIBRARY HAVE_SDT
set -eu
lib=$1 have_sdt=${2:-}
. "$(dirname "$0")/skip.sh"
skip_unless_built "$have_sdt" "<sys/sdt.h> (install systemtap-sdt-dev)"
skip_without readelf
notes=$(readelf -n "$lib")
fail=0
# name:arguments
for probe in alloc:6 alloc_fail:5 free:2 create_chunk:2 destroy_chunk:2 populate:3 depopulate:3; do
	name=${probe%%:*} want=${probe#*:}
	# every site of the probe: the argument line follows "Provider/Name/Location"
	sites=$(printf '%s\n' "$notes" | awk -v n="$name" '
		/Provider:/ { prov = $2 }
		/Name:/ { hit = (prov == "percpu" && $2 == n) }
		/Arguments:/ { if (hit) { print NF - 1; hit = 0 } }')
	if [ -z "$sites" ]; then
		echo "FAIL: probe percpu:$name not found in $lib"
		fail=1
		continue
	fi
	for nargs in $sites; do
		if [ "$nargs" != "$want" ]; then
			echo "FAIL: probe percpu:$name has a site with $nargs arguments, want $want"
			fail=1
		fi
	done
	echo "ok: percpu:$name ($(printf '%s\n' "$sites" | wc -l) site(s), $want arguments)"
done
exit $fail
