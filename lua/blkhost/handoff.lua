-- SPDX-License-Identifier: BSD-3-Clause
-- The outside tools (blkhost snapshot, examples/nightly-rotate.lua) meet
-- an image whose write lock another process holds: when that process is
-- a blkhost server with a control socket, hand the operation to it; when
-- it is QEMU, say how to do it through QEMU.
--
--   local handoff = require "blkhost.handoff"
--   local sock = handoff.server_for(image, lock_error [, control_path])
--                 -- a socket path, or raises the reason it cannot
--   local result = handoff.call(sock, "snapshot-create", {export=, name=})
--   local export = handoff.export_of(sock, image)   -- its export name
--
-- Who holds the lock comes from the lock error itself ("... is locked:
-- qemu-io (pid 1234) holds ...", or a rotation's "is in use by qemu-io
-- (pid 1234)"); its control socket from blkhost.registry.

local bh = require "blkhost"
local registry = require "blkhost.registry"
local json = require "blkhost.json"
local dkjson = require "dkjson"

local handoff = {}

local function fail(msg) error(msg, 0) end

-- The lock holder named in msg: command name and pid, or nil.
function handoff.holder(msg)
  msg = tostring(msg)
  local comm, pid = msg:match("is locked: (.-) %(pid (%d+)%)")
  if not comm then comm, pid = msg:match("in use by (.-) %(pid (%d+)%)") end
  return comm, pid and tonumber(pid)
end

-- Whether an error is an image lock conflict at all.
function handoff.is_lock_error(msg)
  msg = tostring(msg)
  return msg:find("is locked:", 1, true) ~= nil or msg:find("is in use by", 1, true) ~= nil
end

local function is_qemu(comm)
  return comm and comm:match("^qemu") ~= nil
end

-- The control socket to hand image's operation to, given the lock error
-- that stopped us; raises with the reason when there is none.
function handoff.server_for(image, lock_error, control_path)
  if control_path then return (control_path:gsub("^unix:", "")) end
  local comm, pid = handoff.holder(lock_error)
  if is_qemu(comm) then
    -- The lock error stays as it was, the hint goes on a line of its own.
    fail(("%s\n%s (pid %d) is QEMU: take snapshots through QEMU itself "
          .. "(savevm/delvm in the monitor, or QMP snapshot-save, "
          .. "blockdev-snapshot-internal-sync)"):format(tostring(lock_error), comm, pid))
  end
  local e = (pid and registry.find { pid = pid }) or registry.find { image = image }
  if e then return e.socket end
  fail(("%s\n(%s holds it and has no registered control socket in %s; give "
        .. "its socket with --control PATH)"):format(tostring(lock_error),
       comm and (comm .. " (pid " .. pid .. ")") or "another process",
       table.concat(registry.dirs(), " or ")))
end

-- Send one command; its "return" value, or raises "CLASS: desc".
function handoff.call(socket, command, args)
  local conn = bh.control.connect(socket, 600)
  local req = json.object({ execute = command, arguments = args }, { "execute", "arguments" })
  local ok, line = pcall(conn.call, conn, json.encode(req))
  conn:close()
  if not ok then fail(tostring(line)) end
  local ans = dkjson.decode(line)
  if type(ans) ~= "table" then fail("the server at " .. socket .. " answered: " .. line) end
  if ans.error then
    fail(("%s (from the server at %s)"):format(tostring(ans.error.desc), socket))
  end
  return ans["return"]
end

-- The name of the export that serves image on the server at socket.
function handoff.export_of(socket, image)
  local function real(p)
    local ok, r = pcall(bh.process.realpath, p)
    return ok and r or p
  end
  local want = real(image)
  for _, e in ipairs(handoff.call(socket, "query-exports", {})) do
    if e.image and real(e.image) == want then return e.name end
  end
  fail(("the server at %s does not export %s"):format(socket, image))
end

return handoff
