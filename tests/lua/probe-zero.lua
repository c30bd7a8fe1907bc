-- SPDX-License-Identifier: BSD-3-Clause
-- The probe guard's zero checks, with the zprobe test format (signature
-- "Z\0", path in arg[1]): on a probed raw image starting "ZZ",
-- write-zeroes or a discard of byte 1 would make it probe as zprobe and
-- are refused; zeroing all of sector 0 is fine.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"

t.plan(8)
t.lives(function() bh.plugin.load(arg[1]) end, "the zprobe test format loads")
local dir = t.tmpdir()
local path = dir .. "/disk.img"
bh.create(path, { format = "raw", size = "1M" })
do
  local w <close> = bh.open(path, { format = "raw" })
  w:write(0, "ZZ")
end

local disk <close> = bh.open(path, { discard = "unmap" })
t.is(disk:info().format, "raw", "\"ZZ\" is nobody's signature: probed as raw")
t.error_like(function() disk:zero(1, 1) end, "probe as zprobe",
             "probed raw: write-zeroes of byte 1 (old 'Z' + new zero = a signature) refused")
t.error_like(function() disk:discard(1, 1) end, "probe as zprobe",
             "probed raw: a discard of byte 1 (which may leave a zero) refused too")
t.error_like(function() disk:write(1, "\0") end, "probe as zprobe",
             "probed raw: the same zero as a write refused")
t.is(disk:read(0, 2), "ZZ", "the refusals left the bytes alone")
t.lives(function() disk:zero(0, 512) end,
        "probed raw: write-zeroes of the whole sector 0 succeeds (zeros alone never probe)")
t.is(disk:read(0, 2), "\0\0", "and zeroed it")
t.done()
