-- SPDX-License-Identifier: BSD-3-Clause
-- delay: requests wait at least the delay asked (only lower bounds are
-- checked: the machine is shared).
package.path = os.getenv("SOURCE_ROOT") .. "/tests/filters/?.lua;" .. package.path
local lib = require "lib"
local t, bh = lib.t, lib.bh
local m <close> = lib.memdisk(1048576, 5)

local took = lib.took

local d <close> = bh.filter("delay", m, { rdelay = "50ms", wdelay = "0.03s" })
t.ok(took(function() d:read(0, 512) end) >= 0.05, "delay: rdelay=50ms makes a read take at least 50 ms")
t.ok(took(function() d:write(0, "x") end) >= 0.03, "delay: wdelay=0.03s makes a write take at least 30 ms")
t.ok(took(function() d:zero(0, 4096) end) >= 0.03, "delay: wdelay applies to zeroes too")

local r <close> = bh.filter("delay", m, { ["delay-read"] = "20ms-40ms",
                                          ["delay-flush"] = "20000us" })
local t1 = took(function() for _ = 1, 5 do r:read(0, 512) end end)
t.ok(t1 >= 0.1, "delay: a random delay 20ms-40ms is at least 20 ms per read (5 reads: " .. t1 .. " s)")
t.ok(took(function() r:flush() end) >= 0.02, "delay: delay-flush=20000us delays a flush")
t.is(r:read(0, 16), m:read(0, 16), "delay: the data is the child's")

local o <close> = bh.filter("delay", m, { delay = "30ms", ["delay-read"] = "0" })
t.ok(took(function() o:write(0, "y") end) >= 0.03, "delay: delay= applies to every op not named")

for _, bad in ipairs({ { rdelay = "5 parsecs" }, { wdelay = "10ms-5ms" },
                       { ["delay-read"] = "-1s" }, { delay = "2h" } }) do
  local k, v = next(bad)
  t.error_like(function() bh.filter("delay", m, bad) end,
               "delay: " .. k:gsub("%-", "%%-") .. "=.*not a duration",
               "delay: " .. k .. "=" .. v .. " refused, naming the option")
end
t.error_like(function() bh.filter("delay", m, { rdelay = "1ms", bogus = 1 }) end,
             "bogus", "delay: an unknown option is refused")
t.done()
