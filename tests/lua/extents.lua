-- SPDX-License-Identifier: BSD-3-Clause
-- node:extents() over a sparse raw file (the file system must support
-- holes, which SEEK_DATA/SEEK_HOLE report): holes read as zero, written
-- blocks are data, the list covers exactly the range asked for, discard
-- with discard=unmap makes a hole, and qemu-img map agrees.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"
local json = require "dkjson"

local dir = t.tmpdir()
local path = dir .. "/sparse.raw"
local KiB, MiB = 1024, 1024 * 1024

bh.create(path, { format = "raw", size = "1M" })
local img = bh.open(path, { format = "raw", discard = "unmap" })
img:write(64 * KiB, string.rep("x", 4 * KiB))
img:write(512 * KiB, string.rep("y", 8 * KiB))
img:flush()

-- The extent holding offset off.
local function at(list, off)
  for _, e in ipairs(list) do
    if off >= e.offset and off < e.offset + e.length then return e end
  end
end

local function covers(list, start, len)
  local pos = start
  for _, e in ipairs(list) do
    if e.offset ~= pos or e.length <= 0 then return false end
    pos = pos + e.length
  end
  return pos == start + len
end

local all = img:extents()
t.ok(#all >= 5, "whole-file extents: at least hole, data, hole, data, hole (got " .. #all .. ")")
t.ok(covers(all, 0, MiB), "extents cover [0, 1 MiB) contiguously")
for _, e in ipairs(all) do
  if type(e.offset) ~= "number" or type(e.hole) ~= "boolean" or type(e.zero) ~= "boolean" then
    t.ok(false, "extent fields have the right types")
    break
  end
end
local e0 = at(all, 0)
t.ok(e0 and e0.hole and e0.zero, "offset 0 is a hole that reads as zero")
local e1 = at(all, 64 * KiB)
t.ok(e1 and not e1.hole and not e1.zero, "offset 64 KiB (written) is data")
t.ok(e1 and e1.offset <= 64 * KiB and e1.offset + e1.length >= 68 * KiB, "the data extent spans the whole 4 KiB write")
local e2 = at(all, 256 * KiB)
t.ok(e2 and e2.hole, "offset 256 KiB (never written) is a hole")
local e3 = at(all, 516 * KiB)
t.ok(e3 and not e3.hole, "offset 516 KiB (second write) is data")
t.ok(at(all, MiB - 1).hole, "the last byte is in a hole")

local part = img:extents(60 * KiB, 16 * KiB)
t.ok(covers(part, 60 * KiB, 16 * KiB), "extents(60K, 16K) covers exactly that range")
t.ok(part[1].hole and not at(part, 64 * KiB).hole, "extents(60K, 16K): hole, then data at 64K")
t.is(#img:extents(0, 0), 0, "extents(0, 0) is an empty list")
t.is(#img:extents(MiB), 0, "extents at the end offset is an empty list")
t.error_like(function() img:extents(MiB - 1, 2) end, "past the end", "extents past the end refused")
t.error_like(function() img:extents(2 * MiB) end, "past the end", "extents with offset beyond the end refused")

-- Discard with discard=unmap punches the hole back.
img:discard(512 * KiB, 8 * KiB)
local after = img:extents(512 * KiB, 8 * KiB)
t.ok(#after >= 1 and after[1].hole and after[1].zero, "after discard (discard=unmap) 512 KiB is a hole again")
t.is(img:read(512 * KiB, 16), string.rep("\0", 16), "discarded range reads as zeros")
img:close()

-- qemu-img map sees the same data ranges.
local function merged_data(list)
  local out = {}
  for _, e in ipairs(list) do
    local data = not e.hole
    local last = out[#out]
    if last and last.data == data and last.stop == e.offset then
      last.stop = e.offset + e.length
    else
      out[#out + 1] = { data = data, start = e.offset, stop = e.offset + e.length }
    end
  end
  local s = {}
  for _, r in ipairs(out) do
    if r.data then s[#s + 1] = r.start .. "-" .. r.stop end
  end
  return table.concat(s, ",")
end

local out, code = t.sh("qemu-img --version")
if code ~= 0 then
  t.skip("qemu-img is not installed")
else
  local ro <close> = bh.open(path, { format = "raw", readonly = true })
  local ours = merged_data(ro:extents())
  ro:close()
  out, code = t.sh("qemu-img map -f raw --output=json " .. t.shq(path))
  local list, _, err = json.decode(out)
  if not list then t.diag("qemu-img map --output=json: " .. tostring(err) .. ": " .. out) end
  local theirs = {}
  for _, e in ipairs(list or {}) do
    theirs[#theirs + 1] = { offset = e.start, length = e.length, hole = not e.data }
  end
  t.is(ours, merged_data(theirs), "data ranges match qemu-img map")
end

-- The memory driver reports its unwritten areas as zero.
local mem <close> = bh.open(nil, { format = "memory", size = "8M" })
mem:write(4 * MiB, "data")
local m = mem:extents()
t.ok(covers(m, 0, 8 * MiB), "memory extents cover the whole node")
t.ok(at(m, 0).zero, "memory: unwritten start reads as zero")
t.ok(not at(m, 4 * MiB).zero, "memory: written block is not zero")

t.done()
