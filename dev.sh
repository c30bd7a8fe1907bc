#!/usr/bin/env bash
# blkhost developer entry point.  On a fresh Debian 12 machine, as root:
#   ./dev.sh serve [IMAGE]   install deps, build, serve an image over NBD
#   ./dev.sh test [ARGS]     install deps, build, run every test
#   ./dev.sh build           install deps and build only
# The build goes to ./build (override with BUILD_DIR).  ARGS go to
# `meson test` (e.g. --suite qcow2).
set -euo pipefail
cd "$(dirname "$0")"
BUILD_DIR=${BUILD_DIR:-build}

# What the build, the tests and the examples need, all from Debian 12.
PKGS=(gcc libc6-dev make pkg-config meson ninja-build
      liblua5.4-dev lua5.4 libglib2.0-dev zlib1g-dev libzstd-dev
      qemu-utils nbdkit libnbd-bin python3-libnbd fio fdisk e2fsprogs
      gnutls-bin libgnutls28-dev)
# The kernel-client tests boot a VM; installing these is best effort.
VM_PKGS=(qemu-system-x86 linux-image-amd64 busybox-static cpio)

deps() {
    local missing=() p sudo=""
    for p in "${PKGS[@]}" "${VM_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "dev.sh: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
    $sudo apt-get install -y -qq --no-install-recommends "${VM_PKGS[@]}" >/dev/null \
        || echo "dev.sh: VM packages unavailable; the vm suite will skip" >&2
}

build() {
    deps
    if [ ! -f "$BUILD_DIR/build.ninja" ]; then
        meson setup "$BUILD_DIR" >/dev/null
    fi
    meson compile -C "$BUILD_DIR" >/dev/null || meson compile -C "$BUILD_DIR"
}

# One closing line a CI harness understands, from meson's JSON test log.
summary() {
    /usr/bin/python3 - "$BUILD_DIR/meson-logs/testlog.json" <<'PY'
import json, sys
p = f = s = 0
try:
    lines = open(sys.argv[1]).read().splitlines()
except OSError:
    lines = []
for line in lines:
    r = json.loads(line).get("result", "")
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(f"{p} passed, {f} failed, {s} skipped")
PY
}

case "${1:-}" in
serve)
    shift
    build
    exec "$BUILD_DIR/lua/blkhost" run examples/export.lua "$@"
    ;;
test)
    shift
    build
    rc=0
    meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 2 "$@" || rc=$?
    summary
    exit $rc
    ;;
build)
    build
    ;;
*)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
