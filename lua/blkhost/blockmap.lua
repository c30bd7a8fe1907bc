-- SPDX-License-Identifier: BSD-3-Clause
-- Walk a node's map (node:map, qemu-img map's view through the backing
-- chain) area by area without holding the whole list of a large image:
-- node:map is asked a window at a time.
--
--   local blockmap = require "blkhost.blockmap"
--   local w = blockmap.walker(node)
--   local e = w:at(offset)   -- the entry covering offset (offset < size)
--   blockmap.each(node, 0, node:size(), 2 << 20, function(off, n, e) ... end)
--
-- Entries are node:map's tables; an entry's end is start + length.
-- blockmap.zeros(n) is n zero bytes, to test what was read.

local blockmap = {}
blockmap.__index = blockmap

local WINDOW = 1 << 30

function blockmap.walker(node, window)
  return setmetatable({ node = node, size = node:size(), window = window or WINDOW,
                        list = {}, i = 1 }, blockmap)
end

-- The entry covering offset; offsets must not go backwards between calls.
function blockmap:at(offset)
  while true do
    local e = self.list[self.i]
    if e and offset >= e.start and offset < e.start + e.length then
      return e
    end
    if e and offset >= e.start + e.length then
      self.i = self.i + 1
    else
      -- Past the list (or before it, after a jump): fetch from offset.
      local len = math.min(self.window, self.size - offset)
      self.list = self.node:map(offset, len)
      self.i = 1
    end
  end
end

-- Call fn(off, n, e) for the pieces of [from, to) of node in order: e is
-- the map entry covering off, n the bytes up to e's end, at most max.  fn
-- returns how many of them it handled (nil: all n); the next piece starts
-- there.  The loop of commands that copy or compare by map area.
function blockmap.each(node, from, to, max, fn)
  local walk = blockmap.walker(node)
  local off = from
  while off < to do
    local e = walk:at(off)
    local n = math.min(e.start + e.length - off, max, to - off)
    off = off + (fn(off, n, e) or n)
  end
end

-- A string of n zero bytes (kept, as callers ask for the same few sizes
-- again and again): compare a read with it to learn if it is all zeros.
local zero_strings = {}
function blockmap.zeros(n)
  local z = zero_strings[n]
  if not z then
    z = string.rep("\0", n)
    zero_strings[n] = z
  end
  return z
end

return blockmap
