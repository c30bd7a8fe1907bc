#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost plugins` with BLKHOST_PLUGIN_PATH pointing at the broken test
# plugins: the good ones load, each broken one is listed with its reason,
# and the build tree's drivers are still found after the path.
. "$SOURCE_ROOT/tests/tap.sh"
plan 14
export BLKHOST_PLUGIN_PATH="$BUILD_ROOT/tests/plugins"
out=$("$BLKHOST" plugins 2>&1)
rc=$?
[ $rc -eq 0 ] && ok "blkhost plugins exits 0 even with refusals" || not_ok "exit status $rc"
has() { if grep -qE -- "$2" <<<"$out"; then ok "$1"; else not_ok "$1"; diag "$out"; fi; }
has "build-tree raw driver found after BLKHOST_PLUGIN_PATH" "^ *raw .*drivers/raw/raw.so"
has "older descriptor loads" "^ *old-struct "
has "wrong ABI refused with the supported range" "bad-abi.so: plugin ABI version 99 is not supported \(this blkhost supports 2 to 2\)"
has "missing symbol refused" "no-symbol.so: no blkhost_plugin_init symbol"
has "init failure refused with the plugin's reason" "init-fail.so: .*needs /dev/frobnicator"
has "init returning NULL refused" "init-null.so: blkhost_plugin_init\(\) failed"
has "non-ELF file refused" "not-elf.so: not a shared object"
has "duplicate name refused, naming the first" "duplicate plugin name 'testdrv' \(already loaded from .*testdrv-dup.so\)"
has "driver without pread refused by name" "no-pread.so: driver has no pread callback"
has "thread model outside the enum refused" "bad-thread.so: unknown thread model 5"
has "unknown plugin kind refused" "bad-kind.so: unknown plugin kind 7"
has "unknown driver flag refused" "bad-flags.so: driver has unknown flags 0x40000000"
has "frontend without stop refused" "fe-no-stop.so: frontend has no stop callback"
