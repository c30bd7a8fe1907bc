-- SPDX-License-Identifier: BSD-3-Clause
-- The control socket against a running server (tests/live/server.lua,
-- another process): every command with its errors, bad requests, a
-- client that leaves mid-command, 1,000 requests on one connection, the
-- socket's mode and path checks, `blkhost ctl`, a failing timer that does
-- not stop serving, and snapshot_apply/loadvm refused on a served image.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/lua/?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"
local dkjson = require "dkjson"

local BLKHOST = os.getenv("BLKHOST")
local SRC = os.getenv("SOURCE_ROOT")
local dir = t.tmpdir()
local img, nbd, ctl = dir .. "/vm1.qcow2", dir .. "/nbd.sock", dir .. "/ctl.sock"
-- Registry entries go to this test's own directory.
local env = "XDG_RUNTIME_DIR=" .. t.shq(dir .. "/run") .. " "
os.execute("mkdir -p " .. t.shq(dir .. "/run"))
t.sh("qemu-img create -q -f qcow2 " .. t.shq(img) .. " 64M")

os.execute(env .. t.shq(BLKHOST) .. " run " .. t.shq(SRC .. "/tests/live/server.lua") .. " "
           .. t.shq(img) .. " " .. t.shq(nbd) .. " " .. t.shq(ctl) .. " >"
           .. t.shq(dir .. "/server.log") .. " 2>&1 &")
local function exists(p) local f = io.open(p) if f then f:close() end return f ~= nil end
for _ = 1, 200 do
  if exists(ctl .. ".pid") then break end
  os.execute("sleep 0.05")
end
local pidf = io.open(ctl .. ".pid")
local pid = pidf and pidf:read("l")
if pidf then pidf:close() end
if not pid then
  t.ok(false, "the test server starts")
  t.diag(t.sh("cat " .. t.shq(dir .. "/server.log")))
  t.done()
end

local conn = bh.control.connect(ctl, 30)
local function raw(line) return conn:call(line) end
local function req(execute, args, id)
  local r = { execute = execute, arguments = args, id = id }
  return dkjson.decode(raw(dkjson.encode(r)))
end
local function err_of(ans) return ans.error and (ans.error.class .. ": " .. ans.error.desc) or "no error" end

-- The socket itself.
t.is(t.sh("stat -c %a " .. t.shq(ctl)), "600\n", "control socket: mode 0600")

-- Bad requests.
local a = dkjson.decode(raw("{not json"))
t.like(err_of(a), "^GenericError: JSON parse error", "bad JSON: GenericError naming the parse error")
a = dkjson.decode(raw("[1, 2]"))
t.like(err_of(a), "^GenericError: .*execute", "a JSON array instead of a request: GenericError")
a = dkjson.decode(raw('{"arguments": {}}'))
t.like(err_of(a), "^GenericError: .*execute", "a request without execute: GenericError")
a = req("no-such-command", nil, 7)
t.ok(a.id == 7 and err_of(a):match("^CommandNotFound: The command no%-such%-command"),
     "unknown command: CommandNotFound, id echoed")
a = req("query-exports", { bogus = 1 })
t.like(err_of(a), "^GenericError: Parameter 'bogus' is unexpected", "an unexpected argument is refused by name")
a = dkjson.decode(raw('{"execute": "query-exports", "arguments": [1]}'))
t.like(err_of(a), "^GenericError: 'arguments' must be an object", "arguments that are not an object")
a = req("snapshot-create", { name = 5 })
t.like(err_of(a), "Parameter 'name' expects a string", "an argument of the wrong type is refused")
a = dkjson.decode(raw('{"execute": "query-exports", "id": {"x": [1, "two"]}}'))
t.ok(a["return"] and a.id and a.id.x and a.id.x[2] == "two", "a structured id is echoed as sent")

-- The queries.
a = req("query-exports", nil, "q1")
local e = a["return"] and a["return"][1]
t.ok(a.id == "q1" and e and e.name == "vm1" and e.format == "qcow2" and e.size == 64 * 1024 * 1024
     and e.description == "the test disk" and e.readonly == false,
     "query-exports: vm1, qcow2, 64 MiB, writable, its description")
