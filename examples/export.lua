-- SPDX-License-Identifier: BSD-3-Clause
-- export.lua: serve a disk image over NBD -- blkhost's main job.
--
--   blkhost run examples/export.lua                   # a demo image
--   blkhost run examples/export.lua disk.qcow2        # your image
--   blkhost run examples/export.lua disk.img --tcp 127.0.0.1:10809 --readonly
--   blkhost run examples/export.lua disk.qcow2 --control /run/vm1.ctl \
--       --rotate '*-*-* 03:30' --keep-daily 7 --keep-weekly 4
--
-- Options: --socket PATH, --tcp HOST:PORT, --systemd (the sockets systemd
-- passes: systemd/blkhost-nbd@.socket), --readonly, --name NAME,
-- --control PATH (a control socket: `blkhost ctl PATH query-exports`,
-- snapshots while serving; docs/control.md), --rotate SPEC (a calendar
-- spec as systemd's OnCalendar=: take a snapshot and delete what the
-- --keep-* policy no longer keeps, while serving; docs/rotation.md) with
-- --keep-last/hourly/daily/weekly/monthly/yearly N, --prefix P (default
-- nightly-) and --timezone TZ (default UTC).
-- Serves until Ctrl-C (or the control socket's quit); then requests in
-- flight finish, the image is flushed and the socket is removed.  Copy
-- this file to start your own.
local bh = require "blkhost"

local image, socket, tcp, systemd, readonly, name, control, rotate
local keep, prefix, zone = {}, "nightly-", "UTC"
local i = 1
while arg[i] do
  local a = arg[i]
  local period = a:match("^%-%-keep%-(%a+)$")
  if a == "--socket" then i = i + 1; socket = arg[i]
  elseif a == "--tcp" then i = i + 1; tcp = arg[i]
  elseif a == "--systemd" then systemd = true
  elseif a == "--name" then i = i + 1; name = arg[i]
  elseif a == "--readonly" then readonly = true
  elseif a == "--control" then i = i + 1; control = arg[i]
  elseif a == "--rotate" then i = i + 1; rotate = arg[i]
  elseif a == "--prefix" then i = i + 1; prefix = arg[i]
  elseif a == "--timezone" then i = i + 1; zone = arg[i]
  elseif period then
    i = i + 1
    keep[period] = math.tointeger(tonumber(arg[i] or ""))
    if not keep[period] then error(a .. " needs a whole number", 0) end
  elseif a:sub(1, 1) == "-" then
    error("unknown option " .. a .. " (known: --socket PATH, --tcp HOST:PORT, "
          .. "--systemd, --readonly, --name NAME, --control PATH, --rotate SPEC, "
          .. "--keep-PERIOD N, --prefix P, --timezone TZ)", 0)
  else image = a end
  i = i + 1
end
if rotate and readonly then error("--rotate needs a writable image", 0) end
if next(keep) and not rotate then error("--keep-* go with --rotate SPEC", 0) end

local function env(k) local v = os.getenv(k); return v ~= "" and v or nil end
local tmp = env("XDG_RUNTIME_DIR") or env("TMPDIR") or "/tmp"

-- No image given: make a 64 MiB demo image (sparse, with a greeting at
-- the start) in the user's cache directory, once.
local format   -- nil: probed, and a probed raw image keeps block 0 raw
if not image then
  format = "raw"  -- the demo image is ours: no need to guess
  local dir = (env("XDG_CACHE_HOME") or (env("HOME") or tmp) .. "/.cache")
              .. "/blkhost"
  os.execute("mkdir -p '" .. dir .. "'")
  image = dir .. "/demo.img"
  local f = io.open(image, "rb")
  if f then
    f:close()
  else
    bh.create(image, { size = "64M" })
    local demo <close> = bh.open(image, { format = "raw" })
    demo:write(0, "Hello from blkhost! This is the demo image.\n")
    print("made a demo image: " .. image)
  end
end

local disk <close> = bh.open(image, { readonly = readonly, format = format })
local listen = systemd and "systemd" or tcp and "tcp:" .. tcp
               or "unix:" .. (socket or tmp .. "/blkhost-nbd.sock")

local server <close> = bh.nbd.server{
  listen = { listen },
  persistent = true,                 -- keep serving when a client leaves
  on_connect = function(c) print("client " .. c.id .. " connected (" .. c.peer .. ")") end,
  on_disconnect = function(c) print("client " .. c.id .. " left") end,
}
server:export(disk, { name = name or "", readonly = readonly,
                      description = image })

-- Snapshots while serving: the core drains the node for each snapshot
-- call, so clients see a short pause, never an error.
local policy_spec
if rotate then
  local policy = require "blkhost.policy"
  policy_spec = { prefix = prefix, keep = keep, timezone = zone }
  policy.normalize(policy_spec)          -- a bad policy stops us now
  bh.timer.at(rotate, function()
    -- A failed rotation is printed (with its traceback) by the timer,
    -- and serving goes on; the next one runs at its time.
    policy.rotate({ disk }, policy_spec)
    io.stdout:flush()
  end, { timezone = zone })
end
local ctl <close> = control and bh.control.listen("unix:" .. control)

local uri = server:uri(name or "")
print(("serving %s (%s, %s) at\n  %s\n"):format(image, disk:format(),
      bh.human_size(disk:size()), uri))
print("try:")
print("  nbdinfo '" .. uri .. "'")
print("  qemu-img info '" .. uri .. "'")
if systemd then
  -- the socket unit names the address
elseif tcp then
  local host, port = tcp:match("^%[?(.-)%]?:(%d+)$")
  print(("  sudo nbd-client %s %s /dev/nbd0%s"):format(host, port,
        name and " -N " .. name or ""))
else
  print(("  sudo nbd-client -unix %s /dev/nbd0%s"):format(listen:sub(6),
        name and " -N " .. name or ""))
end
if control then print("control socket: blkhost ctl " .. control .. " query-commands") end
if rotate then
  print(("rotating on '%s' (%s): prefix %s, keep %s"):format(rotate, zone, prefix,
        (function() local t = {} for k, v in pairs(keep) do t[#t + 1] = k .. " " .. v end
                    table.sort(t) return table.concat(t, ", ") end)()))
end
print("Ctrl-C to stop.")
io.stdout:flush()

bh.loop()           -- returns on Ctrl-C or SIGTERM
server:stop()       -- finish in-flight requests, flush, remove the socket
print("stopped")
