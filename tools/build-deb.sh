#!/bin/sh
# Build the Debian packages libpercpu0 and libpercpu-dev from a copy of the
# source tree in OUT_DIR/libpercpu-VERSION (the source tree is never written
# to); the .deb files land in OUT_DIR.  Extra arguments go to
# dpkg-buildpackage (e.g. -d to build without checking Build-Depends).
# Used by `make deb` and the deb_package test.
# Usage: build-deb.sh SOURCE_DIR OUT_DIR [dpkg-buildpackage args...]
set -eu
src=$(cd "$1" && pwd) out=$2
shift 2
version=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$src/debian/changelog")
tree=$out/libpercpu-${version%-*}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$tree"
rm -f "$out"/libpercpu*_"$version"_*
sh "$src/tools/copy-source.sh" "$src" "$tree" "$out"
cd "$tree"
dpkg-buildpackage -us -uc -b "$@"
echo "built in $out:"
ls "$out"/*.deb
