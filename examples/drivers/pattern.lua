-- SPDX-License-Identifier: BSD-3-Clause
-- pattern.lua: a read-only pattern disk, each byte a function of its
-- offset (the low byte of offset // 8 XOR offset), so any read can be
-- checked without a reference file.
--
--   BLKHOST_PLUGIN_PATH=examples/drivers blkhost info --format pattern \
--       --size 1M          (or: bh.open(nil, {format="pattern", size="1M"}))
--
-- thread_model = "parallel": every thread loads this file into its own
-- Lua state, so reads run in parallel; nothing is shared but the options.
local function byte_at(off)
  return ((off // 8) ~ off) & 0xff
end

local function parse_size(s)
  local n, unit = tostring(s or "1M"):match("^(%d+)%s*([KMGkmg]?)")
  if not n then error({ errno = "EINVAL", msg = "bad size: " .. tostring(s) }) end
  local mult = ({ [""] = 1, K = 1024, M = 1024 ^ 2, G = 1024 ^ 3 })[unit:upper()]
  return math.tointeger(tonumber(n) * mult)
end

-- A 64 KiB table of patterns by offset mod 2048 would not do: the pattern
-- depends on offset // 8 too, so build the bytes eight at a time.
local function pattern(count, offset)
  local parts = {}
  local chunk = {}
  for i = 0, count - 1 do
    chunk[#chunk + 1] = byte_at(offset + i)
    if #chunk == 4096 then
      parts[#parts + 1] = string.char(table.unpack(chunk))
      chunk = {}
    end
  end
  if #chunk > 0 then parts[#parts + 1] = string.char(table.unpack(chunk)) end
  return table.concat(parts)
end

return {
  name = "pattern",
  description = "read-only pattern disk: byte = (off // 8 ~ off) & 0xff (size=N)",
  version = "1.0",
  thread_model = "parallel",
  open = function(opts)
    return { size = parse_size(opts.size) }
  end,
  get_size = function(h) return h.size end,
  pread = function(h, count, offset) return pattern(count, offset) end,
  extents = function(h, count, offset)
    return { { length = count, hole = false, zero = false } }
  end,
}
