-- SPDX-License-Identifier: BSD-3-Clause
-- A raw image opened without a format (probed, raw by fallback) keeps
-- probing as raw: bh.open refuses writes that would turn its first 512
-- bytes into another format's header, as QEMU does for probed raw
-- images; format = "raw" lifts the check.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"

local dir = t.tmpdir()
local path = dir .. "/disk.img"
local secret = dir .. "/secret"
local f = assert(io.open(secret, "wb")); f:write("secret\n"); f:close()

-- A qcow2 v3 header naming a backing file, in one 512-byte sector.
local function qcow2_header()
  local h = string.pack(">c4I4I8I4I4I8", "QFI\xfb", 3, 256, #secret, 16,
                        1024 * 1024)
  h = h .. string.rep("\0", 256 - #h) .. secret
  return h .. string.rep("\0", 512 - #h)
end
local hdr = qcow2_header()

local function file_bytes(off, len)
  local fh = assert(io.open(path, "rb"))
  fh:seek("set", off)
  local s = fh:read(len) or ""
  fh:close()
  return s
end

bh.create(path, { format = "raw", size = "1M" })
do
  local w <close> = bh.open(path, { format = "raw" })
  w:write(512, "sector one")
end
local before = file_bytes(0, 8192)

t.plan(17)
do
  local disk <close> = bh.open(path)
  t.is(disk:info().format, "raw", "an image nobody claims is probed as raw")
  t.error_like(function() disk:write(0, hdr) end,
               "refused: it would make .* probe as qcow2.*format=\"raw\"",
               "probed raw: a qcow2 header with a backing file written at 0 is refused, naming format=\"raw\"")
  t.ok(file_bytes(0, 8192) == before, "the refused header left the file unchanged")

  local big = hdr .. string.rep("x", 65536 - #hdr)
  t.error_like(function() disk:write(0, big) end, "probe as qcow2",
               "probed raw: a 64 KiB write starting with a qcow2 header is refused")
  t.ok(file_bytes(0, 8192) == before, "nothing of the refused 64 KiB write landed")

  t.lives(function() disk:write(0, "hello") end,
          "probed raw: a partial write inside sector 0 that forms no header succeeds")
  t.is(disk:read(0, 5), "hello", "the partial write reads back")

  local plain = string.rep("abcdefgh", 8192)
  t.lives(function() disk:write(0, plain) end,
          "probed raw: a 64 KiB write from 0 that forms no header succeeds")
  t.ok(disk:read(0, #plain) == plain, "the 64 KiB write reads back whole")

  -- A header in two pieces: each alone forms none, together they do.
  t.lives(function() disk:write(4, hdr:sub(5)) end,
          "probed raw: a header without its magic (bytes 4..511) is allowed")
  t.error_like(function() disk:write(0, "QFI\xfb") end, "probe as qcow2",
               "probed raw: the magic that would complete it is refused (old bytes merged with new)")
  t.is(file_bytes(0, 4), plain:sub(1, 4), "the refused magic left bytes 0..3 alone")

  t.lives(function() disk:zero(0, 512) end,
          "probed raw: write-zeroes over sector 0 succeeds (zeros never probe)")
  t.lives(function() disk:write(4096, hdr) end,
          "probed raw: a qcow2 header past the probed 512 bytes is allowed")
end

do
  local win <close> = bh.open(path, { offset = "4K", size = "8K" })
  t.lives(function() win:write(0, hdr) end,
          "probed raw window at offset 4K: a header at its start is allowed (the file's head is what is probed)")
end

do
  local raw <close> = bh.open(path, { format = "raw" })
  t.lives(function() raw:write(0, hdr) end,
          "format=\"raw\": the same qcow2 header is written, as qemu with -f raw does")
end
-- Which is why: without a format, the file is now taken for a qcow2 (this
-- header is too short to open, but a full one would serve the backing).
t.error_like(function() bh.open(path, { readonly = true }) end, "^qcow2:",
             "after the format=\"raw\" write, an open without a format takes the file for qcow2")
t.done()
