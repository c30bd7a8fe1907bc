-- SPDX-License-Identifier: BSD-3-Clause
-- Nodes close on every path: close(), a <close> variable whose scope ends
-- normally or by an error, and garbage collection.  The proof is the image
-- lock: a second writable open of the same file fails while the first is
-- open and succeeds once it has closed.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"

local dir = t.tmpdir()
local path = dir .. "/disk.raw"
bh.create(path, { format = "raw", size = "1M" })

local function can_open_rw()
  local ok, err = pcall(function()
    local n <close> = bh.open(path, { format = "raw" })
  end)
  return ok, err
end

-- Control: the lock really does refuse a second writer.
local first = bh.open(path, { format = "raw" })
local ok, err = can_open_rw()
t.ok(not ok, "a second writable open fails while the first is open")
t.like(tostring(err), "lock", "the refusal talks about the lock")
first:close()
t.ok(can_open_rw(), "after close() the image opens writable again")

-- An error inside a <close> scope still closes the node.
local errmsg
ok, errmsg = pcall(function()
  local n <close> = bh.open(path, { format = "raw" })
  n:write(0, "written before the error")
  error("boom inside the close scope")
end)
t.ok(not ok and errmsg:find("boom inside the close scope"), "the error propagates out of the <close> scope")
t.ok(can_open_rw(), "after an error in a <close> scope the node is closed (image opens writable)")
local ro <close> = bh.open(path, { format = "raw", readonly = true })
t.is(ro:read(0, 24), "written before the error", "the write made before the error is in the file")
ro:close()

-- A blkhost error (not a script error) inside a <close> scope.
ok, errmsg = pcall(function()
  local n <close> = bh.open(path, { format = "raw" })
  n:write(2 * 1024 * 1024, "past the end")
end)
t.like(errmsg, "write past the end", "a write past the end inside <close> raises the core's message")
t.ok(can_open_rw(), "... and the node was closed")

-- Leaving the scope normally.
do
  local n <close> = bh.open(path, { format = "raw" })
end
t.ok(can_open_rw(), "leaving a <close> scope normally closes the node")

-- Garbage collection closes an unreferenced node.
do
  local n = bh.open(path, { format = "raw" })
  n = nil
end
collectgarbage()
collectgarbage()
t.ok(can_open_rw(), "__gc closes a node nobody references")

-- locking=false lets a second writer in (both opt out of the lock).
local a <close> = bh.open(path, { format = "raw", locking = false })
local b_ok, b_err = pcall(bh.open, path, { format = "raw", locking = false })
t.ok(b_ok, "with locking=false a second writable open is allowed")
if not b_ok then t.diag(b_err) end
if b_ok then b_err:close() end
a:close()

-- Nested option tables become dotted keys: {file={bogus=1}} reaches the
-- file driver as "bogus", which refuses it by name.
t.error_like(function() bh.open(path, { format = "raw", file = { bogus = 1 } }) end,
             "'bogus'.*file", "nested table file={bogus=1} reaches the file driver as 'bogus'")
t.ok(can_open_rw(), "no lock is left behind by the refused open")

t.done()
