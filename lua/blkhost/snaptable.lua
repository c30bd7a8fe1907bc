-- SPDX-License-Identifier: BSD-3-Clause
-- qemu-img's table of internal snapshots (ID, TAG, VM SIZE, DATE, VM
-- CLOCK, ICOUNT), as `blkhost snapshot -l` and `blkhost info` print it.
--
--   local snaptable = require "blkhost.snaptable"
--   local lines = snaptable.lines(img:snapshots())  -- {} when there are none

local bh = require "blkhost"

local snaptable = {}

local ROW = "%-9s %-17s %7s%20s%13s%11s"

local function vm_clock(ns)
  local ms = ns // 1000000
  local secs = ms // 1000
  return string.format("%02d:%02d:%02d.%03d", secs // 3600, (secs // 60) % 60,
                       secs % 60, ms % 1000)
end

-- The heading and one row per snapshot (node:snapshots()'s entries), no
-- "Snapshot list:" title and no newlines.
function snaptable.lines(sns)
  if #sns == 0 then return {} end
  local out = { string.format(ROW, "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT") }
  for _, s in ipairs(sns) do
    out[#out + 1] = string.format(ROW, s.id, s.name,
      bh.human_size(s.vm_state_size), os.date("%Y-%m-%d %H:%M:%S", s.date),
      vm_clock(s.vm_clock_ns or 0), s.icount and tostring(s.icount) or "")
  end
  return out
end

return snaptable
