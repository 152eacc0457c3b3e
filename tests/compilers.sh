# compilers.sh - sourced by the test scripts that build a program with every
# compiler at hand against the static library (api_header.sh,
# test_header_warnings.sh, this_cpu_matrix.sh).  Needs src and build set;
# sets lib (the static library, which must exist), out (a temporary
# directory removed on exit), compilers, and found=0 fail=0.

lib=$build/libpercpu.a
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
[ -f "$lib" ] || { echo "no $lib"; exit 1; }
compilers="gcc g++ clang clang++"
found=0 fail=0

# use_cc CC [C_FLAGS [CXX_FLAGS]]: false, after saying so, when CC is not
# installed; else counts it in found and sets lang to "-x c" or "-x c++"
# (by CC's name) followed by C_FLAGS or CXX_FLAGS.
use_cc() {
	command -v "$1" >/dev/null 2>&1 || { echo "skip: $1 not installed"; return 1; }
	found=$((found + 1))
	case $1 in *++) lang="-x c++${3:+ $3}" ;; *) lang="-x c${2:+ $2}" ;; esac
}
