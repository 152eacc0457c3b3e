#!/bin/sh
# test_man.sh - the manual pages percpu(3) and pcpu_counter(3): installed by
# `cmake --install` (what `make install` runs) under share/man/man3, they
# format without a groff warning, and every public function and every
# public function-like macro of the installed headers has a page under its
# own name: the page that documents it, or a one-line link to the page
# that does (`man pcpu_alloc`, `man pcpu_counter_init`, `man PCPU_DEFINE`).
# Where man(1) is installed, `man -M PREFIX/share/man NAME` finds a page
# for each name.  Used by CTest (man_page).  The formatting check is
# skipped without groff.
# Usage: test_man.sh BUILD_DIR
set -eu
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
page=$(find "$prefix" -path '*/man3/percpu.3' | head -n 1)
[ -n "$page" ] || { echo "FAIL: percpu.3 not installed under man3"; exit 1; }
dir=$(dirname "$page")
echo "ok: installed as ${page#"$prefix"/}"
fail=0
for p in percpu pcpu_counter; do
	[ -f "$dir/$p.3" ] || { echo "FAIL: $p.3 not installed"; fail=1; continue; }
	if command -v groff >/dev/null 2>&1; then
		warnings=$(groff -man -Tutf8 -ww -z "$dir/$p.3" 2>&1)
		if [ -n "$warnings" ]; then
			echo "FAIL: groff warnings in $p.3:"; echo "$warnings"; fail=1
		else
			echo "ok: $p.3 formats without warnings"
		fi
	fi
done
# Public functions (PCPU_PUBLIC ... name(...)) and function-like macros.
# Names ending in "_" are internals of the inline code; pcpu_module_* are
# PCPU_DEFINE's.
names=$( (sed -n 's/^PCPU_PUBLIC [^(]*[ *]\([a-z_][a-z_0-9]*\)(.*/\1/p' "$prefix"/include/percpu*.h
	  sed -n 's/^#define \([A-Za-z_][A-Za-z_0-9]*\)(.*/\1/p' "$prefix"/include/percpu*.h) |
	grep -v -e '_$' -e '^pcpu_module_' | sort -u)
n=0
man_ok=$(command -v man >/dev/null 2>&1 && echo 1 || echo 0)
for name in $names; do
	n=$((n + 1))
	file=$dir/$name.3
	if [ ! -f "$file" ]; then
		echo "FAIL: no page $name.3"; fail=1; continue
	fi
	case "$(head -n 1 "$file")" in
	".so man3/"*) target=$dir/$(head -n 1 "$file" | sed 's|^\.so man3/||') ;;
	*) target=$file ;;
	esac
	if [ ! -f "$target" ] || ! grep -q -- "$name" "$target"; then
		echo "FAIL: $name.3 leads to ${target#"$dir"/}, which does not document $name"; fail=1
	fi
	if [ "$man_ok" = 1 ] && ! MANWIDTH=80 man -M "$prefix/share/man" -P cat 3 "$name" 2>/dev/null |
		grep -q -- "$name"; then
		echo "FAIL: man -M ... 3 $name finds no page naming it"; fail=1
	fi
done
[ $fail -eq 0 ] && echo "ok: $n public functions and macros, each with a page naming it$([ "$man_ok" = 1 ] && echo ", found by man")"
exit $fail
