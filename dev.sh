#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# blkhost developer entry point.  On a fresh Debian 12 machine, as root:
#   ./dev.sh serve [IMAGE]   install deps, build, serve an image over NBD
#   ./dev.sh test [ARGS]     install deps, build, run every test, then the
#                            fast suites again under ASan+UBSan
#   ./dev.sh build           install deps and build only
#   ./dev.sh install [PREFIX]
#                            build, then meson install into PREFIX
#                            (/usr/local); DESTDIR=DIR stages it there
#   ./dev.sh fuzz [SECONDS] [TARGET...]
#                            fuzz each target SECONDS (60), one at a time
#                            (FUZZ_JOBS=N processes a target, FUZZ_FLAGS:
#                            fuzz/README.md)
# The build goes to ./build (override with BUILD_DIR), the sanitizer and
# fuzzing build to ./build-asan (ASAN_DIR).  ARGS go to `meson test` (e.g.
# --suite qcow2) in both builds; DEV_ASAN=0 skips the sanitizer stage.
# Without installing, the binary is ./build/lua/blkhost.
set -euo pipefail
cd "$(dirname "$0")"
BUILD_DIR=${BUILD_DIR:-build}
ASAN_DIR=${ASAN_DIR:-$BUILD_DIR-asan}

# What the build, the tests and the examples need, all from Debian 12.
PKGS=(gcc libc6-dev make pkg-config meson ninja-build
      liblua5.4-dev lua5.4 lua-dkjson libglib2.0-dev zlib1g-dev libzstd-dev
      qemu-utils nbdkit libnbd-bin python3-libnbd fio fdisk e2fsprogs
      gnutls-bin libgnutls28-dev libfuse3-dev fuse3 liburing-dev libnbd-dev)
# The kernel-client tests boot a VM; installing these is best effort.
VM_PKGS=(qemu-system-x86 linux-image-amd64 busybox-static cpio)
# The sanitizer build prefers clang and the fuzzers need it and libFuzzer;
# also best effort: without them ASan+UBSan use gcc and fuzzing skips.
LAB_PKGS=(clang libfuzzer-14-dev)
# The rbd driver (librbd-dev), its one-node test cluster (the ceph suite)
# and bench/rbd.sh's peer (qemu-block-extra: qemu-nbd's rbd); best effort:
# without them the driver is not built and the ceph suite skips.
CEPH_PKGS=(librbd-dev ceph-mon ceph-osd ceph-common qemu-block-extra)

deps() {
    local missing=() p sudo=""
    for p in "${PKGS[@]}" "${VM_PKGS[@]}" "${LAB_PKGS[@]}" "${CEPH_PKGS[@]}"; do
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
    $sudo apt-get install -y -qq --no-install-recommends "${LAB_PKGS[@]}" >/dev/null \
        || echo "dev.sh: clang/libFuzzer unavailable; fuzzing will skip" >&2
    $sudo apt-get install -y -qq --no-install-recommends "${CEPH_PKGS[@]}" >/dev/null \
        || echo "dev.sh: Ceph packages unavailable; no rbd driver, the ceph suite will skip" >&2
}

build() {
    deps
    if [ ! -f "$BUILD_DIR/build.ninja" ]; then
        meson setup "$BUILD_DIR" >/dev/null
    fi
    meson compile -C "$BUILD_DIR" >/dev/null || meson compile -C "$BUILD_DIR"
}

# The sanitizer build: clang when it is there (its UBSan honours log_path,
# and it can link libFuzzer), else gcc.  Coverage for the fuzzers is
# compiled in when libFuzzer links (-Dfuzz=auto).
asan_build() {
    local cc=gcc
    command -v clang >/dev/null && cc=clang
    if [ -f "$ASAN_DIR/build.ninja" ] && [ "$cc" = clang ] &&
       ! grep -q 'fuzzer-no-link' "$ASAN_DIR/build.ninja" &&
       [ "${1:-}" = fuzz ]; then
        echo "dev.sh: $ASAN_DIR was configured without libFuzzer; redoing it" >&2
        rm -rf "$ASAN_DIR"
    fi
    if [ ! -f "$ASAN_DIR/build.ninja" ]; then
        CC=$cc meson setup "$ASAN_DIR" -Db_sanitize=address,undefined \
            -Db_lundef=false -Dfuzz=auto -Dvm_tests=disabled >/dev/null
    fi
    meson compile -C "$ASAN_DIR" >/dev/null || meson compile -C "$ASAN_DIR"
}

# Every sanitizer report lands in a file under $1 (log_path): a report from
# a process whose exit status a test ignores (a helper, a server killed
# later, a command expected to fail) still fails the run.  Leaks count.
# The default fast unwinder is kept: the slow one on every malloc made the
# Lua-heavy tests ten times slower (liblua allocates through malloc), and
# plugins are never dlclose'd, so their frames are symbolized anyway.
asan_env() {
    rm -rf "$1" && mkdir -p "$1"
    export ASAN_OPTIONS="log_path=$1/asan:halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1"
    export UBSAN_OPTIONS="log_path=$1/ubsan:halt_on_error=1:abort_on_error=1:print_stacktrace=1"
}

