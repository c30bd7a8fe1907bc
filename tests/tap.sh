# SPDX-License-Identifier: BSD-3-Clause
# TAP helpers for shell tests.  Source it: . "$SRCDIR/tests/tap.sh"
# Meson sets BLKHOST (the binary), BUILD_ROOT and SOURCE_ROOT.
set -u
: "${SOURCE_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${BUILD_ROOT:=$SOURCE_ROOT/build}"
: "${BLKHOST:=$BUILD_ROOT/lua/blkhost}"
export SOURCE_ROOT BUILD_ROOT BLKHOST
tap_n=0
tap_failed=0
# Debian's python3 has the libnbd module; a pyenv one first on PATH does not.
export PATH="/usr/bin:$PATH"

plan() { echo "1..$1"; }
ok() { tap_n=$((tap_n + 1)); echo "ok $tap_n - $*"; }
not_ok() { tap_n=$((tap_n + 1)); tap_failed=$((tap_failed + 1)); echo "not ok $tap_n - $*"; }
skip() { tap_n=$((tap_n + 1)); echo "ok $tap_n - # SKIP $*"; }
diag() { echo "$*" | sed 's/^/# /'; }
# skip_all REASON: the whole test file cannot run here.
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
# check DESC CMD...: ok if CMD succeeds, else not ok with its output.
check() {
    local desc=$1; shift
    local out
    if out=$("$@" 2>&1); then ok "$desc"; else not_ok "$desc"; diag "$out"; fi
}
# check_fails DESC PATTERN CMD...: ok if CMD fails and its output matches PATTERN (grep -E).
check_fails() {
    local desc=$1 pat=$2; shift 2
    local out
    if out=$("$@" 2>&1); then
        not_ok "$desc"; diag "unexpectedly succeeded: $out"
    elif echo "$out" | grep -qE -- "$pat"; then
        ok "$desc"
    else
        not_ok "$desc"; diag "output did not match /$pat/:"; diag "$out"
    fi
}
# A private scratch dir removed at exit; exported as T.
T=$(mktemp -d "${TMPDIR:-/tmp}/blkhost-test.XXXXXX")
export T
tap_cleanup_hooks=()
at_exit() { tap_cleanup_hooks+=("$*"); }
tap_exit() {
    local h
    for h in "${tap_cleanup_hooks[@]+"${tap_cleanup_hooks[@]}"}"; do eval "$h" || true; done
    # TAP_KEEP=1 keeps the scratch dir (logs, images) for a look after a
    # failure.
    if [ -n "${TAP_KEEP:-}" ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap tap_exit EXIT
need() { for c in "$@"; do command -v "$c" >/dev/null 2>&1 || skip_all "$c is not installed"; done; }

# serve_script SCRIPT: run `blkhost run SCRIPT $T` in the background (it
# serves on $T/s.sock and writes $T/ready once it listens; its log goes
# to $T/srv.log), kill it at exit, and bail out if it does not come up.
# Then uri NAME gives an export's URI and qio NAME ARGS... runs qemu-io
# on it.
serve_script() {
    "$BLKHOST" run "$1" "$T" >"$T/srv.log" 2>&1 &
    pid=$!
    at_exit "kill $pid 2>/dev/null"
    local i
    for i in $(seq 1 200); do [ -s "$T/ready" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.05; done
    [ -s "$T/ready" ] || { diag "$(cat "$T/srv.log")"; exit 1; }
}
uri() { echo "nbd+unix:///$1?socket=$T/s.sock"; }
qio() { local u; u=$(uri "$1"); shift; qemu-io -f raw "$@" "$u" 2>&1; }
# has DESC PATTERN OUTPUT: ok if OUTPUT matches PATTERN (grep -E).
has() { if grep -qE -- "$2" <<<"$3"; then ok "$1"; else not_ok "$1"; diag "$3"; fi; }
