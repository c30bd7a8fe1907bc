-- SPDX-License-Identifier: BSD-3-Clause
-- export.lua: serve a disk image over NBD -- blkhost's main job.
--
--   blkhost run examples/export.lua                   # a demo image
--   blkhost run examples/export.lua disk.qcow2        # your image
--   blkhost run examples/export.lua disk.img --tcp 127.0.0.1:10809 --readonly
--
-- Options: --socket PATH, --tcp HOST:PORT, --readonly, --name NAME.
-- Serves until Ctrl-C; then requests in flight finish, the image is
-- flushed and the socket is removed.  Copy this file to start your own.
local bh = require "blkhost"

local image, socket, tcp, readonly, name
local i = 1
while arg[i] do
  local a = arg[i]
  if a == "--socket" then i = i + 1; socket = arg[i]
  elseif a == "--tcp" then i = i + 1; tcp = arg[i]
  elseif a == "--name" then i = i + 1; name = arg[i]
  elseif a == "--readonly" then readonly = true
  elseif a:sub(1, 1) == "-" then
    error("unknown option " .. a .. " (known: --socket PATH, --tcp HOST:PORT, "
          .. "--readonly, --name NAME)", 0)
  else image = a end
  i = i + 1
end

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
local listen = tcp and "tcp:" .. tcp
               or "unix:" .. (socket or tmp .. "/blkhost-nbd.sock")

local server <close> = bh.nbd.server{
  listen = { listen },
  persistent = true,                 -- keep serving when a client leaves
  on_connect = function(c) print("client " .. c.id .. " connected (" .. c.peer .. ")") end,
  on_disconnect = function(c) print("client " .. c.id .. " left") end,
}
server:export(disk, { name = name or "", readonly = readonly,
                      description = image })

local uri = server:uri(name or "")
print(("serving %s (%s, %s) at\n  %s\n"):format(image, disk:format(),
      bh.human_size(disk:size()), uri))
print("try:")
print("  nbdinfo '" .. uri .. "'")
print("  qemu-img info '" .. uri .. "'")
if tcp then
  local host, port = tcp:match("^%[?(.-)%]?:(%d+)$")
  print(("  sudo nbd-client %s %s /dev/nbd0%s"):format(host, port,
        name and " -N " .. name or ""))
else
  print(("  sudo nbd-client -unix %s /dev/nbd0%s"):format(listen:sub(6),
        name and " -N " .. name or ""))
end
print("Ctrl-C to stop.")
io.stdout:flush()

bh.loop()           -- returns on Ctrl-C or SIGTERM
server:stop()       -- finish in-flight requests, flush, remove the socket
print("stopped")
