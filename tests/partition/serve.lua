-- SPDX-License-Identifier: BSD-3-Clause
-- Export one partition of IMAGE over NBD on a Unix socket until killed.
--   blkhost run serve.lua IMAGE SOCKET N [rw]
local bh = require "blkhost"
local rw = arg[4] == "rw"
local disk <close> = bh.open(arg[1], { format = "raw", readonly = not rw })
local part <close> = disk:partition(tonumber(arg[3]))
local server <close> = bh.nbd.server{ listen = { "unix:" .. arg[2] }, persistent = true }
server:export(part, { name = "", readonly = not rw })
print("serving " .. server:uri(""))
io.stdout:flush()
bh.loop()
