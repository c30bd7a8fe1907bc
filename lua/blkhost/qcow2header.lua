-- SPDX-License-Identifier: BSD-3-Clause
-- A qcow2 image's backing file name and format, rewritten in its header
-- (the first cluster), for `blkhost rebase`.  The node API has no call
-- that changes them, and the layout is public (QEMU's docs/interop/
-- qcow2.txt): the fixed header, then the header extensions, an end
-- marker, then the backing file name, all inside the first cluster.
--
--   local qh = require "blkhost.qcow2header"
--   local plan = qh.plan(path, "base.qcow2", "qcow2")  -- checks, writes nothing
--   qh.write(plan)                                     -- one write of cluster 0
--
-- plan() raises the refusals (not qcow2, name too long, no room in the
-- first cluster) before the caller changes anything; write() reads the
-- header again under a write lock, so that a header changed in between
-- (by the caller's own writes) is not overwritten with old fields.  The
-- image must not be open as qcow2 when write() runs: the driver keeps its
-- own copy of the header.

local bh = require "blkhost"

local qcow2header = {}

local MAGIC = "QFI\xfb"
local EXT_BACKING_FORMAT = 0xE2792ACA
local MAX_NAME = 1023 -- as QEMU: longer backing names are refused

-- The header fields and extensions of the image behind node (opened raw).
local function parse(node)
  local head = node:read(0, math.min(node:size(), 112))
  if #head < 72 or head:sub(1, 4) ~= MAGIC then
    error("not a qcow2 image", 0)
  end
  local version, _, _, cluster_bits = string.unpack(">I4I8I4I4", head, 5)
  local h = { version = version, cluster_size = 1 << cluster_bits,
              header_length = 72 }
  if version >= 3 then
    h.header_length = string.unpack(">I4", head, 101)
  end
  if cluster_bits < 9 or cluster_bits > 21 or h.header_length < 72 or
     h.header_length > h.cluster_size then
    error("the qcow2 header is damaged", 0)
  end
  h.cluster = node:read(0, math.min(node:size(), h.cluster_size))
  -- Extensions: type, length, data padded to 8 bytes, until type 0.
  h.exts = {}
  local at = h.header_length + 1
  while at + 7 <= #h.cluster do
    local t, len = string.unpack(">I4I4", h.cluster, at)
    if t == 0 then break end
    local padded = (len + 7) // 8 * 8
    if at + 8 + padded - 1 > #h.cluster then
      error("a qcow2 header extension runs past the first cluster", 0)
    end
    h.exts[#h.exts + 1] = { type = t, data = h.cluster:sub(at + 8, at + 7 + len) }
    at = at + 8 + padded
  end
  return h
end

-- The new first cluster for h with backing name (nil: none) and format.
local function build(h, name, format)
  local parts = {}
  local fmt_done = false
  local function ext(t, data)
    parts[#parts + 1] = string.pack(">I4I4", t, #data) .. data ..
      string.rep("\0", (8 - #data % 8) % 8)
  end
  for _, e in ipairs(h.exts) do
    if e.type == EXT_BACKING_FORMAT then
      -- Replaced where it was, or dropped with the backing file.
      if name and format and not fmt_done then ext(EXT_BACKING_FORMAT, format) end
      fmt_done = true
    else
      ext(e.type, e.data)
    end
  end
  if name and format and not fmt_done then
    table.insert(parts, 1, string.pack(">I4I4", EXT_BACKING_FORMAT, #format) .. format ..
                 string.rep("\0", (8 - #format % 8) % 8))
  end
  parts[#parts + 1] = string.rep("\0", 8) -- end of the extensions
  local exts = table.concat(parts)
  local name_off = h.header_length + #exts
  local fixed = h.cluster:sub(1, h.header_length)
  local fields = name and string.pack(">I8I4", name_off, #name) or string.pack(">I8I4", 0, 0)
  fixed = fixed:sub(1, 8) .. fields .. fixed:sub(21)
  local out = fixed .. exts .. (name or "")
  if #out > h.cluster_size then return nil end
  return out .. string.rep("\0", h.cluster_size - #out)
end

local function open_raw(path, writable)
  return bh.open(path, { format = "raw", readonly = not writable })
end

-- Check that path's header can name backing (nil or "": none) with
-- format; raises the refusal.  Returns the plan for write().
function qcow2header.plan(path, backing, format)
  if backing == "" then backing = nil end
  if backing and #backing > MAX_NAME then
    error("Invalid argument (a backing file name is at most " .. MAX_NAME .. " bytes)", 0)
  end
  local node <close> = open_raw(path, false)
  local h = parse(node)
  if not build(h, backing, format) then
    error("No space left in the file header", 0)
  end
  return { path = path, backing = backing, format = format }
end

-- Rewrite the header as planned: one write of the first cluster, flushed.
function qcow2header.write(plan)
  local node <close> = open_raw(plan.path, true)
  local h = parse(node)
  local cluster = build(h, plan.backing, plan.format)
  if not cluster then error("No space left in the file header", 0) end
  node:write(0, cluster)
  node:flush()
end

return qcow2header
