-- SPDX-License-Identifier: BSD-3-Clause
-- rate: a run of requests takes at least bytes/rate.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/filters/?.lua;" .. package.path
local lib = require "lib"
local t, bh = lib.t, lib.bh
local m <close> = lib.memdisk(1048576, 9)
local took = lib.took
local r <close> = bh.filter("rate", m, { rate = "1M" })
local s = took(function() for i = 0, 3 do r:read(i * 131072, 131072) end end)
t.ok(s >= 0.5, "rate: rate=1M: 512K read in 4 requests takes at least 0.5 s (" .. s .. " s)")
t.is(r:read(0, 4096), m:read(0, 4096), "rate: the data is the child's")

local w <close> = bh.filter("rate", m, { ["write-rate"] = "2M" })
s = took(function() w:write(0, string.rep("w", 1048576)) end)
t.ok(s >= 0.5, "rate: write-rate=2M: a 1M write takes at least 0.5 s (" .. s .. " s)")
s = took(function() w:read(0, 1048576) end)
t.diag("an unlimited read through write-rate took " .. s .. " s")

local both <close> = bh.filter("rate", m, { ["read-rate"] = "4M", rate = "1M" })
s = took(function() both:read(0, 262144); both:write(0, string.rep("z", 262144)) end)
t.ok(s >= 0.5, "rate: rate=1M holds over reads and writes together, with read-rate=4M too (" .. s .. " s)")
t.error_like(function() bh.filter("rate", m, {}) end, "rate: give a limit",
             "rate: no limit refused")
t.error_like(function() bh.filter("rate", m, { rate = "fast" }) end, "rate",
             "rate: rate=fast refused")
t.done()
