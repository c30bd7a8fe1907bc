-- SPDX-License-Identifier: BSD-3-Clause
-- readahead: the data read is the child's, sequential or not, and a
-- write is never hidden by what was read ahead.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/filters/?.lua;" .. package.path
local lib = require "lib"
local t, bh = lib.t, lib.bh
local size = 2 * 1048576
local m <close> = lib.memdisk(size, 10)
local want = m:read(0, size)
local r <close> = bh.filter("readahead", m, { window = "64K" })
local got = {}
for off = 0, size - 1, 4096 do got[#got + 1] = r:read(off, 4096) end
t.ok(table.concat(got) == want, "readahead: 4K sequential reads return the child's bytes")
got = {}
for off = 0, size - 1, 1000 do got[#got + 1] = r:read(off, math.min(1000, size - off)) end
t.ok(table.concat(got) == want, "readahead: unaligned sequential reads up to the end are right")
local ok = true
for i = 1, 200 do
  local off = (i * 7919 * 4096) % (size - 8192) + i
  ok = ok and r:read(off, 3000) == want:sub(off + 1, off + 3000)
end
t.ok(ok, "readahead: random reads return the child's bytes")
r:read(0, 4096)
r:read(4096, 4096)          -- now 64K sit in the buffer
r:write(8192, "fresh")
t.is(r:read(8192, 5), "fresh", "readahead: a write over read-ahead bytes is seen by the next read")
r:read(65536, 4096)
r:read(69632, 4096)
m:write(73728, "under")     -- written beside the filter: not seen, by design
r:zero(73728, 4096)
t.is(r:read(73728, 5), "\0\0\0\0\0", "readahead: a zero drops the read-ahead bytes")
t.error_like(function() bh.filter("readahead", m, { window = "1K" }) end,
             "window=1024 must be from 4K to 64M", "readahead: window=1K refused")
t.done()
