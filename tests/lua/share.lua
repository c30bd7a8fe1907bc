-- SPDX-License-Identifier: BSD-3-Clause
-- Image locks between opens in one process, by QEMU's rules: a read-only
-- open of a raw image shares writes (qemu-io -r reads a raw image
-- qemu-nbd writes), a read-only open of a qcow2 or of a backing file does
-- not (metadata), and the holder is named "this process".
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"

local dir = t.tmpdir()
local raw = dir .. "/disk.img"
local qcow = dir .. "/disk.qcow2"
local base = dir .. "/base.img"
local top = dir .. "/top.qcow2"
bh.create(raw, { format = "raw", size = "8M" })
bh.create(qcow, { format = "qcow2", size = "8M" })
bh.create(base, { format = "raw", size = "8M" })
bh.create(top, { format = "qcow2", size = "8M", backing_file = base,
                 backing_fmt = "raw" })

t.plan(12)
do
  local w <close> = bh.open(raw, { format = "raw" })
  local r
  t.lives(function() r = bh.open(raw, { format = "raw", readonly = true }) end,
          "raw: a read-only open beside a writer in the same process succeeds (as qemu-io -r)")
  w:write(4096, "fresh")
  t.is(r and r:read(4096, 5), "fresh", "raw: the reader sees the writer's bytes")
  t.lives(function() local p <close> = bh.open(raw, { readonly = true }) end,
          "raw, probed: a read-only open beside a writer succeeds too")
  t.error_like(function() bh.open(raw, { format = "raw" }) end,
               "is locked: this process does not share the \"write\" permission.*open here already",
               "raw: a second writer is refused, naming \"this process\"")
  if r then r:close() end
end
do
  local r <close> = bh.open(raw, { format = "raw", readonly = true })
  t.lives(function() local w <close> = bh.open(raw, { format = "raw" }) end,
          "raw: a writer may join a read-only open, as with QEMU")
end
do
  local w <close> = bh.open(qcow, { format = "qcow2" })
  t.error_like(function() bh.open(qcow, { format = "qcow2", readonly = true }) end,
               "is locked: this process holds the \"write\" permission",
               "qcow2: a read-only open beside a writer is refused (metadata), naming \"this process\"")
  t.error_like(function() bh.open(qcow, { readonly = true }) end,
               "is locked: this process holds the \"write\"",
               "qcow2, probed: the read-only open is refused as well (reopened strictly once probed)")
end
do
  local r <close> = bh.open(qcow, { format = "qcow2", readonly = true })
  t.error_like(function() bh.open(qcow, { format = "qcow2" }) end,
               "is locked: this process does not share the \"write\"",
               "qcow2: a writer cannot join a read-only open")
end
do
  local o <close> = bh.open(top, { readonly = true })
  t.is(o:info().format, "qcow2", "overlay opens, its raw backing read-only")
  t.error_like(function() bh.open(base, { format = "raw" }) end,
               "is locked: this process does not share the \"write\"",
               "a raw backing file keeps writers out (only a user's read-only open shares)")
  t.lives(function() local b <close> = bh.open(base, { format = "raw", readonly = true }) end,
          "a read-only open of the backing file is still allowed")
end
t.lives(function() local w <close> = bh.open(raw, { format = "raw" }) end,
        "once everything is closed, a writer opens alone")
t.done()
