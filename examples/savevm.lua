-- SPDX-License-Identifier: BSD-3-Clause
-- savevm.lua: snapshot several qcow2 images together, with a script's own
-- state saved beside them, and go back to that point later.
--
--   blkhost run examples/savevm.lua save NAME IMAGE...
--   blkhost run examples/savevm.lua load NAME IMAGE...
--   blkhost run examples/savevm.lua list IMAGE...
--
-- The state here is a run counter and the time of the last save; a real
-- script would register whatever it must find again after a revert.
local bh = require "blkhost"

local cmd, name = arg[1], arg[2]
local first = cmd == "list" and 2 or 3
if not cmd or #arg < first then
  io.stderr:write("usage: savevm.lua save|load NAME IMAGE... | list IMAGE...\n")
  os.exit(2)
end

local state = { runs = 0, saved_at = 0, note = "" }
bh.vmstate.register{
  name = "examples/savevm", version = 1,
  fields = { {"runs", "u32"}, {"saved_at", "u64"}, {"note", "string"} },
  get = function() return state end,
  set = function(t) state = t end,
}

local images = {}
for i = first, #arg do images[#images + 1] = bh.open(arg[i]) end

if cmd == "save" then
  state.runs, state.saved_at = state.runs + 1, os.time()
  state.note = "saved with " .. #images .. " image(s)"
  print("saved as " .. bh.savevm(name))
elseif cmd == "load" then
  local had, why = bh.loadvm(name)
  if had then
    print(string.format("reverted; state from %s: %s", os.date("%c", state.saved_at), state.note))
  else
    print("reverted; " .. why)
  end
elseif cmd == "list" then
  for _, s in ipairs(bh.snapshots()) do
    print(s.id, s.name, os.date("%Y-%m-%d %H:%M:%S", s.date), s.vm_state_size .. " bytes of state")
  end
end
