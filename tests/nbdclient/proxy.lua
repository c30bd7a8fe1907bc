-- SPDX-License-Identifier: BSD-3-Clause
-- A proxy whose nbd node takes driver options, which `blkhost nbd` has no
-- flag for:  blkhost run proxy.lua SOCKET URI [k=v...]
-- Serves URI (format nbd, the options given) on unix:SOCKET until killed.
local bh = require "blkhost"
local sock, uri = arg[1], arg[2]
local opts = { format = "nbd" }
for i = 3, #arg do
  local k, v = arg[i]:match("^([^=]+)=(.*)$")
  opts[k] = v
end
local node <close> = bh.open(uri, opts)
local srv <close> = bh.nbd.server { listen = { "unix:" .. sock }, persistent = true }
srv:export(node, { name = "" })
bh.loop()
srv:stop()
