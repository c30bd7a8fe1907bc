-- SPDX-License-Identifier: BSD-3-Clause
-- Drives real rotations for tests/policy/rotate.sh: NIGHTS rotations of
-- the images, one simulated day apart, optionally writing the night's
-- number into each image first (so every snapshot holds different data),
-- and optionally dying by SIGKILL at a chosen point.
--
--   blkhost run run-rotation.lua [--nights N] [--start UNIX] [--step SECS]
--       [--keep daily=7,weekly=4] [--prefix P] [--write]
--       [--kill after_create|after_delete] [--wait FIFO] [--state K=V]
--       [--dry-run] [--quiet] IMAGE...
--
-- --wait FIFO: once the locks are held, print "locked" and block until
-- FIFO can be read (another process then tries its own rotation).
local bh = require "blkhost"
local cli = require "blkhost.cli"
local policy = require "blkhost.policy"

local o, images = cli.parse(arg, {
  { nil, "nights", arg = "N" }, { nil, "start", arg = "UNIX" },
  { nil, "step", arg = "SECS" }, { nil, "keep", arg = "RULES" },
  { nil, "prefix", arg = "P" }, { nil, "write" }, { nil, "kill", arg = "WHEN" },
  { nil, "wait", arg = "FIFO" }, { nil, "state", arg = "K=V", multi = true },
  { nil, "dry-run" }, { nil, "quiet" }, { nil, "timezone", arg = "TZ" },
})
local nights = tonumber(o.nights or 1)
local start = math.tointeger(tonumber(o.start or 1735698600))  -- 2025-01-01 02:30 UTC
local step = math.tointeger(tonumber(o.step or 86400))
local keep = {}
for k, v in (o.keep or "daily=7,weekly=4,monthly=3"):gmatch("(%w+)=(%d+)") do
  keep[k] = tonumber(v)
end

local function kill_self()
  io.stdout:flush()
  os.execute("kill -KILL " .. bh.process.pid())
end

local lines
for i = 0, nights - 1 do
  local now = start + i * step
  if o.write then
    -- The night's number at offset 0 and in a cluster that moves, so
    -- snapshots share some clusters and not others.
    for _, path in ipairs(images) do
      local img <close> = bh.open(path)
      local stamp = string.pack(">i8", now)
      img:write(0, stamp)
      img:write(65536 * (1 + i % 15), stamp)
    end
  end
  local spec = {
    prefix = o.prefix or "nightly-", keep = keep, now = now,
    timezone = o.timezone, dry_run = o["dry-run"] or nil, print = false,
    hooks = {},
  }
  if o.state then
    spec.state = { night = i }
    for _, kv in ipairs(o.state) do
      local k, v = kv:match("^([^=]+)=(.*)$")
      spec.state[k] = v
    end
  end
  if o.kill == "after_create" then
    spec.hooks.after_create = kill_self
  elseif o.kill == "after_delete" then
    spec.hooks.after_delete = kill_self
  end
  if o.wait then
    spec.hooks.locked = function()
      print("locked")
      io.stdout:flush()
      local f = assert(io.open(o.wait, "r"))
      f:read("a")
      f:close()
    end
  end
  lines = policy.rotate(images, spec)
end
if not o.quiet then
  for _, l in ipairs(lines) do print(l) end
end
