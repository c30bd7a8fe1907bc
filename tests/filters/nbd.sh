#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Filters under an NBD export: injected errors reach qemu-io with their
# errno, and a stack of filters serves the image's bytes (qemu-img
# compare), writes included.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-io qemu-img
plan 10

qemu-img create -q -f raw "$T/a.img" 4M
qemu-io -f raw -c "write -P 0x33 0 4M" "$T/a.img" >/dev/null
cp "$T/a.img" "$T/ref.img"
cp "$T/a.img" "$T/err.img"
cat > "$T/serve.lua" <<'LUA'
local bh = require "blkhost"
local dir = arg[1]
local srv <close> = bh.nbd.server{ listen = { "unix:" .. dir .. "/s.sock" }, persistent = true }
local function export(name, node) srv:export(node, { name = name }) end
export("err", bh.open(dir .. "/err.img", { filters = {
  { "error", op = "read", start = "1M", ["end"] = "2M", error = "EIO" } } }))
export("nospc", bh.open(nil, { format = "memory", size = "4M",
  filters = { { "error", op = "write", error = "ENOSPC" } } }))
export("after", bh.open(nil, { format = "memory", size = "4M",
  filters = { { "error", op = "read", after = 2, error = "EPERM" } } }))
export("stack", bh.open(dir .. "/a.img", { filters = {
  { "cache", size = "256K" }, { "readahead" }, { "blocksize", minblock = 4096, maxdata = "64K" },
  { "delay", rdelay = "0" }, { "log", file = dir .. "/nbd.log" } } }))
local f = assert(io.open(dir .. "/ready", "w")); f:write("ok\n"); f:close()
bh.loop()
srv:stop()
LUA
serve_script "$T/serve.lua"

has "error over NBD: a read outside start=1M end=2M succeeds" "read 65536/65536" \
    "$(qio err -c "read -P 0x33 0 64k")"
has "error over NBD: qemu-io's read in the range gets EIO" "Input/output error" \
    "$(qio err -c "read 1M 4k")"
has "error=ENOSPC over NBD: qemu-io's write gets ENOSPC" "No space left on device" \
    "$(qio nospc -c "write -P 0x77 0 4k")"
has "error over NBD: the refused write left nothing behind" "read 4096/4096" \
    "$(qio nospc -c "read -P 0 0 4k")"
out=$(qio after -c "read 0 4k" -c "read 0 4k" -c "read 0 4k")
[ "$(echo "$out" | grep -c "read 4096/4096")" = 2 ] && echo "$out" | grep -q "Operation not permitted" \
    && ok "error after=2 over NBD: two reads pass, the third gets EPERM" \
    || { not_ok "error after=2 over NBD: two reads pass, the third gets EPERM"; diag "$out"; }

check "a five-filter stack over NBD: qemu-img compare with the image says identical" \
    qemu-img compare -f raw -F raw "$T/ref.img" "$(uri stack)"
out=$(qio stack -c "write -P 0x5a 1000 70000" -c "write -z 200000 5000" -c "flush")
qemu-io -f raw -c "write -P 0x5a 1000 70000" -c "write -z 200000 5000" "$T/ref.img" >/dev/null
check "unaligned writes and zeroes through the stack: qemu-img compare says identical" \
    qemu-img compare -f raw -F raw "$T/ref.img" "$(uri stack)"
check "qemu-img convert reads the whole stack to the same bytes" \
    bash -c "qemu-img convert -f raw -O raw '$(uri stack)' '$T/copy.img' && cmp '$T/copy.img' '$T/ref.img'"
n=$(grep -c " Read offset=" "$T/nbd.log" || true)
[ "${n:-0}" -gt 0 ] && ok "the log filter at the top logged the NBD reads ($n)" || not_ok "the log filter logged the NBD reads"
kill -TERM $pid; wait $pid
check "after the server stops, the cache has written everything back to the image" cmp "$T/a.img" "$T/ref.img"
