#!/bin/sh
# Build tests/consumer the ways a user's project takes libpercpu, run it, and
# check the version it reports (CTest: version_agree, subproject_*).
#   version       install BUILD_DIR into a scratch prefix; find_package,
#                 pkg-config and the SONAME of the installed library must
#                 agree with the header's macros, pcpu_version() and VERSION
#                 (the one in CMakeLists.txt), and so must debian/changelog
#   subdirectory  add_subdirectory of SOURCE_DIR; only the library is built
#   fetchcontent  FetchContent from a file:// archive of a copy of
#                 SOURCE_DIR (offline), with PCPU_BUILD_EXAMPLES=ON
# Usage: consumer_test.sh MODE SOURCE_DIR BUILD_DIR CC VERSION
set -eu
mode=$1 src=$2 build=$3 version=$5
export CC="$4"
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() {   # check WHAT GOT WANT
	if [ "$2" = "$3" ]; then echo "ok: $1 $2"; else echo "FAIL: $1 is '$2', not '$3'"; fail=1; fi
}
configure() {   # configure ARGS...: the consumer project in $tmp/c
	cmake -S "$here" -B "$tmp/c" "$@" >"$tmp/configure.log" 2>&1 ||
		{ cat "$tmp/configure.log"; exit 1; }
}
build_consumer() {
	cmake --build "$tmp/c" -j2 --target consumer >"$tmp/build.log" 2>&1 ||
		{ cat "$tmp/build.log"; exit 1; }
}
has_target() {   # has_target NAME: the build system of $tmp/c has it
	cmake --build "$tmp/c" --target help | grep "\.\.\. $1\$" >/dev/null
}
only_library() {   # a subproject builds the library, not tests/bench (unless asked)
	for t in test_api pcpu-bench; do
		if has_target "$t"; then echo "FAIL: subproject defines $t"; fail=1; fi
	done
	has_target percpu || { echo "FAIL: no target percpu"; fail=1; }
}

case "$mode" in
version)
	prefix=$tmp/prefix
	cmake --install "$build" --prefix "$prefix" >/dev/null
	pc=$(find "$prefix" -name percpu.pc | head -n 1)
	lib=$(dirname "$(dirname "$pc")")
	configure -DPCPU_CONSUME=package -DPCPU_EXPECT_VERSION="$version" -DCMAKE_PREFIX_PATH="$prefix"
	build_consumer
	line=$(LD_LIBRARY_PATH="$lib" "$tmp/c/consumer")
	echo "$line"
	set -- $line
	check "header macros" "${2#header=}" "$version"
	check "pcpu_version()" "${4#loaded=}" "${3#number=}"
	check "CMake package version" "${5#cmake=}" "$version"
	if command -v pkg-config >/dev/null 2>&1; then
		check "pkg-config --modversion" "$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --modversion percpu)" "$version"
	else
		echo "skip: pkg-config not installed"
	fi
	soname=$(readelf -d "$lib/libpercpu.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
	check "SONAME" "$soname" "libpercpu.so.${version%%.*}"
	if [ -f "$src/debian/changelog" ]; then
		deb=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$src/debian/changelog")
		check "debian/changelog upstream version" "${deb%-*}" "$version"
	fi
	;;
subdirectory)
	configure -DPCPU_CONSUME=subdirectory -DPCPU_SOURCE_DIR="$src"
	only_library
	has_target counters && { echo "FAIL: examples built by default"; fail=1; }
	build_consumer
	line=$("$tmp/c/consumer")
	echo "$line"
	set -- $line
	check "header macros" "${2#header=}" "$version"
	;;
fetchcontent)
	sh "$src/tools/copy-source.sh" "$src" "$tmp/libpercpu-$version" "$build"
	tar -C "$tmp" -czf "$tmp/libpercpu-$version.tar.gz" "libpercpu-$version"
	rm -rf "$tmp/libpercpu-$version"
	configure -DPCPU_CONSUME=fetchcontent -DPCPU_URL="file://$tmp/libpercpu-$version.tar.gz" \
		-DPCPU_BUILD_EXAMPLES=ON
	only_library
	has_target counters || { echo "FAIL: PCPU_BUILD_EXAMPLES=ON gave no examples"; fail=1; }
	build_consumer
	line=$("$tmp/c/consumer")
	echo "$line"
	set -- $line
	check "header macros" "${2#header=}" "$version"
	;;
*)
	echo "unknown mode $mode"; exit 2 ;;
esac
[ $fail -eq 0 ] && echo "consumer $mode: passed"
exit $fail
