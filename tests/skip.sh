# skip.sh - sourced by the test scripts: skip the test (exit 77, CTest's
# SKIP_RETURN_CODE) when the build left a feature out or a tool is missing.

# skip_unless_built FLAG WHAT: FLAG is a CMake boolean from the build (1, ON,
# TRUE, YES); WHAT names what the build lacked.
skip_unless_built() {
	case "$1" in
	1|ON|TRUE|YES|on|true|yes) ;;
	*) echo "built without $2: skipping"; exit 77 ;;
	esac
}

# skip_without TOOL: skip unless TOOL is on PATH.
skip_without() {
	command -v "$1" >/dev/null 2>&1 || { echo "$1 not installed: skipping"; exit 77; }
}
