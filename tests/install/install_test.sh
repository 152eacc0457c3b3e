#!/bin/sh
# Install the built project into a temporary prefix, then build tests/install/ext.c
# against it the way an outside user would: with pkg-config, shared and static.
# Usage: install_test.sh BUILD_DIR CC SOURCE_DIR
set -eu
build=$1 cc=$2 src=$3
. "$(dirname "$0")/../skip.sh"
skip_without pkg-config
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
pc=$(dirname "$(find "$prefix" -name percpu.pc | head -n 1)")
export PKG_CONFIG_PATH="$pc"
# A .pc with a literal prefix (PCPU_PC_RELOCATABLE=OFF) names the configured
# prefix: point this scratch copy at the scratch prefix.
grep -q '^prefix=${pcfiledir}' "$pc/percpu.pc" || sed -i "s|^prefix=.*|prefix=$prefix|" "$pc/percpu.pc"
libdir=$(pkg-config --variable=libdir percpu)
# shellcheck disable=SC2046
"$cc" -std=gnu11 -Wall -Wextra -Werror "$src/ext.c" -o "$prefix/ext" $(pkg-config --cflags --libs percpu)
LD_LIBRARY_PATH="$libdir" "$prefix/ext"
# shellcheck disable=SC2046
"$cc" -std=gnu11 -Wall -Wextra -Werror "$src/ext.c" -o "$prefix/ext-static" \
	$(pkg-config --cflags percpu) "$libdir/libpercpu.a" $(pkg-config --libs-only-other --static percpu) -lpthread -ldl
"$prefix/ext-static" >/dev/null
test -f "$prefix/include/percpu.h"
test -f "$(dirname "$pc")/cmake/percpu/percpuConfig.cmake"
echo "install: 2 passed, 0 failed"
