#!/bin/sh
# Copy libpercpu's source tree to DEST without what builds leave in it: the
# VCS directory, build trees (build, build-*, obj-* and any EXCLUDE given,
# an absolute path inside SOURCE_DIR) and Debian build output.  Used by the
# tests that build from a copy (FetchContent, the Debian package) and by
# `make deb`, so that none of them writes into the source tree.
# Usage: copy-source.sh SOURCE_DIR DEST [EXCLUDE...]
set -eu
src=$(cd "$1" && pwd) dest=$2
shift 2
set -- --exclude=./build --exclude='./build-*' --exclude='./obj-*' \
	--exclude=./debian/.debhelper --exclude=./debian/tmp --exclude=./debian/files \
	--exclude=./debian/libpercpu0 --exclude=./debian/libpercpu-dev --exclude='./debian/*.substvars' \
	--exclude='./debian/*.log' --exclude=./debian/debhelper-build-stamp \
	$(for d in "$@"; do case "$d" in "$src"/*) echo "--exclude=./${d#"$src"/}" ;; esac; done)
mkdir -p "$dest"
tar -C "$src" --anchored --exclude-vcs "$@" -cf - . | tar -C "$dest" -xf -
