#!/bin/sh
# test_man.sh - the manual page percpu(3): installed by `cmake --install`
# (what `make install` runs) under share/man/man3, formats without a groff
# warning, and names every public function of the installed percpu.h, each
# of which has a page of its own linking to it (`man pcpu_alloc`).  Used by
# CTest (man_page).  The formatting check is skipped without groff.
# Usage: test_man.sh BUILD_DIR
set -eu
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
page=$(find "$prefix" -path '*/man3/percpu.3' | head -n 1)
[ -n "$page" ] || { echo "FAIL: percpu.3 not installed under man3"; exit 1; }
echo "ok: installed as ${page#"$prefix"/}"
fail=0
if command -v groff >/dev/null 2>&1; then
	warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
	if [ -n "$warnings" ]; then
		echo "FAIL: groff warnings:"; echo "$warnings"; fail=1
	else
		echo "ok: formats without warnings"
	fi
fi
# Every public function (PCPU_PUBLIC ... name(...)) appears in the page.
# Names ending in "_" are internals of the inline code.
for fn in $(sed -n 's/^PCPU_PUBLIC [^(]*[ *]\([a-z_][a-z_0-9]*\)(.*/\1/p' "$prefix"/include/percpu*.h); do
	case "$fn" in pcpu_module_*|*_) continue ;; esac   # PCPU_DEFINE's internals
	if ! grep -q "$fn" "$page"; then
		echo "FAIL: $fn is not documented in percpu(3)"; fail=1
	fi
	link=$(dirname "$page")/$fn.3
	if [ "$(cat "$link" 2>/dev/null)" != ".so man3/percpu.3" ]; then
		echo "FAIL: $link does not lead to percpu(3)"; fail=1
	fi
done
[ $fail -eq 0 ] && echo "ok: every public function is documented and has a link page"
exit $fail
