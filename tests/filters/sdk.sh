#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The out-of-tree example filter (examples/filter) builds with its
# Makefile and pkg-config alone, loads by path, stacks with filters= and
# bh.filter, refuses writes to its range, and stacks under a qcow2
# snapshot with no snapshot code of its own.
. "$SOURCE_ROOT/tests/tap.sh"
need make cc pkg-config qemu-img
plan 4

export PKG_CONFIG_PATH="$BUILD_ROOT/core"
cp "$SOURCE_ROOT/examples/filter/protect.c" "$SOURCE_ROOT/examples/filter/Makefile" "$T/"
check "examples/filter builds with make against blkhost-plugin" make -C "$T" -s
export LD_LIBRARY_PATH="$BUILD_ROOT/core${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

qemu-img create -q -f qcow2 "$T/d.qcow2" 1M
cat > "$T/use.lua" <<'LUA'
local bh = require "blkhost"
local so, img = arg[1], arg[2]
assert(bh.plugin.load(so).name == "protect")
local d <close> = bh.open(img, { filters = { { "protect", start = 0, ["end"] = 4096 } } })
d:write(4096, "allowed")
assert(d:read(4096, 7) == "allowed", "a write outside the range lands")
local ok, err = pcall(d.write, d, 100, "nope")
assert(not ok and err:find("protect: write at 100 touches the protected bytes 0%-4095"),
       "a write inside the range is refused: " .. tostring(err))
assert(d:read(100, 4) == "\0\0\0\0", "and nothing was written")
d:snapshot_create("through-protect")
assert(#d:snapshots() == 1, "the snapshot was made through the filter")
local m <close> = bh.open(nil, { format = "memory", size = "64K" })
local p <close> = bh.filter("protect", m, { start = "8K", ["end"] = "16K" })
assert(not pcall(p.zero, p, 0, 65536), "a zero over the range is refused")
print("used")
LUA
check "loads by path; refuses writes in its range; a qcow2 snapshot passes through it" \
    "$BLKHOST" run "$T/use.lua" "$T/protect.so" "$T/d.qcow2"
check "qemu-img sees the snapshot made through the example filter" \
    bash -c "qemu-img snapshot -l '$T/d.qcow2' | grep -q through-protect"
cat > "$T/bad.lua" <<'LUA'
local bh = require "blkhost"
bh.plugin.load(arg[1])
bh.open(nil, { format = "memory", size = "64K", filters = { { "protect", start = 10, ["end"] = 5 } } })
LUA
check_fails "start >= end refused with a clear message" "protect: start=10 must be below end=5" \
    "$BLKHOST" run "$T/bad.lua" "$T/protect.so"
