-- SPDX-License-Identifier: BSD-3-Clause
-- Round trips through the Lua API: a raw image on a file (written, read
-- back, compared with the bytes on disk and with a fresh open), the memory
-- and null drivers, zero/discard/flush/FUA, size, info and tostring.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"

local dir = t.tmpdir()
local path = dir .. "/disk.raw"
local MiB = 1024 * 1024

t.like(bh.version, "^%d+%.%d+%.%d+", "bh.version is a version string")
t.is(package.loaded.blkhost, bh, "require 'blkhost' gives the preloaded module")

t.lives(function() bh.create(path, { format = "raw", size = "4M" }) end,
        "bh.create raw 4M")
local f = io.open(path, "rb")
t.is(f:seek("end"), 4 * MiB, "created file is 4 MiB long")
f:close()

local img = bh.open(path, { format = "raw" })
t.is(img:size(), 4 * MiB, "node:size() is 4 MiB")
t.is(img:format(), "raw", "node:format() is raw")
t.like(tostring(img), "^blkhost%.node%(raw .*disk%.raw, 4 MiB%)$", "tostring names format, file and size")

-- Patterns at the start, across a 4 KiB boundary, and at the very end.
local a = string.rep("A", 512)
local b = string.rep("0123456789abcdef", 512) -- 8 KiB
local c = "the end"
img:write(0, a)
img:write(4096 - 100, b)
img:write(4 * MiB - #c, c, { fua = true })
t.is(img:read(0, 512), a, "read back 512 bytes at offset 0")
t.is(img:read(4096 - 100, #b), b, "read back 8 KiB across a 4 KiB boundary")
t.is(img:read(4 * MiB - #c, #c), c, "read back the last bytes (FUA write)")
t.is(img:read(4 * MiB, 0), "", "zero-length read at the end gives an empty string")
t.is(img:read(2 * MiB, 16), string.rep("\0", 16), "unwritten area reads as zeros")
t.lives(function() img:flush() end, "flush")

img:zero(0, 256)
t.is(img:read(0, 512), string.rep("\0", 256) .. string.rep("A", 256), "zero(0, 256) zeroes exactly 256 bytes")
img:zero(4096, 4096, { may_unmap = true })
t.is(img:read(4096, 4096), string.rep("\0", 4096), "zero with may_unmap reads back as zeros")
t.lives(function() img:discard(1 * MiB, 64 * 1024) end, "discard accepted")
img:close()
t.ok(img:closed(), "node:closed() after close()")
t.like(tostring(img), "closed", "tostring of a closed node says closed")
t.error_like(function() img:read(0, 1) end, "node is closed", "read on a closed node is refused")
t.lives(function() img:close() end, "closing twice is harmless")

-- The bytes really are in the file.
f = io.open(path, "rb")
f:seek("set", 4096 - 100)
local ondisk = f:read(100)
f:seek("set", 4 * MiB - #c)
local tail = f:read(#c)
f:close()
t.is(ondisk, b:sub(1, 100), "file holds the data written before the zeroed range")
t.is(tail, c, "file holds the last bytes")

-- A fresh open (format probed) sees the same data.
local again <close> = bh.open(path)
t.is(again:format(), "raw", "probing a file of text gives raw")
t.is(again:read(8192, 100), b:sub(8192 - 4096 + 100 + 1, 8192 - 4096 + 200), "reopened node reads the same bytes")
local info = again:info()
t.is(info.format, "raw", "info().format")
t.is(info["virtual-size"], 4 * MiB, "info()['virtual-size']")
t.ok(type(info["actual-size"]) == "number", "info()['actual-size'] is a number")
t.is(info["read-only"], false, "info()['read-only'] is false")
again:close()

-- Memory driver: no file, data kept in RAM.
local mem <close> = bh.open(nil, { format = "memory", size = "64M" })
t.is(mem:size(), 64 * MiB, "memory node of 64M")
mem:write(63 * MiB, "hello memory")
t.is(mem:read(63 * MiB, 12), "hello memory", "memory round trip")
t.is(mem:read(0, 8), string.rep("\0", 8), "memory reads zeros where unwritten")
local mem2 <close> = bh.open("", { format = "memory", size = 4096 })
t.is(mem2:size(), 4096, "memory node with path \"\" and a numeric size")

-- Null driver: reads zeros, drops writes.
local null <close> = bh.open(nil, { format = "null", size = "1M" })
null:write(0, "dropped")
t.is(null:read(0, 7), string.rep("\0", 7), "null drops writes and reads zeros")

t.done()
