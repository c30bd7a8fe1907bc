-- SPDX-License-Identifier: BSD-3-Clause
-- The nbd client driver's side of the nbdclient tests.
--   client.lua ops URI FILE [k=v...]     the same writes, zeroes and
--       discards on URI (format nbd) and on FILE (raw), so the export can
--       be compared with FILE afterwards
--   client.lua extents URI [k=v...]      "offset length type" lines, type
--       as nbdinfo --map numbers it (1 hole, 2 zero), runs merged
--   client.lua read URI OFF LEN [k=v...] prints "ok SHA" or "error MSG"
--   client.lua readloop URI FILE STOP [k=v...]  reads URI and compares
--       with FILE until the file STOP exists; prints "reads N bad M"
local bh = require "blkhost"
local cmd, uri = arg[1], arg[2]

local function opts_from(first)
  local o = { format = "nbd" }
  for i = first, #arg do
    local k, v = arg[i]:match("^([^=]+)=(.*)$")
    if k then o[k] = v end
  end
  return o
end

-- A pattern that differs at every offset, so a misplaced byte shows.
local function pattern(seed, len)
  local piece = string.format("%08x-blkhost-nbd-%d|", seed, seed % 97)
  local n = math.ceil(len / #piece)
  return (string.rep(piece, n)):sub(1, len)
end

if cmd == "ops" then
  local o = opts_from(4)
  o.discard = "unmap"
  local remote <close> = bh.open(uri, o)
  local file <close> = bh.open(arg[3], { format = "raw", discard = "unmap" })
  local function both(f) f(remote); f(file) end
  local MiB = 1024 * 1024
  -- Longer than one NBD command (32 MiB): split by the driver.
  both(function(n) n:write(2 * MiB, pattern(1, 40 * MiB)) end)
  both(function(n) n:write(123457, pattern(2, 70001)) end)           -- unaligned
  both(function(n) n:write(50 * MiB, pattern(3, 65536), { fua = true }) end)
  both(function(n) n:zero(3 * MiB, MiB) end)
  both(function(n) n:zero(5 * MiB, 2 * MiB, { may_unmap = true }) end)
  both(function(n) n:write(60 * MiB + 1, pattern(4, 4095)) end)
  both(function(n) n:flush() end)
  -- A discard may leave old bytes: only compare where it also zeroes,
  -- so the file gets a zero write after the remote's discard.
  remote:discard(20 * MiB, MiB)
  local same = remote:read(20 * MiB, MiB)
  file:write(20 * MiB, same)
  remote:flush()
  print("done")
elseif cmd == "extents" then
  local n <close> = bh.open(uri, opts_from(3))
  local cur
  for _, e in ipairs(n:extents()) do
    local ty = (e.hole and 1 or 0) + (e.zero and 2 or 0)
    if cur and cur.ty == ty and cur.off + cur.len == e.offset then
      cur.len = cur.len + e.length
    else
      if cur then print(cur.off, cur.len, cur.ty) end
      cur = { off = e.offset, len = e.length, ty = ty }
    end
  end
  if cur then print(cur.off, cur.len, cur.ty) end
elseif cmd == "read" then
  local o = opts_from(5)
  local ok, n = pcall(bh.open, uri, o)
  if not ok then print("error " .. n); os.exit(1) end
  local ok2, data = pcall(n.read, n, tonumber(arg[3]), tonumber(arg[4]))
  n:close()
  if ok2 then print("ok " .. #data) else print("error " .. data); os.exit(1) end
elseif cmd == "readloop" then
  local n <close> = bh.open(uri, opts_from(5))
  local f = assert(io.open(arg[3], "rb"))
  local size = n:size()
  local reads, bad, i = 0, 0, 0
  local function stop()
    local s = io.open(arg[4], "r")
    if s then s:close() return true end
    return false
  end
  repeat
    local len = 65536
    local off = (i * 1048576 + (i % 7) * 4096) % (size - len)
    i = i + 1
    local ok, data = pcall(n.read, n, off, len)
    f:seek("set", off)
    if not ok or data ~= f:read(len) then
      bad = bad + 1
      io.stderr:write("read at " .. off .. ": " .. tostring(ok and "differs" or data) .. "\n")
    end
    reads = reads + 1
  until stop() and reads >= 10
  print(string.format("reads %d bad %d", reads, bad))
else
  error("usage: client.lua ops|extents|read|readloop URI ...")
end
