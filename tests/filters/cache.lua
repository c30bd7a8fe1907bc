-- SPDX-License-Identifier: BSD-3-Clause
-- cache: a write-back RAM cache; flush (and eviction, FUA, close) write
-- back; the size limit holds.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/filters/?.lua;" .. package.path
local lib = require "lib"
local t, bh = lib.t, lib.bh
local B = 4096

do
  local m <close> = lib.memdisk(1048576, 3)
  local orig = m:read(0, 1048576)
  local c <close> = bh.filter("cache", m, { size = "64K" })
  c:write(10, "cached!")
  t.is(c:read(10, 7), "cached!", "cache: a read sees the write")
  t.is(m:read(10, 7), orig:sub(11, 17), "cache: before flush the child "
       .. "still has the old bytes (write-back)")
  c:flush()
  t.is(m:read(10, 7), "cached!", "cache: flush writes the data back to the child")

  -- 64 blocks written through a 16-block cache.
  for i = 0, 63 do c:write(i * B, lib.pattern(B, 100 + i)) end
  t.ok(c:info()["cache-used"] <= 65536, "cache: size=64K is respected "
       .. "after 256K of writes (used " .. c:info()["cache-used"] .. ")")
  t.is(m:read(0, B), lib.pattern(B, 100), "cache: an evicted dirty block "
       .. "was written back to the child")
  local all = {}
  for i = 0, 63 do all[#all + 1] = lib.pattern(B, 100 + i) end
  t.is(c:read(0, 64 * B), table.concat(all), "cache: reads after eviction "
       .. "return every write")
  c:flush()
  t.is(m:read(0, 64 * B), table.concat(all), "cache: after flush the child "
       .. "holds every write")

  c:write(300000, "fua!", { fua = true })
  t.is(m:read(300000, 4), "fua!", "cache: a FUA write reaches the child at once")

  c:write(500000, "dirty")
  c:zero(499712, 8192)
  t.is(c:read(500000, 5), "\0\0\0\0\0", "cache: a zero over a dirty cached "
       .. "block reads as zeros")
  t.is(m:read(500000, 5), "\0\0\0\0\0", "cache: and the child is zeroed")
  c:write(700001, "at close")
end

do
  local m <close> = lib.memdisk(65536, 4)
  do
    local c <close> = bh.filter("cache", m, {})
    c:write(1, "kept")
  end
  t.is(m:read(1, 4), "kept", "cache: closing the node writes back what is left")
  t.error_like(function() bh.filter("cache", m, { size = "1K" }) end,
               "size=1024 must hold at least one block", "cache: size below one block refused")
  t.error_like(function() bh.filter("cache", m, { size = "lots" }) end,
               "size", "cache: size=lots refused")
end
t.done()
