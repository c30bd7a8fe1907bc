-- SPDX-License-Identifier: BSD-3-Clause
-- error: injected errors reach the caller with the errno asked for.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/filters/?.lua;" .. package.path
local lib = require "lib"
local t, bh = lib.t, lib.bh
local m <close> = lib.memdisk(1048576, 6)

local e <close> = bh.filter("error", m, { op = "read", rate = 1 })
t.error_like(function() e:read(0, 512) end, "injected EIO on read at offset 0",
             "error: op=read rate=1 fails every read with EIO")
t.lives(function() e:write(0, "ok") end, "error: op=read lets writes through")

local w <close> = bh.filter("error", m, { ["error-pwrite"] = "ENOSPC" })
t.error_like(function() w:write(4096, "x") end, "injected ENOSPC on write",
             "error: error-pwrite=ENOSPC (nbdkit's name) fails writes with ENOSPC")
t.lives(function() w:read(0, 512) end, "error: naming only error-pwrite leaves reads alone")
t.lives(function() w:flush() end, "error: ... and flushes")

local a <close> = bh.filter("error", m, { after = 2, op = "write,flush", error = "EPERM" })
t.lives(function() a:write(0, "1"); a:write(0, "2") end, "error: after=2 lets the first two requests through")
t.error_like(function() a:write(0, "3") end, "injected EPERM on write",
             "error: after=2 fails the third with error=EPERM")
t.error_like(function() a:flush() end, "injected EPERM on flush", "error: ... and every one after it")

local r <close> = bh.filter("error", m, { start = "64K", ["end"] = "128K" })
t.lives(function() r:read(0, 65536); r:read(131072, 4096) end,
        "error: start=64K end=128K lets requests outside the range through")
t.error_like(function() r:read(65536 - 512, 1024) end, "injected EIO",
             "error: a request overlapping the range fails")
t.lives(function() r:flush() end, "error: a ranged error never fails a flush")

local z <close> = bh.filter("error", m, { rate = 0 })
t.lives(function() for i = 1, 20 do z:read(0, 512) end end, "error: rate=0 never fails")
local half <close> = bh.filter("error", m, { rate = "50%", op = "read" })
local fails = 0
for _ = 1, 200 do if not pcall(half.read, half, 0, 512) then fails = fails + 1 end end
t.ok(fails > 0 and fails < 200, "error: rate=50% fails some reads and not all (" .. fails .. "/200)")

for _, c in ipairs({
  { { error = "EWHAT" }, "error: error=EWHAT: unknown errno name" },
  { { rate = "2" }, "rate=2 is not a probability" },
  { { op = "read,scribble" }, "unknown op 'scribble'" },
  { { start = "2M", ["end"] = "1M" }, "start=2097152 must be below end=1048576" },
  { { after = "-1" }, "after" },
}) do
  local k, v = next(c[1])
  t.error_like(function() bh.filter("error", m, c[1]) end, c[2]:gsub("[%-%%]", "%%%0"),
               "error: " .. k .. "=" .. v .. " refused with a clear message")
end
t.done()
