#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Drivers written in Lua under an NBD export: the three examples/drivers
# (pattern, concat, chunks) found on BLKHOST_PLUGIN_PATH and read with
# nbdcopy / qemu-img compare against the expected bytes, writes landing
# in the files behind them, a script's bh.driver.register driver whose
# Lua errors reach qemu-io as errnos while the server goes on, and two
# parallel readers of the parallel pattern driver.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-io qemu-img nbdcopy python3
plan 16
export BLKHOST_PLUGIN_PATH="$SOURCE_ROOT/examples/drivers"
MiB=1048576

# The pattern the pattern driver serves, 4 MiB of it.
python3 - "$T/pattern.ref" <<'PY'
import sys
n = 4 << 20
with open(sys.argv[1], "wb") as f:
    f.write(bytes(((i // 8) ^ i) & 0xff for i in range(n)))
PY
# Three parts of odd sizes for concat.
head -c 1000000 /dev/urandom >"$T/a"
head -c 12345 /dev/urandom >"$T/b"
head -c 2000000 /dev/urandom >"$T/c"
cat "$T/a" "$T/b" "$T/c" >"$T/concat.ref"
mkdir "$T/chunks"

cat > "$T/serve.lua" <<'LUA'
local bh = require "blkhost"
local dir = arg[1]
-- A memory-like driver registered by the script itself: writes from 3 MiB
-- on fail with ENOSPC, reads of [2 MiB, 2 MiB + 64 KiB) raise a plain error.
local M = 1048576
bh.driver.register {
  name = "scriptmem",
  open = function(opts) return { size = 4 * M, blocks = {} } end,
  get_size = function(h) return h.size end,
  pread = function(h, count, offset)
    if offset < 2 * M + 65536 and offset + count > 2 * M then
      error("scriptmem: the disk is on fire")
    end
    local out, at = {}, offset
    while at < offset + count do
      local b, off = at // 4096, at % 4096
      local n = math.min(4096 - off, offset + count - at)
      local blk = h.blocks[b]
      out[#out + 1] = blk and blk:sub(off + 1, off + n) or string.rep("\0", n)
      at = at + n
    end
    return table.concat(out)
  end,
  pwrite = function(h, buf, offset)
    if offset + #buf > 3 * M then
      error({ errno = "ENOSPC", msg = "scriptmem: no room past 3 MiB" })
    end
    local at = 0
    while at < #buf do
      local pos = offset + at
      local b, off = pos // 4096, pos % 4096
      local n = math.min(4096 - off, #buf - at)
      local blk = h.blocks[b] or string.rep("\0", 4096)
      h.blocks[b] = blk:sub(1, off) .. buf:sub(at + 1, at + n) .. blk:sub(off + n + 1)
      at = at + n
    end
  end,
}
local srv <close> = bh.nbd.server{ listen = { "unix:" .. dir .. "/s.sock" }, persistent = true }
srv:export(bh.open(nil, { format = "pattern", size = "4M", readonly = true }), { name = "pattern" })
srv:export(bh.open(nil, { format = "concat",
  files = dir .. "/a," .. dir .. "/b," .. dir .. "/c" }), { name = "concat" })
srv:export(bh.open(nil, { format = "chunks", dir = dir .. "/chunks", size = "8M" }), { name = "chunks" })
srv:export(bh.open(nil, { format = "scriptmem" }), { name = "scriptmem" })
local f = assert(io.open(dir .. "/ready", "w")); f:write("ok\n"); f:close()
bh.loop()
srv:stop()
LUA
serve_script "$T/serve.lua"

check "pattern.lua over NBD: nbdcopy's copy equals the expected pattern" \
    bash -c "nbdcopy '$(uri pattern)' '$T/pattern.out' && cmp '$T/pattern.ref' '$T/pattern.out'"
nbdcopy "$(uri pattern)" "$T/p1" & r1=$!
nbdcopy "$(uri pattern)" "$T/p2" & r2=$!
wait $r1; s1=$?; wait $r2; s2=$?
if [ $s1 = 0 ] && [ $s2 = 0 ] && cmp -s "$T/pattern.ref" "$T/p1" && cmp -s "$T/pattern.ref" "$T/p2"; then
    ok "pattern.lua (parallel): two nbdcopy readers at once both get the right bytes"
else
    not_ok "pattern.lua (parallel): two nbdcopy readers at once both get the right bytes"
fi
check_fails "pattern.lua over NBD: the read-only export refuses a write" "." \
    qemu-io -f raw -c "write 0 4k" "$(uri pattern)"

check "concat.lua over NBD: qemu-img compare with the three files joined says identical" \
    qemu-img compare -f raw -F raw "$T/concat.ref" "$(uri concat)"
qio concat -c "write -P 0x42 999900 300" >/dev/null
qemu-io -f raw -c "write -P 0x42 999900 300" "$T/concat.ref" >/dev/null
check "concat.lua: a write across the a|b boundary over NBD lands in both files" \
    bash -c "cat '$T/a' '$T/b' '$T/c' | cmp - '$T/concat.ref'"
check "concat.lua: qemu-img compare after the write still says identical" \
    qemu-img compare -f raw -F raw "$T/concat.ref" "$(uri concat)"

head -c $((8 * MiB)) /dev/zero >"$T/chunks.ref"
check "chunks.lua over NBD: an empty store reads as 8 MiB of zeros" \
    qemu-img compare -f raw -F raw "$T/chunks.ref" "$(uri chunks)"
qio chunks -c "write -P 0x77 $((MiB + 10)) 5000" -c "write -P 0x11 $((5 * MiB - 100)) 200" -c flush >/dev/null
qemu-io -f raw -c "write -P 0x77 $((MiB + 10)) 5000" -c "write -P 0x11 $((5 * MiB - 100)) 200" "$T/chunks.ref" >/dev/null
check "chunks.lua: writes over NBD land in chunk files 1, 4 and 5 only" \
    test "$(ls "$T/chunks" | tr '\n' ' ')" = "00000001 00000004 00000005 "
check "chunks.lua: chunk file 1 holds the written bytes at offset 10" \
    bash -c "cmp <(head -c $MiB '$T/chunks/00000001') <(tail -c +$((MiB + 1)) '$T/chunks.ref' | head -c $MiB)"
check "chunks.lua: qemu-img compare after the writes says identical" \
    qemu-img compare -f raw -F raw "$T/chunks.ref" "$(uri chunks)"
map=$(qemu-img map -f raw --output=json "$(uri chunks)" 2>&1)
has "chunks.lua: extents report missing chunks as holes (qemu-img map: chunk 0 zero, chunk 1 data)" \
    '"start": 0, "length": 1048576, "depth": 0, "present": (true|false), "zero": true, "data": false.*"start": 1048576, "length": 1048576, "depth": 0, "present": true, "zero": false, "data": true' \
    "$(tr -d '\n' <<<"$map")"

out=$(qio scriptmem -c "write -P 0x5a 4096 8192" -c "read -P 0x5a 4096 8192")
has "bh.driver.register in the serving script: qemu-io writes and reads back over NBD" \
    "read 8192/8192" "$out"
has "error{errno='ENOSPC'} in a Lua pwrite: qemu-io's write over NBD gets ENOSPC" \
    "No space left on device" "$(qio scriptmem -c "write -P 0x1 $((3 * MiB)) 4096")"
has "a Lua error() in pread: qemu-io's read over NBD gets EIO" \
    "Input/output error" "$(qio scriptmem -c "read $((2 * MiB)) 4096")"
has "after the Lua errors the server keeps serving: the data is still there" \
    "read 8192/8192" "$(qio scriptmem -c "read -P 0x5a 4096 8192")"

out=$("$BLKHOST" plugins 2>&1)
has "blkhost plugins lists the *.lua drivers found on BLKHOST_PLUGIN_PATH" \
    "pattern.*concat|concat.*pattern" "$(grep -E "pattern|concat|chunks" <<<"$out" | tr '\n' ' ')"
