-- SPDX-License-Identifier: BSD-3-Clause
-- Copy one partition of IMAGE to the file OUT by reading its window node.
--   blkhost run copy.lua IMAGE OUT N
--   blkhost run copy.lua IMAGE OUT key=value...   (label=, uuid=,
--                                                  type_name=, sector_size=)
local bh = require "blkhost"
-- PT_FORMAT=qcow2 (or "probe") reads a disk image of another format.
local format = os.getenv("PT_FORMAT") or "raw"
local img <close> = bh.open(arg[1], { format = format ~= "probe" and format or nil,
                                      readonly = true })
local sel
if arg[3]:match("^%d+$") then
  sel = tonumber(arg[3])
else
  sel = {}
  for i = 3, #arg do
    local k, v = arg[i]:match("^([%w_]+)=(.*)$")
    sel[k] = tonumber(v) or v
  end
end
local part <close> = img:partition(sel)
local out = assert(io.open(arg[2], "wb"))
local size, off, chunk = part:size(), 0, 1024 * 1024
while off < size do
  local n = math.min(chunk, size - off)
  out:write(part:read(off, n))
  off = off + n
end
out:close()
