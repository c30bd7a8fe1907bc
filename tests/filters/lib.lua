-- SPDX-License-Identifier: BSD-3-Clause
-- Shared by the filter tests: TAP (tests/lua/tap.lua), a wall clock, a
-- patterned memory disk and reading a whole file.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/lua/?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"
local lib = { t = t, bh = bh }

-- Seconds since the epoch, with nanoseconds (Lua has no wall clock).
function lib.now()
  local p = io.popen("date +%s.%N")
  local s = p:read("l")
  p:close()
  return tonumber(s)
end

-- Seconds f() took.
function lib.took(f)
  local t0 = lib.now()
  f()
  return lib.now() - t0
end

-- A deterministic pattern of n bytes, different for each seed.
function lib.pattern(n, seed)
  local parts, x = {}, seed or 1
  for i = 1, n // 4 + 1 do
    x = (x * 1103515245 + 12345) % 2147483648
    parts[i] = string.pack("<I4", x)
  end
  return table.concat(parts):sub(1, n)
end

-- A memory node of size bytes holding the pattern for seed.
function lib.memdisk(size, seed)
  local m = bh.open(nil, { format = "memory", size = size })
  m:write(0, lib.pattern(size, seed))
  return m
end

function lib.slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function lib.lines(path)
  local out = {}
  for l in io.lines(path) do out[#out + 1] = l end
  return out
end

return lib
