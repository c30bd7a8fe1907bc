-- SPDX-License-Identifier: BSD-3-Clause
-- nightly-rotate.lua: take tonight's snapshot of a VM's disks and delete
-- the ones the retention policy no longer keeps (docs/rotation.md).
--
--   blkhost run examples/nightly-rotate.lua --keep-daily 7 --keep-weekly 4 \
--       --keep-monthly 12 --prefix nightly- disk1.qcow2 disk2.qcow2
--   blkhost run examples/nightly-rotate.lua --dry-run ...      # plan only
--   blkhost run examples/nightly-rotate.lua --check --warn 26h --crit 50h \
--       --prefix nightly- disk1.qcow2                          # monitoring
--
-- All disks get the same snapshot name at the same moment, so the VM is
-- rotated as a group.  Each snapshot is kept or deleted with the rules
-- that decided it printed beside it.  Exit status: 0 done, 1 refused or
-- failed (nothing changed unless the message says otherwise); with
-- --check, Nagios' 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
--
-- Disks that a blkhost server is serving (it holds their write lock) are
-- rotated by that server, through its control socket: found from the
-- lock holder's pid (blkhost/registry.lua) or given with --control PATH.
-- Disks QEMU holds are refused with how to snapshot them through QEMU.
local cli = require "blkhost.cli"
local policy = require "blkhost.policy"
local handoff = require "blkhost.handoff"

local USAGE = [[
Usage: blkhost run nightly-rotate.lua [OPTIONS] IMAGE...

Take a snapshot PREFIX<time> of every IMAGE (qcow2), then delete the
PREFIX snapshots the policy no longer keeps.  Other snapshots are never
touched.

Policy (at least one --keep-* or --within):
  --keep-last N        the N newest
  --keep-hourly N      the newest of each of the N latest hours with one
  --keep-daily N       ... days
  --keep-weekly N      ... ISO weeks (Monday to Sunday)
  --keep-monthly N     ... months
  --keep-yearly N      ... years
  --within DURATION    everything younger than DURATION (36h, 7d, 2w, 1h30m)
  --min-age DURATION   never delete anything younger than DURATION
  --pin GLOB           never delete snapshots matching GLOB (repeatable)
  --prefix PREFIX      the snapshots this policy owns (default nightly-)
  --timezone TZ        UTC (default), local, or a zone such as Europe/Berlin
  --state KEY=VALUE    store KEY=VALUE with the snapshot (repeatable)

Modes:
  -n, --dry-run        print the plan, change nothing
  --check              monitoring: age of the newest snapshot, Nagios style
  --warn DURATION      --check: WARNING from this age (default 26h)
  --crit DURATION      --check: CRITICAL from this age (default 50h)
  --lock-dir DIR       lock files there, not next to the images
  --control PATH       the disks are served by the blkhost server with this
                       control socket: rotate them there (found by itself
                       when the server registered its socket)
  --now TIME           pretend it is TIME (unix seconds), for testing
  -p, --progress       each image's steps on stderr, with "(NN.NN/100%)"
                       (default: on a terminal once it runs 2 s; -q: never)
  -h, --help           this text
]]

local OPTIONS = {
  { nil, "keep-last", arg = "N" }, { nil, "keep-hourly", arg = "N" },
  { nil, "keep-daily", arg = "N" }, { nil, "keep-weekly", arg = "N" },
  { nil, "keep-monthly", arg = "N" }, { nil, "keep-yearly", arg = "N" },
  { nil, "within", arg = "DURATION" }, { nil, "min-age", arg = "DURATION" },
  { nil, "pin", arg = "GLOB", multi = true },
  { nil, "prefix", arg = "PREFIX" }, { nil, "timezone", arg = "TZ" },
  { nil, "state", arg = "KEY=VALUE", multi = true },
  { "n", "dry-run" }, { nil, "check" },
  { nil, "warn", arg = "DURATION" }, { nil, "crit", arg = "DURATION" },
  { nil, "lock-dir", arg = "DIR" }, { nil, "now", arg = "TIME" },
  { nil, "control", arg = "PATH" }, { "p", "progress" },
}

