-- SPDX-License-Identifier: BSD-3-Clause
-- The server side of the consistency-under-load check (load.sh): serves
-- IMAGE over NBD and, every second, rotates it (policy.rotate: a snapshot
-- named load-<time>, then the policy deletes all but the 12 newest),
-- logging for each snapshot the wall-clock instants just before the
-- rotation began and just after the snapshot existed.
--   blkhost run load-server.lua IMAGE NBD_SOCKET CONTROL_SOCKET LOG
local bh = require "blkhost"
local policy = require "blkhost.policy"
local image, nbd_sock, ctl_sock, log_path = arg[1], arg[2], arg[3], arg[4]

local disk <close> = bh.open(image)
local server <close> = bh.nbd.server { listen = "unix:" .. nbd_sock, persistent = true }
server:export(disk, { name = "" })
local ctl <close> = bh.control.listen("unix:" .. ctl_sock, { register = false })
local log = assert(io.open(log_path, "w"))
local failures = 0

bh.timer.every(1, function()
  local began = bh.timer.now()
  local made, name
  local ok, err = pcall(policy.rotate, { disk }, {
    prefix = "load-", keep = { last = 12 }, print = false,
    hooks = { after_create = function(n) made, name = bh.timer.now(), n end },
  })
  if not ok then
    failures = failures + 1
    io.stderr:write("rotation failed: ", tostring(err), "\n")
  elseif made then
    log:write(("%s %.6f %.6f\n"):format(name, began, made))
    log:flush()
  end
end)
bh.control.command("failures", function() return { failures = failures } end)
print("ready")
io.stdout:flush()
bh.loop()
log:close()
