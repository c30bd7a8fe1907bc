#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The sync-shim overhead (issue 14): 4k random reads on the memory driver
# through the core's path for synchronous callbacks against memory-submit,
# the same storage behind a native submit (tests/plugins builds it from
# drivers/memory with -DMEMORY_SUBMIT).  Compiles bench/shim.c against the
# build tree and prints ops/s per row and the ratios.  Not a test.
#
#   bench/shim.sh [THREADS [SECONDS [QD [REPEAT]]]]   # defaults: 4 2 32 3
#   BUILD_DIR=/tmp/build bench/shim.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# shellcheck disable=SC2046
cc -O2 -Wall -o "$out/shim" bench/shim.c -Icore/include \
    $(pkg-config --cflags --libs glib-2.0) \
    -L"$BUILD_DIR/core" -lblkhost -Wl,-rpath,"$PWD/$BUILD_DIR/core"
"$out/shim" "$BUILD_DIR/tests/plugins/memory-submit.so" "${1:-4}" \
    "${2:-2}" "${3:-32}" "${4:-3}"
