-- SPDX-License-Identifier: BSD-3-Clause
-- Filters stack under snapshots: snapshot calls pass through them to the
-- qcow2 image (a cache writes back first and drops what an apply
-- replaces), savevm reaches the image once through the filters, and a
-- filter on the file (file.driver=) is under qcow2's own writes.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/filters/?.lua;" .. package.path
local lib = require "lib"
local t, bh = lib.t, lib.bh
local dir = t.tmpdir()
local img = dir .. "/d.qcow2"
bh.create(img, { format = "qcow2", size = "4M" })
local lf = dir .. "/top.log"

do
  local d <close> = bh.open(img, { filters = { { "cache" }, { "log", file = lf } } })
  d:write(0, "before")                 -- still in the cache
  t.lives(function() d:snapshot_create("s1") end, "snapshot_create through cache and log")
  local l = d:snapshots()
  t.ok(#l == 1 and l[1].name == "s1", "snapshots() through the filters lists s1")
  d:write(0, "after!")
  local s <close> = d:snapshot_open("s1")
  t.is(s:read(0, 6), "before", "the snapshot holds the write the cache held when it was made")
  d:snapshot_apply("s1")
  t.is(d:read(0, 6), "before", "snapshot_apply through the cache: the cached 'after!' is gone")
  t.lives(function() d:snapshot_delete("s1") end, "snapshot_delete through the filters")
  t.is(#d:snapshots(), 0, "and the snapshot is gone")

  d:write(0, "savevm")                 -- in the cache again
  bh.savevm("vm1")
  local n = 0
  for _, sn in ipairs(d:snapshots()) do if sn.name == "vm1" then n = n + 1 end end
  t.is(n, 1, "bh.savevm reaches the image once, through its filters")
  d:write(0, "later!")
  bh.loadvm("vm1")
  t.is(d:read(0, 6), "savevm", "bh.loadvm through the cache shows the saved bytes")
end
local out = t.sh("qemu-img snapshot -l " .. t.shq(img))
t.like(out, "vm1", "qemu-img snapshot -l sees the snapshot made through the filters")

do
  local fl = dir .. "/file.log"
  local d <close> = bh.open(img, { file = { driver = "log", file = fl } })
  d:snapshot_create("on-file")
  t.ok(#d:snapshots() == 2, "snapshot_create with a filter on the file (file.driver=log)")
  local n = 0
  for l in io.lines(fl) do if l:find("Write") then n = n + 1 end end
  t.ok(n > 0, "qcow2's snapshot writes went through the filter on its file (" .. n .. " writes)")
end

do
  local d <close> = bh.open(img, { readonly = true, filters = { { "cow", readonly = false } } })
  t.error_like(function() d:snapshot_create("no") end, "read%-only",
               "a snapshot through cow is refused: its child is read-only")
  t.is(#d:snapshots(), 2, "snapshots() still lists through cow")
end

do
  -- A fault under the second image: savevm makes a's snapshot, fails on
  -- b's (its file refuses writes) and must take a's back.
  local pa, pb = dir .. "/a.qcow2", dir .. "/b.qcow2"
  bh.create(pa, { format = "qcow2", size = "1M" })
  bh.create(pb, { format = "qcow2", size = "1M" })
  local a <close> = bh.open(pa)
  local b <close> = bh.open(pb, { file = { driver = "error", op = "write", error = "ENOSPC" } })
  t.error_like(function() bh.savevm("half", { nodes = { a, b } }) end, "ENOSPC",
               "savevm with an error filter under the second image fails with its ENOSPC")
  t.is(#a:snapshots(), 0, "and the snapshot it had made on the first image is taken back")
end

do
  local raw = dir .. "/r.img"
  bh.create(raw, { format = "raw", size = "1M" })
  local d <close> = bh.open(raw, { filters = { { "delay" } } })
  t.error_like(function() d:snapshot_create("x") end, "does not support internal snapshots",
               "a filter over raw refuses snapshots as raw does")
end
t.done()
