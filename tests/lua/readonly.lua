-- SPDX-License-Identifier: BSD-3-Clause
-- Read-only nodes: every write-like call is refused with EPERM's message
-- and the file is unchanged; reads, extents and info still work.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"

local dir = t.tmpdir()
local path = dir .. "/disk.raw"

bh.create(path, { format = "raw", size = "64K" })
do
  local w <close> = bh.open(path, { format = "raw" })
  w:write(0, "original")
end

local ro <close> = bh.open(path, { format = "raw", readonly = true })
t.ok(ro:readonly(), "node:readonly() is true")
t.is(ro:info()["read-only"], true, "info()['read-only'] is true")
t.is(ro:read(0, 8), "original", "read works on a read-only node")
t.error_like(function() ro:write(0, "changed!") end, "read%-only", "write on a read-only node refused (read-only)")
t.error_like(function() ro:write(0, "changed!", { fua = true }) end, "read%-only", "FUA write on a read-only node refused")
t.error_like(function() ro:zero(0, 4096) end, "read%-only", "zero on a read-only node refused")
t.error_like(function() ro:zero(0, 4096, { may_unmap = true }) end, "read%-only", "zero(may_unmap) on a read-only node refused")
t.error_like(function() ro:discard(0, 4096) end, "read%-only", "discard on a read-only node refused")
t.lives(function() ro:flush() end, "flush on a read-only node is harmless")
t.ok(#ro:extents() >= 1, "extents work on a read-only node")
t.is(ro:read(0, 8), "original", "file unchanged after the refusals")

-- readonly given as a string, the way a command line would.
local ro2 <close> = bh.open(path, { format = "raw", readonly = "on" })
t.error_like(function() ro2:write(0, "x") end, "read%-only", "readonly='on' also refuses writes")

-- The memory driver honours readonly too.
local mem <close> = bh.open(nil, { format = "memory", size = "1M", readonly = true })
t.error_like(function() mem:write(0, "x") end, "read%-only", "write on a read-only memory node refused")

t.done()