-- The whole group through one server's control socket: it serves every
-- image, or the rotation is refused (a group is one process's job).
local function rotate_through_server(images, spec, lock_error, control)
  local sock = handoff.server_for(images[1], lock_error, control)
  local exports = {}
  for _, img in ipairs(images) do
    local ok, name = pcall(handoff.export_of, sock, img)
    if not ok then
      cli.fail(tostring(name) .. "; a group is rotated by one process: nothing was changed")
    end
    exports[#exports + 1] = name
  end
  local args = { exports = exports }
  for _, k in ipairs { "prefix", "keep", "within", "min_age", "timezone", "pin",
                       "state", "dry_run", "now" } do
    args[k] = spec[k]
  end
  if args.keep and next(args.keep) == nil then args.keep = nil end
  local res = handoff.call(sock, "rotate", args)
  for _, l in ipairs(res.lines or {}) do print(l) end
end

local function count(o, name)
  local v = o["keep-" .. name]
  if v == nil then return nil end
  local n = math.tointeger(tonumber(v))
  if not n then
    cli.usage_error("--keep-" .. name .. " needs a whole number, not '" .. v .. "'")
  end
  return n      -- negative counts are refused by the policy, by name
end

local function spec_from(o, images)
  if #images == 0 then cli.usage_error("no images given") end
  local spec = {
    prefix = o.prefix or "nightly-",
    keep = {},
    within = o.within,
    min_age = o["min-age"],
    timezone = o.timezone,
    pin = o.pin,
    dry_run = o["dry-run"] or nil,
    lock_dir = o["lock-dir"],
    progress = o.progress or (o.quiet and false) or nil,
  }
  for _, k in ipairs { "last", "hourly", "daily", "weekly", "monthly", "yearly" } do
    spec.keep[k] = count(o, k)
  end
  if o.now then
    spec.now = math.tointeger(tonumber(o.now))
    if not spec.now then cli.usage_error("--now needs unix seconds, not '" .. o.now .. "'") end
  end
  if o.state then
    spec.state = {}
    for _, kv in ipairs(o.state) do
      local k, v = kv:match("^([^=]+)=(.*)$")
      if not k then cli.usage_error("--state needs KEY=VALUE, not '" .. kv .. "'") end
      spec.state[k] = v
    end
  end
  return spec
end

local function is_check(args)
  for _, a in ipairs(args) do
    if a == "--" then break end
    if a == "--check" then return true end
  end
  return false
end

return cli.run("nightly-rotate", USAGE, function(args)
  if is_check(args) then
    -- A monitoring system reads any status but 0-3 as its own failure:
    -- a bad command line is UNKNOWN (3) there, not a warning.
    local o, images, spec
    local ok, err = pcall(function()
      o, images = cli.parse(args, OPTIONS)
      spec = spec_from(o, images)
    end)
    if not ok then
      print("UNKNOWN - " .. tostring(type(err) == "table" and err.msg or err))
      return 3
    end
    spec.keep, spec.within, spec.min_age, spec.pin = nil, nil, nil, nil
    spec.dry_run, spec.state, spec.lock_dir, spec.progress = nil, nil, nil, nil
    local code, msg = policy.check(images, spec, { warn = o.warn, crit = o.crit,
                                                   now = spec.now })
    print(msg)
    return code
  end
  local o, images = cli.parse(args, OPTIONS)
  if o.warn or o.crit then cli.usage_error("--warn and --crit go with --check") end
  local spec = spec_from(o, images)
  if o.control then
    rotate_through_server(images, spec, nil, o.control)
    return 0
  end
  local ok, err = pcall(policy.rotate, images, spec)
  if not ok and handoff.is_lock_error(err) then
    local hok, herr = pcall(rotate_through_server, images, spec, err, nil)
    if not hok then cli.fail(tostring(herr)) end
    return 0
  end
  if not ok then error(err, 0) end
  return 0
end)
