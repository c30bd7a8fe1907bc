-- SPDX-License-Identifier: BSD-3-Clause
-- bh.savevm(name, {nodes=, date=, vm_clock_ns=}): only the given images,
-- dated by the caller's clock; bad node lists refused with nothing made.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/lua/?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"
local dir = t.tmpdir()
local function img(n)
  local p = dir .. "/" .. n .. ".qcow2"
  bh.create(p, { format = "qcow2", size = "8M" })
  return bh.open(p)
end
local a <close> = img("a")
local b <close> = img("b")
local raw_path = dir .. "/r.img"
bh.create(raw_path, { format = "raw", size = "1M" })

t.is(bh.savevm("only-a", { nodes = { a }, date = 1700000000, vm_clock_ns = 5e9 }),
     "only-a", "savevm with nodes={a} returns the name")
t.is(#a:snapshots(), 1, "a has the snapshot")
t.is(#b:snapshots(), 0, "b, open and writable but not listed, has none")
t.is(a:snapshots()[1].date, 1700000000, "the given date is stored")
t.is(a:snapshots()[1].vm_clock_ns, 5000000000, "the given vm clock is stored")

bh.savevm("both", { nodes = { a, b } })
t.ok(#a:snapshots() == 2 and #b:snapshots() == 1, "nodes={a, b} snapshots both")

local ro <close> = bh.open(dir .. "/b.qcow2", { readonly = true, locking = false })
t.error_like(function() bh.savevm("x", { nodes = { a, ro } }) end,
             "b.qcow2.*is read%-only", "a read-only node in nodes is refused, named")
t.error_like(function() bh.savevm("x", { nodes = {} }) end,
             "no images given", "an empty nodes list is refused")
do
  local r <close> = bh.open(raw_path)
  t.error_like(function() bh.savevm("x", { nodes = { a, r } }) end,
               "r.img.*does not support snapshots", "a raw node in nodes is refused, named")
end
t.is(#a:snapshots(), 2, "after the refusals a still has exactly its 2 snapshots")
t.error_like(function() bh.savevm("x", { nodes = { "not a node" } }) end,
             "node", "a non-node in nodes is a Lua error")
t.done()
