-- SPDX-License-Identifier: BSD-3-Clause
-- Helper for vmstate-tool.sh: takes a blkhost savevm snapshot of IMAGE
-- named NAME holding two script states, one with a subsection, so that
-- `blkhost vmstate` and QEMU's analyze-migration.py have a blkhost stream
-- to read.  Usage: blkhost run savevm-lua.lua IMAGE NAME
local bh = require "blkhost"
local img <close> = bh.open(arg[1])
local counter = { n = 7, label = "seven" }
bh.vmstate.register {
  name = "lua:counter", version = 2,
  fields = { { "n", "u32" }, { "label", "string" } },
  subsections = { { name = "lua:counter/extra", version = 1,
                    fields = { { "xs", "array", of = "i16" } } } },
  get = function() return { n = counter.n, label = counter.label, xs = { 1, -2, 3 } } end,
  set = function() end,
}
bh.vmstate.register {
  name = "lua:flags", instance = 3, version = 1,
  fields = { { "on", "bool" }, { "key", "buffer", size = 16 } },
  get = function() return { on = true, key = string.rep("k", 16) } end,
  set = function() end,
}
bh.savevm(arg[2])
print("saved " .. arg[2])
