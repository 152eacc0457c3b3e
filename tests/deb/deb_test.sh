#!/bin/sh
# The Debian packages (CTest: deb_package).  Builds libpercpu0 and
# libpercpu-dev with dpkg-buildpackage from a copy of SOURCE_DIR
# (tools/build-deb.sh; checks off, Build-Depends not enforced), then checks
# their control fields, symbols file and contents, unpacks both with dpkg -x
# into a scratch root and builds against them there: tests/install/ext.c
# with pkg-config (PKG_CONFIG_SYSROOT_DIR), shared and static, and
# tests/consumer with find_package; runs both with LD_LIBRARY_PATH and
# checks that they loaded the unpacked library.  lintian, when installed,
# must report no error.  Skips (77) without dpkg-buildpackage or debhelper.
# Usage: deb_test.sh SOURCE_DIR CC VERSION
set -eu
src=$(cd "$1" && pwd) version=$3
export CC="$2"
for tool in dpkg-buildpackage dh dpkg-deb; do
	command -v $tool >/dev/null 2>&1 ||
		{ echo "$tool not installed (apt-get install debhelper dpkg-dev): skipping"; exit 77; }
done
dpkg-checkbuilddeps "$src/debian/control" 2>&1 | sed 's/^/note (building anyway): /'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

DEB_BUILD_OPTIONS="nocheck parallel=2" sh "$src/tools/build-deb.sh" "$src" "$tmp/out" -d \
	>"$tmp/build.log" 2>&1 || { tail -n 60 "$tmp/build.log"; echo "FAIL: dpkg-buildpackage"; exit 1; }
arch=$(dpkg --print-architecture)
debver=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$src/debian/changelog")
lib=$tmp/out/libpercpu0_${debver}_$arch.deb
dev=$tmp/out/libpercpu-dev_${debver}_$arch.deb
[ -f "$lib" ] && [ -f "$dev" ] || { ls "$tmp/out"; echo "FAIL: packages missing"; exit 1; }
ok "built $(basename "$lib") $(basename "$dev")"
[ "${debver%-*}" = "$version" ] && ok "package version $debver" ||
	bad "package version $debver is not $version-N"

# Control fields.
field() { dpkg-deb -f "$1" "$2"; }
[ "$(field "$lib" Multi-Arch)" = same ] && [ "$(field "$dev" Multi-Arch)" = same ] &&
	ok "Multi-Arch: same" || bad "Multi-Arch"
case "$(field "$lib" Depends)" in *libc6*) ok "libpercpu0 Depends: $(field "$lib" Depends)" ;;
	*) bad "libpercpu0 Depends: $(field "$lib" Depends)" ;; esac
case "$(field "$dev" Depends)" in *"libpercpu0 (= $debver)"*) ok "libpercpu-dev Depends: $(field "$dev" Depends)" ;;
	*) bad "libpercpu-dev Depends: $(field "$dev" Depends)" ;; esac
dpkg-deb --ctrl-tarfile "$lib" | tar -xO ./symbols >"$tmp/symbols" 2>/dev/null || true
grep -q "^libpercpu.so.${version%%.*} libpercpu0 " "$tmp/symbols" && grep -q ' pcpu_version@Base ' "$tmp/symbols" &&
	ok "symbols file ($(grep -c '@Base' "$tmp/symbols") symbols)" || bad "symbols control file"

# Contents: the runtime package holds the SONAME only, the -dev package the rest.
dpkg-deb -c "$lib" | awk '{print $6}' >"$tmp/lib.list"
dpkg-deb -c "$dev" | awk '{print $6}' >"$tmp/dev.list"
for f in "libpercpu.so.${version%%.*}\$" "libpercpu.so.$version\$"; do
	grep -q "$f" "$tmp/lib.list" && ok "libpercpu0 has $f" || bad "libpercpu0 lacks $f"
done
grep -q 'libpercpu\.so$' "$tmp/lib.list" && bad "libpercpu0 has the development link libpercpu.so"
for f in 'include/percpu\.h$' 'libpercpu\.a$' 'libpercpu\.so$' 'pkgconfig/percpu\.pc$' \
	'cmake/percpu/percpuConfig\.cmake$' 'man3/percpu\.3\.gz$' 'man3/pcpu_alloc\.3\.gz$'; do
	grep -q "$f" "$tmp/dev.list" && ok "libpercpu-dev has $f" || bad "libpercpu-dev lacks $f"
done

# Build and run against the unpacked packages.
root=$tmp/root
dpkg -x "$lib" "$root"
dpkg -x "$dev" "$root"
libdir=$(dirname "$(find "$root" -name libpercpu.so | head -n 1)")
export LD_LIBRARY_PATH="$libdir"
if command -v pkg-config >/dev/null 2>&1; then
	export PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_PATH="$libdir/pkgconfig"
	# shellcheck disable=SC2046
	"$CC" -std=gnu11 -Wall -Wextra -Werror "$src/tests/install/ext.c" -o "$tmp/ext" \
		$(pkg-config --cflags --libs percpu)
	"$tmp/ext" >/dev/null && ok "ext (pkg-config, shared) runs" || bad "ext (shared)"
	loaded=$(ldd "$tmp/ext" | sed -n 's/.*libpercpu\.so[^ ]* => \([^ ]*\).*/\1/p')
	case "$loaded" in "$root"/*) ok "ext loads $loaded" ;; *) bad "ext loads '$loaded'" ;; esac
	# shellcheck disable=SC2046
	"$CC" -std=gnu11 -Wall -Wextra -Werror "$src/tests/install/ext.c" -o "$tmp/ext-static" \
		$(pkg-config --cflags percpu) "$libdir/libpercpu.a" -lpthread -ldl
	"$tmp/ext-static" >/dev/null && ok "ext (static library) runs" || bad "ext (static)"
	unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH
else
	echo "skip: pkg-config not installed"
fi
cmake -S "$src/tests/consumer" -B "$tmp/c" -DPCPU_CONSUME=package -DPCPU_EXPECT_VERSION="$version" \
	-DCMAKE_PREFIX_PATH="$root/usr" >"$tmp/c.log" 2>&1 &&
	cmake --build "$tmp/c" >>"$tmp/c.log" 2>&1 || { cat "$tmp/c.log"; bad "find_package consumer build"; }
line=$("$tmp/c/consumer") && ok "find_package consumer: $line" || bad "find_package consumer run"
case "$line" in *"header=$version "*"cmake=$version") ;; *) bad "consumer versions: $line" ;; esac

if command -v lintian >/dev/null 2>&1; then
	if lintian --fail-on error "$tmp/out"/libpercpu_*.changes >"$tmp/lintian.log" 2>&1; then
		ok "lintian: no error ($(grep -c '^W:' "$tmp/lintian.log") warnings)"
	else
		bad "lintian:"
	fi
	grep -E '^[EW]:' "$tmp/lintian.log" || true
else
	echo "skip: lintian not installed"
fi
[ $fail -eq 0 ] && echo "deb_package: passed"
exit $fail
