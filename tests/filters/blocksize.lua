-- SPDX-License-Identifier: BSD-3-Clause
-- blocksize: unaligned requests are right (checked against a reference
-- buffer) and what reaches the child is aligned and within the limits
-- (seen by a log filter under it).
package.path = os.getenv("SOURCE_ROOT") .. "/tests/filters/?.lua;" .. package.path
local lib = require "lib"
local t, bh = lib.t, lib.bh
local dir = t.tmpdir()
local size = 1048576
local m <close> = lib.memdisk(size, 11)
local ref = m:read(0, size)
local logf = dir .. "/child.log"
local l = bh.filter("log", m, { file = logf })
local b <close> = bh.filter("blocksize", l, { minblock = 512, maxdata = "4K", maxlen = "16K" })
l:close()

local function put(off, data)
  ref = ref:sub(1, off) .. data .. ref:sub(off + #data + 1)
end
local x = 12345
local function rnd(n) x = (x * 1103515245 + 12345) % 2147483648; return x % n end
for i = 1, 60 do
  local off, len = rnd(size - 20000), 1 + rnd(10000)
  local data = lib.pattern(len, 1000 + i)
  b:write(off, data)
  put(off, data)
end
b:write(1000, "tiny")
put(1000, "tiny")
b:zero(3001, 40000)
put(3001, string.rep("\0", 40000))
b:discard(0, 5000)
t.ok(b:read(0, size) == ref, "blocksize: 60 random unaligned writes, a zero and a trim match a reference buffer")
local ok = true
for i = 1, 50 do
  local off, len = rnd(size - 9000), 1 + rnd(9000)
  ok = ok and b:read(off, len) == ref:sub(off + 1, off + len)
end
t.ok(ok, "blocksize: unaligned reads match the reference buffer")
t.ok(m:read(0, size) == ref, "blocksize: the child holds the reference bytes")

local bad, seen = {}, 0
for line in io.lines(logf) do
  local op, off, cnt = line:match(" (%a+) offset=0x(%x+) count=0x(%x+)")
  if op then
    off, cnt, seen = tonumber(off, 16), tonumber(cnt, 16), seen + 1
    local max = (op == "Read" or op == "Write") and 4096 or 16384
    if off % 512 ~= 0 or cnt % 512 ~= 0 or cnt > max then bad[#bad + 1] = line end
  end
end
t.ok(seen > 100, "blocksize: the log under it saw the child's requests (" .. seen .. ")")
t.is(#bad, 0, "blocksize: every request reaching the child is 512-aligned and within maxdata/maxlen")
if #bad > 0 then t.diag(bad[1]) end

local odd <close> = bh.open(nil, { format = "memory", size = 1000,
                                   filters = { { "blocksize", minblock = 512 } } })
t.is(odd:size(), 512, "blocksize: the size is rounded down to minblock")
t.error_like(function() b:zero(1, 512, { fast = true }) end, "fast zero must be aligned",
             "blocksize: an unaligned fast zero fails with ENOTSUP")
t.error_like(function() bh.filter("blocksize", m, { minblock = 3000 }) end,
             "minblock=3000 must be a power of two", "blocksize: minblock=3000 refused")
t.error_like(function() bh.filter("blocksize", m, { minblock = 4096, maxdata = 512 }) end,
             "must be at least minblock", "blocksize: maxdata below minblock refused")
t.done()
