-- SPDX-License-Identifier: BSD-3-Clause
-- cow: writes land in a temporary overlay; the child is never written.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/filters/?.lua;" .. package.path
local lib = require "lib"
local t, bh = lib.t, lib.bh
local dir = t.tmpdir()
local img = dir .. "/base.img"
bh.create(img, { format = "raw", size = "1M" })
do
  local w <close> = bh.open(img)
  w:write(0, lib.pattern(1048576, 7))
end
local before = lib.slurp(img)

for _, overlay in ipairs({ "ram", "file" }) do
  local base = bh.open(img, { readonly = true })
  local c <close> = bh.filter("cow", base, { readonly = false, overlay = overlay,
                                             dir = dir })
  base:close()
  c:write(100, "hello")                       -- inside one block
  c:write(4090, string.rep("x", 10000))       -- across blocks, unaligned
  c:zero(65536, 8192)
  c:flush()
  local want = before:sub(1, 100) .. "hello" .. before:sub(106, 4090)
               .. string.rep("x", 10000) .. before:sub(14091, 65536)
               .. string.rep("\0", 8192) .. before:sub(73729, 131072)
  t.is(c:read(0, 131072), want, "cow (" .. overlay .. "): reads see the "
       .. "writes and zeroes, and the child's bytes around them")
  t.is(c:read(131072, 4096), before:sub(131073, 135168),
       "cow (" .. overlay .. "): unwritten blocks read from the child")
  t.ok(c:info()["cow-bytes"] >= 8192, "cow (" .. overlay .. "): info counts "
       .. "the overlay's bytes")
  c:close()
  t.ok(lib.slurp(img) == before, "cow (" .. overlay .. "): the child image "
       .. "is byte-identical after writes, zeroes and flush")
end
local left = t.sh("ls " .. t.shq(dir))
t.is(left, "base.img\n", "cow overlay=file leaves no file behind in dir=")

do
  local c <close> = bh.open(img, { readonly = true,
                                   filters = { { "cow", readonly = false } } })
  t.is(c:readonly(), false, "cow over a read-only image opens writable")
  c:write(0, "abc")
  t.is(c:read(0, 3), "abc", "cow over a read-only image takes writes")
end
t.ok(lib.slurp(img) == before, "the read-only image under cow is unchanged")

do
  local base <close> = bh.open(img, { readonly = true })
  t.error_like(function() bh.filter("log", base, { readonly = false,
                                                   file = dir .. "/l" }):write(0, "x") end,
               "read%-only", "a writable pass-through filter over a read-only "
               .. "node still cannot write it")
  t.error_like(function() bh.filter("cow", base, { overlay = "disk" }) end,
               "cow: overlay=disk: expected ram or file", "cow overlay=disk refused")
  t.error_like(function() bh.filter("cow", base, { block = "1000" }) end,
               "block=1000 must be a power of two", "cow block=1000 refused")
end
t.ok(lib.slurp(img) == before, "the image is unchanged after the refusals")

do
  local q = dir .. "/q.qcow2"
  bh.create(q, { format = "qcow2", size = "1M" })
  local qbefore = lib.slurp(q)
  do
    local c <close> = bh.open(q, { readonly = true, filters = { { "cow", readonly = false } } })
    c:write(70000, "over qcow2")
    t.is(c:read(70000, 10), "over qcow2", "cow over a qcow2 image: reads see the write")
  end
  t.ok(lib.slurp(q) == qbefore, "cow over a qcow2 image: the qcow2 file is byte-identical")
  local c <close> = bh.open(q, { file = { driver = "cow" } })
  t.error_like(function() c:write(0, "grow"); c:flush() end, "cow cannot grow",
               "cow under qcow2 (file.driver=cow): a write that grows the file is refused, saying why")
end
t.done()
