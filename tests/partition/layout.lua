-- SPDX-License-Identifier: BSD-3-Clause
-- Print IMAGE's partitions the way layout.py prints util-linux's view:
-- "NUMBER OFFSET SIZE TYPE BOOT LABEL".
--   blkhost run layout.lua IMAGE [SECTOR_SIZE]
local bh = require "blkhost"
-- PT_FORMAT=qcow2 (or "probe") reads a disk image of another format.
local format = os.getenv("PT_FORMAT") or "raw"
local img <close> = bh.open(arg[1], { format = format ~= "probe" and format or nil,
                                      readonly = true })
local parts = img:partitions({ sector_size = tonumber(arg[2]) })
for _, p in ipairs(parts) do
  print(p.number, p.offset, p.size, p.type, p.bootable and 1 or 0,
        (p.label and p.label ~= "") and p.label or "-")
end
