-- SPDX-License-Identifier: BSD-3-Clause
-- A window onto a file with raw's offset and size options: I/O lands at
-- the right place in the file, the window's edges are enforced, and bad
-- offset/size values are refused with a message.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"

local dir = t.tmpdir()
local path = dir .. "/disk.raw"
local KiB, MiB = 1024, 1024 * 1024

bh.create(path, { format = "raw", size = "1M" })
do
  local whole <close> = bh.open(path, { format = "raw" })
  whole:write(0, string.rep("W", 64 * KiB))
end

local win = bh.open(path, { format = "raw", offset = 64 * KiB, size = "128K" })
t.is(win:size(), 128 * KiB, "window size is 128 KiB")
t.is(win:read(0, 4), "\0\0\0\0", "window offset 0 is file offset 64 KiB (zeros, not W)")
win:write(0, "start-of-window")
win:write(128 * KiB - 3, "end")
t.error_like(function() win:write(128 * KiB - 2, "end") end, "past the end", "write past the window's end refused")
t.error_like(function() win:read(128 * KiB, 1) end, "past the end", "read past the window's end refused")
local ext = win:extents()
local total = 0
for _, e in ipairs(ext) do total = total + e.length end
t.is(total, 128 * KiB, "window extents add up to the window size")
win:close()

local whole <close> = bh.open(path, { format = "raw", readonly = true })
t.is(whole:read(64 * KiB, 15), "start-of-window", "window write landed at file offset 64 KiB")
t.is(whole:read(192 * KiB - 3, 3), "end", "window's last bytes landed at file offset 192 KiB - 3")
t.is(whole:read(192 * KiB, 4), "\0\0\0\0", "nothing was written past the window")
t.is(whole:read(64 * KiB - 4, 4), "WWWW", "bytes before the window untouched")
whole:close()

-- Offset alone: the window runs to the end of the file.
local tail <close> = bh.open(path, { format = "raw", offset = "768K", readonly = true })
t.is(tail:size(), 256 * KiB, "offset=768K alone gives the last 256 KiB")
tail:close()

-- Bad offset and size values.
t.error_like(function() bh.open(path, { format = "raw", offset = "abc" }) end,
             "offset", "offset='abc' (not a number) refused, naming offset")
t.error_like(function() bh.open(path, { format = "raw", offset = -4096 }) end,
             "offset", "offset=-4096 (negative) refused, naming offset")
t.error_like(function() bh.open(path, { format = "raw", size = "-1" }) end,
             "size", "size=-1 (negative) refused, naming size")
t.error_like(function() bh.open(path, { format = "raw", size = "12Q" }) end,
             "size", "size='12Q' (bad suffix) refused, naming size")
t.error_like(function() bh.open(path, { format = "raw", offset = "2M" }) end,
             "beyond", "offset=2M beyond a 1 MiB file refused")
t.error_like(function() bh.open(path, { format = "raw", offset = "512K", size = "768K" }) end,
             "size", "offset=512K + size=768K beyond the file refused")
t.error_like(function() bh.open(path, { format = "raw", offset = 1.5 }) end,
             "integer", "offset=1.5 (not an integer) refused")

t.done()
