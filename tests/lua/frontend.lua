-- SPDX-License-Identifier: BSD-3-Clause
-- The generic frontend binding, bh.frontend(), driven with the nbd-server
-- plugin and real NBD clients (nbdinfo, nbdsh): exports, uri, status,
-- read-only exports, nodes closed in Lua while exported, bh.loop() ending
-- when the last client leaves, event callbacks and errors raised in them.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"
local json = require "dkjson"

local have = false
for _, p in ipairs(bh.plugins()) do
  if p.name == "nbd-server" and not p.error then have = true end
end
local _, c1 = t.sh("command -v nbdinfo")
local _, c2 = t.sh("command -v nbdsh")
if not have or c1 ~= 0 or c2 ~= 0 then
  print("1..0 # SKIP needs the nbd-server plugin, nbdinfo and nbdsh")
  os.exit(0)
end

local dir = t.tmpdir()
local KiB = 1024

t.error_like(function() bh.frontend("nbd-server", { bogus = 1 }) end, "bogus",
             "unknown nbd-server option refused, naming it")
t.error_like(function() bh.frontend("nbd-server", { listen = "carrier-pigeon" }) end, "carrier%-pigeon",
             "bad listen address refused, naming it")

local mem = bh.open(nil, { format = "memory", size = "1M" })
mem:write(0, "hello over nbd")
local sock = dir .. "/nbd.sock"
local srv = bh.frontend("nbd-server", { listen = "unix:" .. sock, persistent = true })
t.like(tostring(srv), "blkhost%.frontend%(nbd%-server%)", "tostring names the frontend")
t.is(srv:name(), "nbd-server", "srv:name()")
srv:export(mem, { name = "disk", description = "a test disk" })
srv:export(mem, { name = "ro", readonly = true })
t.error_like(function() srv:export(mem, { name = "disk" }) end, "disk",
             "a second export with the same name refused")
t.error_like(function() srv:export("not a node") end, "blkhost%.node expected",
             "exporting something that is not a node refused")
srv:start()
local uri = srv:uri("disk")
t.like(uri, "^nbd%+unix:///disk%?socket=", "srv:uri('disk') is an nbd+unix URI")
t.is(srv:status().running, true, "status().running is true after start")

local out, code = t.sh("nbdinfo --json " .. t.shq(uri))
local export = ((json.decode(out) or {}).exports or {})[1] or {}
t.is(export["export-size"], 1048576, "nbdinfo sees the 1 MiB export")
t.is(export.description, "a test disk", "nbdinfo sees the description")
out = t.sh("nbdsh -u " .. t.shq(uri) .. " -c 'print(h.pread(14, 0).decode())'")
t.is(out, "hello over nbd\n", "an NBD client reads what Lua wrote")
out, code = t.sh("nbdsh -u " .. t.shq(uri) .. " -c 'h.pwrite(b\"from the client\", 4096)'")
t.is(code, 0, "an NBD client writes to the export")
t.is(mem:read(4096, 15), "from the client", "Lua reads what the NBD client wrote")
out, code = t.sh("nbdsh -u " .. t.shq(srv:uri("ro")) .. " -c 'h.pwrite(b\"x\", 0)'")
t.ok(code ~= 0, "a write to the read-only export fails")

-- The export holds its own reference: closing the node in Lua is safe.
mem:close()
out = t.sh("nbdsh -u " .. t.shq(uri) .. " -c 'print(h.pread(5, 0).decode())'")
t.is(out, "hello\n", "export still served after node:close() in Lua")

srv:stop()
t.is(srv:status().running, false, "status().running is false after stop")
srv:close()
t.like(tostring(srv), "closed", "tostring of a closed frontend says closed")
t.error_like(function() srv:start() end, "frontend is closed", "start on a closed frontend refused")
local f = io.open(sock)
t.ok(f == nil, "the socket file is gone after close")
if f then f:close() end

-- An array option becomes a repeated key: two listen addresses.
local n2 = bh.open(nil, { format = "memory", size = "64K" })
local two <close> = bh.frontend("nbd-server", {
  listen = { "unix:" .. dir .. "/a.sock", "unix:" .. dir .. "/b.sock" },
  persistent = true,
})
two:export(n2, { name = "" })
two:start()
local _, ca = t.sh("nbdinfo --size 'nbd+unix:///?socket=" .. dir .. "/a.sock'")
local _, cb = t.sh("nbdinfo --size 'nbd+unix:///?socket=" .. dir .. "/b.sock'")
t.ok(ca == 0 and cb == 0, "listen = {a, b} (an array) serves on both sockets")
two:close()
n2:close()

-- bh.loop(): a non-persistent server lets the loop end when its last
-- client leaves; events arrive on the main thread.  A watchdog signals us
-- if the client never comes, so a failure cannot hang the suite.
local function mypid()
  local fh = io.open("/proc/self/stat")
  local pid = fh:read("n")
  fh:close()
  return pid
end
local function watchdog(seconds)
  local p = io.popen("(sleep " .. seconds .. "; kill -INT " .. mypid() ..
                     ") >/dev/null 2>&1 & echo $!")
  local pid = p:read("n")
  p:close()
  return pid
end

local node = bh.open(nil, { format = "memory", size = "64K" })
local s2 <close> = bh.frontend("nbd-server", { listen = "unix:" .. dir .. "/loop.sock" })
s2:export(node, { name = "" })
local events = {}
local details_ok = true
s2:on_event(function(ev, details)
  events[#events + 1] = ev
  details_ok = details_ok and type(details) == "table"
end)
s2:start()
os.execute("PATH=/usr/bin:$PATH nbdinfo " .. t.shq(s2:uri()) .. " >/dev/null 2>&1 &")
local dog = watchdog(30)
local sig = bh.loop()
os.execute("kill " .. dog .. " 2>/dev/null")
t.is(sig, 0, "bh.loop() returns 0 when the last client leaves")
local seen = table.concat(events, ",")
t.like(seen, "connect", "an event callback saw the client connect (" .. seen .. ")")
t.ok(details_ok, "event details arrive as a table")
s2:close()

-- An error inside an event callback ends the loop and bh.loop() raises it.
local s3 <close> = bh.frontend("nbd-server", { listen = "unix:" .. dir .. "/err.sock", persistent = true })
s3:export(node, { name = "" })
s3:on_event(function(ev) error("callback failed on " .. ev) end)
s3:start()
os.execute("PATH=/usr/bin:$PATH nbdinfo " .. t.shq(s3:uri()) .. " >/dev/null 2>&1 &")
dog = watchdog(30)
t.error_like(function() bh.loop() end, "callback failed on",
             "an error in an event callback is raised by bh.loop()")
os.execute("kill " .. dog .. " 2>/dev/null")
s3:close()
node:close()

t.done()