# Print each sanitizer report (head) and return how many there are.
asan_reports() {
    local f n=0
    for f in "$1"/*; do
        [ -e "$f" ] || continue
        n=$((n + 1))
        echo "dev.sh: sanitizer report $f:" >&2
        head -n 40 "$f" | sed 's/^/    /' >&2
    done
    [ $n -eq 0 ] || echo "dev.sh: a leak's stack stops at GLib or Lua frames;" \
        "rerun its test with ASAN_OPTIONS=fast_unwind_on_malloc=0 for the caller" >&2
    return $((n > 255 ? 255 : n))
}

# One closing line a CI harness understands, from meson's JSON test logs
# (both builds), plus one failure per sanitizer report.
summary() {
    /usr/bin/python3 - "$@" <<'PY'
import json, sys
p = f = s = 0
extra = int(sys.argv[1])
for path in sys.argv[2:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        r = json.loads(line).get("result", "")
        if r in ("OK", "EXPECTEDFAIL"): p += 1
        elif r == "SKIP": s += 1
        else: f += 1
print(f"{p} passed, {f + extra} failed, {s} skipped")
PY
}

# The fast suites (lua too: seconds, and it checks the bindings' error paths).
ASAN_SUITES=(core drivers lua qcow2 nbd partition vmstate policy fuzz fuse filters luadrv)

fuzz() {
    local secs=60 name rc=0 total
    case ${1:-} in ''|*[!0-9]*) ;; *) secs=$1; shift ;; esac
    deps
    command -v clang >/dev/null || { echo "dev.sh: fuzz needs clang" >&2; exit 1; }
    asan_build fuzz
    grep -q 'fuzzer-no-link' "$ASAN_DIR/build.ninja" || {
        echo "dev.sh: clang cannot link libFuzzer (apt-get install libfuzzer-14-dev)" >&2
        exit 1; }
    # libFuzzer reports itself; UBSan findings must stop it to be kept.
    export ASAN_OPTIONS="detect_leaks=1"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
    local targets=("$@")
    [ ${#targets[@]} -gt 0 ] || targets=(nbd-server nbd-client nbd-tls qcow2 partition savevm savevm-scan control)
    for name in "${targets[@]}"; do
        fuzz/run.sh fuzz "$name" "$ASAN_DIR/fuzz/fuzz-$name" "fuzz/corpus/$name" \
            "$ASAN_DIR/fuzz-corpus/$name" "$secs" | tee "$ASAN_DIR/fuzz-last-$name.txt" || rc=1
        # Executions across every run of this build, for the 10^7 goal (one
        # file per target: two targets may be fuzzed at once, one a core).
        total=$(tail -n 1 "$ASAN_DIR/fuzz-last-$name.txt" | awk '{print $4}')
        case $total in ''|*[!0-9]*) total=0 ;; esac
        echo "$name $total" >> "$ASAN_DIR/fuzz-corpus/executions.log"
        awk -v n="$name" '$1 == n { t += $2 } END { printf "%-11s total %d executions in all runs\n", n, t }' \
            "$ASAN_DIR/fuzz-corpus/executions.log"
    done
    ls fuzz/crashes | grep -q . && echo "dev.sh: crash inputs in fuzz/crashes/:" \
        "$(ls fuzz/crashes | tr '\n' ' ')" >&2
    exit $rc
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
    logs=("$BUILD_DIR/meson-logs/testlog.json")
    reports=0
    if [ "${DEV_ASAN:-1}" != 0 ]; then
        args=("$@")
        if [ ${#args[@]} -eq 0 ]; then
            for s in "${ASAN_SUITES[@]}"; do args+=(--suite "$s"); done
        fi
        echo "dev.sh: the same again under ASan+UBSan ($ASAN_DIR)" >&2
        if asan_build; then
            asan_env "$ASAN_DIR/sanitizer-logs"
            meson test -C "$ASAN_DIR" --print-errorlogs --num-processes 2 \
                --timeout-multiplier 3 \
                "${args[@]}" || rc=1
            asan_reports "$ASAN_DIR/sanitizer-logs" || { reports=$?; rc=1; }
            logs+=("$ASAN_DIR/meson-logs/testlog.json")
        else
            echo "dev.sh: the ASan+UBSan build failed" >&2
            reports=1 rc=1
        fi
    fi
    summary "$reports" "${logs[@]}"
    exit $rc
    ;;
fuzz)
    shift
    fuzz "$@"
    ;;
build)
    build
    ;;
install)
    shift
    prefix=${1:-/usr/local}
    case $prefix in /*) ;; *) echo "dev.sh: PREFIX must be absolute: $prefix" >&2; exit 2 ;; esac
    build
    # The prefix is compiled in (plugin and Lua directories), so the
    # build tree is reconfigured for it; the same prefix rebuilds nothing.
    meson configure "$BUILD_DIR" -Dprefix="$prefix" >/dev/null
    meson compile -C "$BUILD_DIR" >/dev/null || meson compile -C "$BUILD_DIR"
    sudo=""
    if [ -z "${DESTDIR:-}" ] && [ "$(id -u)" -ne 0 ]; then
        mkdir -p "$prefix" 2>/dev/null || true
        [ -w "$prefix" ] || sudo=sudo
    fi
    $sudo meson install -C "$BUILD_DIR" --no-rebuild --quiet ${DESTDIR:+--destdir "$DESTDIR"}
    # Other programs linking libblkhost find it without a RUNPATH.
    if [ -z "${DESTDIR:-}" ] && command -v ldconfig >/dev/null; then $sudo ldconfig || true; fi
    echo "dev.sh: installed ${DESTDIR:-}$prefix/bin/blkhost (man blkhost, man blkhost-lua)"
    ;;
*)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
