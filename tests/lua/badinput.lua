-- SPDX-License-Identifier: BSD-3-Clause
-- Bad input from scripts gets a clear Lua error and changes nothing:
-- missing files, directories, unreadable files, bad offsets and lengths,
-- I/O past the end, unknown option keys and formats, bad option values.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"

local dir = t.tmpdir()
local path = dir .. "/disk.raw"
local KiB = 1024

bh.create(path, { format = "raw", size = "64K" })

-- Files that cannot be opened.
t.error_like(function() bh.open(dir .. "/missing.raw") end, "missing%.raw.*No such file",
             "missing file refused, naming it and ENOENT")
t.error_like(function() bh.open(dir) end, "directory", "a directory refused as a directory")
t.error_like(function() bh.create(dir .. "/no/such/dir/x.raw", { size = "1M" }) end, "x%.raw",
             "create in a missing directory refused, naming the file")
local noperm = dir .. "/noperm.raw"
bh.create(noperm, { format = "raw", size = "64K" })
os.execute("chmod 000 " .. t.shq(noperm))
local f = io.open(noperm, "rb")
if f then
  f:close()
  t.skip("a file with no read permission is readable here (running as root)")
else
  t.error_like(function() bh.open(noperm) end, "Permission denied",
               "file with no read permission refused with EACCES")
end

local img <close> = bh.open(path, { format = "raw" })
img:write(0, "keep")

-- Offsets and lengths from Lua.
t.error_like(function() img:read(-1, 1) end, "offset must be a non%-negative integer",
             "read offset -1 (negative) refused")
t.error_like(function() img:read(0, -5) end, "length must be a non%-negative integer",
             "read length -5 (negative) refused")
t.error_like(function() img:read("abc", 1) end, "offset must be a non%-negative integer",
             "read offset 'abc' (not a number) refused")
t.error_like(function() img:read(1.5, 1) end, "offset must be an integer",
             "read offset 1.5 (not an integer) refused")
t.error_like(function() img:read(nil, 1) end, "offset must be a non%-negative integer",
             "read offset nil refused")
t.error_like(function() img:read({}, 1) end, "offset must be a non%-negative integer",
             "read offset {} (a table) refused")
t.error_like(function() img:write(-4096, "x") end, "offset must be a non%-negative integer",
             "write offset -4096 refused")
t.error_like(function() img:write(0, nil) end, "string expected",
             "write with no data refused")
t.error_like(function() img:zero(0, -1) end, "length must be a non%-negative integer",
             "zero length -1 refused")
t.error_like(function() img:discard(-1, 1) end, "offset must be a non%-negative integer",
             "discard offset -1 refused")
t.error_like(function() img:extents(-1) end, "offset must be a non%-negative integer",
             "extents offset -1 refused")
t.error_like(function() img.read(42, 0, 1) end, "blkhost%.node expected",
             "a method called on a non-node refused")

-- I/O past the end.
t.error_like(function() img:read(64 * KiB - 1, 2) end, "read past the end",
             "read of 2 bytes at 64K-1 (past the end) refused")
t.error_like(function() img:read(64 * KiB + 1, 0) end, "past the end",
             "zero-length read beyond the end refused")
t.error_like(function() img:read(0, 1 << 40) end, "read past the end",
             "read of 1 TiB from a 64 KiB node refused without allocating")
t.error_like(function() img:read(math.maxinteger, 1) end, "past the end",
             "read at the largest offset refused")
t.error_like(function() img:write(64 * KiB - 1, "ab") end, "write past the end",
             "write of 2 bytes at 64K-1 (past the end) refused")
t.error_like(function() img:zero(60 * KiB, 8 * KiB) end, "past the end",
             "zero past the end refused")
t.error_like(function() img:discard(60 * KiB, 8 * KiB) end, "past the end",
             "discard past the end refused")
t.is(img:size(), 64 * KiB, "node did not grow after the refused writes")
t.is(img:read(0, 4), "keep", "data unchanged after the refusals")
img:close()
local fh = io.open(path, "rb")
t.is(fh:seek("end"), 64 * KiB, "file did not grow after the refused writes")
fh:close()

-- Options.
t.error_like(function() bh.open(path, { format = "raw", bogus_key = 1 }) end, "bogus",
             "unknown option key 'bogus_key' refused, naming it")
t.error_like(function() bh.open(path, { format = "nosuchformat" }) end, "nosuchformat.*raw",
             "unknown format refused, naming it and listing the available ones")
t.error_like(function() bh.open(path, { cache = "sometimes" }) end, "sometimes",
             "cache='sometimes' refused, naming the value")
t.error_like(function() bh.open(path, { readonly = "perhaps" }) end, "perhaps",
             "readonly='perhaps' refused, naming the value")
t.error_like(function() bh.open(path, { discard = "always" }) end, "always",
             "discard='always' refused, naming the value")
t.error_like(function() bh.open(path, { detect_zeroes = "unmap" }) end, "unmap",
             "detect_zeroes=unmap without discard=unmap refused")
t.error_like(function() bh.open(path, { format = "raw", offset = 0.5 }) end, "integer",
             "option value 0.5 (not an integer) refused")
t.error_like(function() bh.open(path, { format = print }) end, "function",
             "option value that is a function refused")
t.error_like(function() bh.open(path, { [1] = "raw" }) end, "option names must be strings",
             "option table with a numeric key refused")
t.error_like(function() bh.open(path, "raw") end, "table expected",
             "options given as a string instead of a table refused")
t.error_like(function() bh.open(nil, { format = "memory" }) end, "size",
             "memory driver without a size refused, naming size")
t.error_like(function() bh.open(nil, { format = "memory", size = "lots" }) end, "lots",
             "memory size='lots' refused, naming the value")
t.error_like(function() bh.open(nil, { format = "raw" }) end, ".",
             "raw with no filename refused")

-- Everything above left the image alone and unlocked.
local check <close> = bh.open(path, { format = "raw" })
t.is(check:read(0, 4), "keep", "image still opens writable and holds its data")

t.done()
