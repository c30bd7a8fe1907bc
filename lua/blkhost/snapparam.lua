-- SPDX-License-Identifier: BSD-3-Clause
-- qemu's internal-snapshot parameter, as `qemu-img convert -l` and
-- `qemu-nbd -l` take it: 'snapshot.id=[ID],snapshot.name=[NAME]' (either
-- or both), or a plain ID_OR_NAME.  Returns what node:snapshot_open
-- takes (a table {id=, name=} or the string), or nil and qemu's message.

local snapparam = {}

function snapparam.parse(s)
  if s:sub(1, 9) ~= "snapshot." then return s end
  local t = {}
  for item in s:gmatch("[^,]+") do
    local k, v = item:match("^snapshot%.(%a+)=(.*)$")
    if not k or (k ~= "id" and k ~= "name") or t[k] then
      return nil, "Failed in parsing snapshot param '" .. s .. "'"
    end
    t[k] = v
  end
  return t
end

return snapparam
