-- SPDX-License-Identifier: BSD-3-Clause
-- Serve one qcow2 image over NBD for the qcow2 tests and bench/qcow2.sh:
--   blkhost run serve.lua SOCKET IMAGE READY-FILE [threads]
local bh = require "blkhost"
local sock, image, ready, threads = arg[1], arg[2], arg[3], arg[4]
local srv <close> = bh.nbd.server{ listen = { "unix:" .. sock }, persistent = true,
                                   threads = tonumber(threads) }
local node = bh.open(image, { format = "qcow2", discard = "unmap" })
srv:export(node, { name = "" })
local f = assert(io.open(ready, "w"))
f:write(srv:uri(""), "\n")
f:close()
bh.loop()
srv:stop()
node:close()