a = req("query-clients")
t.ok(a["return"] and #a["return"] == 0, "query-clients: none connected")
a = req("query-snapshots")
t.ok(a["return"] and #a["return"] == 0, "query-snapshots: none yet")
a = req("query-snapshots", { export = "nope" })
t.like(err_of(a), "^NotFound: no export named 'nope'", "query-snapshots of an export that does not exist: NotFound")

-- snapshot-create / -delete.
a = req("snapshot-create", {})
t.like(err_of(a), "^GenericError: Parameter 'name' is missing", "snapshot-create without a name: missing argument")
a = req("snapshot-create", { name = "first" })
t.ok(a["return"] and a["return"].name == "first" and a["return"].id == "1", "snapshot-create first: id 1")
a = req("snapshot-create", { name = "first" })
t.like(err_of(a), "already has a snapshot named 'first'", "snapshot-create of a name that exists is refused")
a = req("snapshot-create", { export = "nope", name = "x" })
t.like(err_of(a), "^NotFound", "snapshot-create on an export that does not exist: NotFound")
a = req("snapshot-delete", { name = "never" })
t.like(err_of(a), "^NotFound: export 'vm1' has no snapshot named 'never'", "snapshot-delete of a name that does not exist: NotFound")
a = req("snapshot-delete", {})
t.like(err_of(a), "Parameter 'name' is missing", "snapshot-delete without a name: missing argument")
req("snapshot-create", { name = "second" })
a = req("snapshot-delete", { name = "first" })
t.ok(a["return"] and a["return"].name == "first", "snapshot-delete first: done")
local names = {}
for _, s in ipairs(req("query-snapshots")["return"]) do names[#names + 1] = s.name end
t.is(table.concat(names, ","), "second", "query-snapshots after: only 'second' is left")

-- savevm / delvm.
a = req("savevm", { name = "vm-state" })
t.ok(a["return"] and a["return"].name == "vm-state", "savevm vm-state: done")
a = req("savevm", { name = "vm-state" })
t.like(err_of(a), "already a snapshot named 'vm%-state'", "savevm of a name that exists is refused")
a = req("savevm", {})
t.like(err_of(a), "Parameter 'name' is missing", "savevm without a name: missing argument")
a = req("delvm", { name = "vm-state" })
t.ok(a["return"] ~= nil, "delvm vm-state: done")
a = req("delvm", { name = "vm-state" })
t.like(err_of(a), "^NotFound", "delvm of a name that does not exist: NotFound")

-- rotate.
a = req("rotate", { prefix = "n-", keep = { last = 2 }, dry_run = true, now = 1790000000 })
t.ok(a["return"] and a["return"].lines[1]:match("^create n%-2026") and
     a["return"].lines[#a["return"].lines]:match("nothing was changed"),
     "rotate dry_run: the plan lines, nothing changed")
for i = 1, 3 do req("rotate", { prefix = "n-", keep = { last = 2 }, now = 1790000000 + i * 3600 }) end
local own = 0
for _, s in ipairs(req("query-snapshots")["return"]) do
  if s.name:match("^n%-") then own = own + 1 end
end
t.is(own, 2, "rotate 3 times with keep.last 2: 2 of the policy's snapshots are left")
a = req("rotate", { keep = { last = 2 } })
t.like(err_of(a), "Parameter 'prefix' is missing", "rotate without a prefix: missing argument")
a = req("rotate", { prefix = "n-" })
t.like(err_of(a), "^GenericError: .*keeps nothing", "rotate with a policy that keeps nothing: refused by the policy")
a = req("rotate", { prefix = "n-", keep = { last = 1 }, exports = { "nope" } })
t.like(err_of(a), "^NotFound", "rotate of an export that does not exist: NotFound")

-- Script commands.
a = req("echo", { x = 1, y = { "a" } })
t.ok(a["return"] and a["return"].x == 1 and a["return"].y[1] == "a", "a script command (bh.control.command) answers")
a = req("fail")
t.like(err_of(a), "^GenericError: a script command failed", "a script command that raises: GenericError with its message")

-- export-add / export-remove.
local img2 = dir .. "/second.qcow2"
t.sh("qemu-img create -q -f qcow2 " .. t.shq(img2) .. " 1M")
a = req("export-add", { path = img2, name = "second" })
t.ok(a["return"] and a["return"].uri:match("second"), "export-add: the image is served, its URI returned")
t.like(t.sh("nbdinfo --size " .. t.shq(a["return"] and a["return"].uri or "")), "^1048576",
       "export-add: nbdinfo reads the new export's size")
local reg = t.sh("cat " .. t.shq(dir .. "/run/blkhost/" .. pid .. ".json"))
local regt = dkjson.decode(reg) or {}
t.ok(regt.pid == tonumber(pid) and regt.socket and regt.socket:match("ctl%.sock$")
     and table.concat(regt.images or {}, " "):match("vm1%.qcow2.*second%.qcow2"),
     "the registry entry names the pid, the socket and, after export-add, both images")
a = req("export-add", { path = img2, name = "second" })
t.like(err_of(a), "already an export named 'second'", "export-add of a name that exists is refused")
a = req("snapshot-create", { name = "which" })
t.like(err_of(a), "Parameter 'export' is missing %(there are 2 exports%)",
       "snapshot-create without export when two are served: missing argument")
a = req("export-add", { path = dir .. "/missing.qcow2", name = "third" })
t.like(err_of(a), "^GenericError: .*missing.qcow2", "export-add of a missing file: the open error")
a = req("export-add", { name = "x" })
t.like(err_of(a), "Parameter 'path' is missing", "export-add without a path: missing argument")
a = req("export-remove", { name = "nope" })
t.like(err_of(a), "^NotFound", "export-remove of an export that does not exist: NotFound")

-- A client on an export, for the commands that wait for or drop clients:
-- qemu-io holding a connection for `ms`.
local function hold_client(export, ms, tag)
  os.execute("(qemu-io -f raw -c 'sleep " .. ms .. "' " .. t.shq("nbd+unix:///" .. export .. "?socket=" .. nbd)
             .. " >" .. t.shq(dir .. "/" .. tag .. ".out") .. " 2>&1; echo $? >" .. t.shq(dir .. "/" .. tag .. ".rc") .. ") &")
  for _ = 1, 200 do
    for _, c in ipairs(req("query-clients")["return"] or {}) do
      if c.export == export then return true end
    end
    os.execute("sleep 0.05")
  end
  return false
end
-- Connect and disconnect events reach the server's main loop a moment
-- after the fact: ask until the count settles at 0 (or 5 s pass).
local function clients_of(export)
  local n
  for _ = 1, 100 do
    n = 0
    for _, c in ipairs(req("query-clients")["return"] or {}) do
      if c.export == export then n = n + 1 end
    end
    if n == 0 then return 0 end
    os.execute("sleep 0.05")
  end
  return n
end
local function rc_of(tag)
  for _ = 1, 200 do
    local f = io.open(dir .. "/" .. tag .. ".rc")
    local v = f and f:read("l")
    if f then f:close() end
    if v then return tonumber(v) end
    os.execute("sleep 0.05")
  end
end

local connected = hold_client("second", 3000, "safe")
a = req("export-remove", { name = "second", mode = "safe" })
t.ok(connected and a["return"] and rc_of("safe") == 0,
     "export-remove safe: answers once its client has left on its own (the client ended cleanly)")
t.like(t.sh("nbdinfo --size " .. t.shq("nbd+unix:///second?socket=" .. nbd)), "no export named",
       "export-remove safe: the export is gone for new clients")
a = req("export-add", { path = img2, name = "second" })
t.ok(a["return"] ~= nil, "export-add after export-remove: the name and the image can be used again")
if not a["return"] then t.diag(err_of(a)) end
connected = hold_client("second", 8000, "hard")
a = req("export-remove", { name = "second", mode = "hard" })
t.ok(connected and a["return"] and clients_of("second") == 0,
     "export-remove hard: answers once its client is disconnected")
a = req("export-remove", { name = "vm1", mode = "sideways" })
t.like(err_of(a), "Parameter 'mode' expects safe or hard", "export-remove with a bad mode")

-- A client that leaves while its command runs: the server carries on.
local c2 = bh.control.connect(ctl, 30)
c2:send('{"execute": "slow"}')
c2:close()
a = req("query-exports")
t.ok(a["return"] and #a["return"] >= 1, "a client that disconnects mid-command: the server still answers others")

-- 1,000 requests on one connection, sent at once, answered in order.
local c3 = bh.control.connect(ctl, 60)
local lines = {}
for i = 1, 1000 do lines[i] = ('{"execute": "query-clients", "id": %d}'):format(i) end
c3:send(table.concat(lines, "\n"))
local in_order = true
for i = 1, 1000 do
  local ans = dkjson.decode(c3:receive())
  if not ans or ans.id ~= i or not ans["return"] then in_order = false; break end
end
c3:close()
t.ok(in_order, "1,000 requests on one connection: 1,000 answers, in order")

-- A failing timer callback was reported and the loop went on.
local ticks = req("ticks")["return"].ticks
t.ok(ticks and ticks > 1, "a timer callback that raised did not stop the other timers")
local log = t.sh("cat " .. t.shq(dir .. "/server.log"))
t.ok(log:match("timer callback failed.*timer boom %(on purpose%).*stack traceback"),
     "a failing timer callback is reported with its traceback")
t.like(t.sh("qemu-io -f raw -c 'read 0 4k' " .. t.shq("nbd+unix:///vm1?socket=" .. nbd)),
       "read 4096/4096", "after the failed callback the export still serves reads")

-- Reverting a served image.
a = req("apply", { name = "second" })
t.like(err_of(a), "is exported; reverting it would change the data", "snapshot_apply on a served node is refused without force")
connected = hold_client("vm1", 8000, "apply")
a = req("apply", { name = "second", force = true })
t.ok(connected and a["return"] ~= nil and clients_of("vm1") == 0,
     "snapshot_apply {force=true} with a client connected: the client is disconnected, then the revert is done")
a = req("loadvm", { name = "second" })
t.like(err_of(a), "is exported; reverting", "loadvm with a served image open is refused without force")

-- blkhost ctl.
local out, code = t.sh(env .. t.shq(BLKHOST) .. " ctl " .. t.shq(ctl) .. " query-exports")
t.ok(code == 0 and out:match("name=vm1 ") and out:match("format=qcow2"), "blkhost ctl query-exports: one line per export, key=value")
out, code = t.sh(env .. t.shq(BLKHOST) .. " ctl " .. t.shq(ctl) .. " query-exports --output=json")
local j = dkjson.decode(out)
t.ok(code == 0 and j and j["return"][1].name == "vm1", "blkhost ctl --output=json: the answer line")
out, code = t.sh(env .. t.shq(BLKHOST) .. " ctl " .. t.shq(ctl) .. " rotate prefix=c- keep.last=1 dry_run=true")
t.ok(code == 0 and out:match("^create c%-") and out:match("dry run: nothing was changed"),
     "blkhost ctl rotate with dotted keep.last=1 and dry_run=true: the plan lines")
out, code = t.sh(env .. t.shq(BLKHOST) .. " ctl " .. t.shq(ctl) .. " snapshot-delete export=vm1 name=never")
t.ok(code == 1 and out:match("NotFound: export 'vm1' has no snapshot"), "blkhost ctl: an error answer exits 1 with class and desc")
out, code = t.sh(env .. t.shq(BLKHOST) .. " ctl " .. t.shq(dir .. "/nothing.sock") .. " query-exports")
t.ok(code == 1 and out:match("cannot connect"), "blkhost ctl: a socket nobody listens on")
out, code = t.sh(env .. t.shq(BLKHOST) .. " ctl " .. t.shq(ctl) .. " query-exports junk")
t.ok(code == 1 and out:match("KEY=VALUE"), "blkhost ctl: an argument without = is a usage error")

-- listen's path checks, in this process.
local plain = dir .. "/plain"
io.open(plain, "w"):close()
t.error_like(function() bh.control.listen("unix:" .. plain, { register = false }) end,
             "exists and is not a socket", "listen on an existing regular file is refused")
t.error_like(function() bh.control.listen("unix:" .. ctl, { register = false }) end,
             "in use by a running server", "listen on a socket a server answers on is refused")
local stale = dir .. "/stale.sock"
local tmp = bh.control.socket(stale, function() end)
-- A socket file whose server is gone: bind again without closing (which
-- would remove it), by leaving the file and dropping the listener fd.
os.execute("cp -a " .. t.shq(stale) .. " " .. t.shq(stale .. ".keep"))
tmp:close()
os.rename(stale .. ".keep", stale)
local ok, srv = pcall(bh.control.listen, "unix:" .. stale, { register = false })
t.ok(ok, "listen over a stale socket file replaces it" .. (ok and "" or ": " .. tostring(srv)))
if ok then srv:close() end
t.error_like(function() bh.control.listen("tcp:1.2.3.4:5") end, 'expected "unix:PATH"',
             "listen on anything but unix:PATH is refused")

-- quit.
a = req("quit")
t.ok(a["return"] ~= nil, "quit: answered before the server goes")
conn:close()
local gone = false
for _ = 1, 100 do
  if not exists("/proc/" .. pid) or t.sh("cat /proc/" .. pid .. "/stat 2>/dev/null"):match("^%d+ %b() Z") then
    gone = true; break
  end
  os.execute("sleep 0.05")
end
t.ok(gone and not exists(ctl), "after quit the server exits and removes its control socket")
t.ok(not exists(dir .. "/run/blkhost/" .. pid .. ".json"), "after quit its registry entry is gone")
if not gone then os.execute("kill " .. pid) end
t.done()
