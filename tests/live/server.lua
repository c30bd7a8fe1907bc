-- SPDX-License-Identifier: BSD-3-Clause
-- The server the live tests talk to: serves IMAGE over NBD as "vm1"
-- with a control socket, plus test commands and timers.
--   blkhost run server.lua IMAGE NBD_SOCKET CONTROL_SOCKET
local bh = require "blkhost"
local image, nbd_sock, ctl_sock = arg[1], arg[2], arg[3]

local disk <close> = bh.open(image)
local server <close> = bh.nbd.server { listen = "unix:" .. nbd_sock, persistent = true }
server:export(disk, { name = "vm1", description = "the test disk" })
local ctl <close> = bh.control.listen("unix:" .. ctl_sock)

-- A timer whose callback fails once, and one that keeps counting: the
-- second shows the loop went on after the first failed.
bh.timer.after(0.05, function() error("timer boom (on purpose)") end)
local ticks = 0
bh.timer.every(0.05, function() ticks = ticks + 1 end)
bh.control.command("ticks", function() return { ticks = ticks } end)

-- A command that takes a while, for a client that leaves before its answer.
bh.control.command("slow", function()
  local t = os.clock() + 1
  while os.clock() < t do end
  return { slept = true }
end)
bh.control.command("fail", function() error("a script command failed", 0) end)
bh.control.command("echo", function(a) return a end)
bh.control.command("apply", function(a)
  disk:snapshot_apply(a.name, { force = a.force })
  return {}
end, { args = { name = "string", force = "boolean?" } })
bh.control.command("loadvm", function(a)
  bh.loadvm(a.name, { force = a.force })
  return {}
end, { args = { name = "string", force = "boolean?" } })

local f = assert(io.open(ctl_sock .. ".pid", "w"))
f:write(bh.process.pid(), "\n")
f:close()
bh.loop()
