-- SPDX-License-Identifier: BSD-3-Clause
-- Test helper run inside the VM: drives bh.nbd the way a user script does.
--   nbdctl.lua connect DEV key=value...   attach (image=PATH [format=F] or
--                                         uri=URI, plus bh.nbd.connect
--                                         options); prints "READY <size>"
--                                         and serves until disconnected
--   nbdctl.lua serve SOCKET IMAGE        an NBD server (export "") on SOCKET;
--                                        prints CONNECT for each client
--   nbdctl.lua handles DEV IMAGE         handle methods in one process;
--                                        prints "ok WHAT" / "not ok WHAT"
--   nbdctl.lua disconnect DEV
--   nbdctl.lua devices                   one line per device
--   nbdctl.lua list URI                  one export name per line
local bh = require "blkhost"
local cmd = arg[1]

local function value(v)
  if v == "true" then return true elseif v == "false" then return false end
  return math.tointeger(tonumber(v)) or v
end

if cmd == "connect" then
  local t, open = { device = arg[2] }, {}
  for i = 3, #arg do
    local k, v = arg[i]:match("^([%w_]+)=(.*)$")
    if k == "image" then open.path = v
    elseif k == "format" then open.format = v
    elseif k == "readonly" then open.readonly = value(v); t.readonly = value(v)
    else t[k] = value(v) end
  end
  if open.path then
    t.export = bh.open(open.path, { format = open.format, readonly = open.readonly })
  end
  local dev = bh.nbd.connect(t)
  local st = dev:status()
  print(("READY %d pid=%d interface=%s backend=%s"):format(st.size, st.pid,
        st.interface, st.backend))
  io.stdout:flush()
  bh.loop()
  print("DONE")
elseif cmd == "serve" then
  local srv = bh.nbd.server{ listen = { "unix:" .. arg[2] }, persistent = true,
    on_connect = function() print("CONNECT"); io.stdout:flush() end }
  srv:export(bh.open(arg[3]), { name = "", description = "vm test disk" })
  print("READY")
  io.stdout:flush()
  bh.loop()
elseif cmd == "handles" then
  -- Handle methods within one process: status, disconnect twice, and a
  -- collected handle that leaves its device attached.
  local dev, img = arg[2], bh.open(arg[3], { format = "raw" })
  local function check(c, what) print((c and "ok " or "not ok ") .. what) end
  local d = bh.nbd.connect{ device = dev, export = img }
  check(d:status().connected == true, "status().connected after connect")
  check(d:device() == dev, "device() names the device")
  check(os.execute("dd if=/dev/zero of=" .. dev .. " bs=4096 count=16 oflag=direct status=none"),
        "dd into the device served by this same process")
  check(d:status()["bytes-written"] >= 65536, "status() counts bytes written")
  d:disconnect()
  check(d:status().connected == false, "status().connected after disconnect")
  check(not pcall(d.disconnect, d), "a second disconnect raises an error")
  do local d2 = bh.nbd.connect{ device = dev, export = img } end
  collectgarbage(); collectgarbage()
  check(io.open("/sys/block/" .. dev:match("nbd%d+") .. "/pid") ~= nil,
        "a collected handle leaves the device attached")
  bh.nbd.disconnect(dev)
  check(io.open("/sys/block/" .. dev:match("nbd%d+") .. "/pid") == nil,
        "bh.nbd.disconnect ends a device of this process")
  local r = bh.nbd.connect{ device = dev, export = img, readonly = true, timeout = 30 }
  local sys = "/sys/block/" .. dev:match("nbd%d+")
  check(io.open(sys .. "/ro"):read("l") == "1", "readonly=true: the kernel shows ro=1")
  check(io.open(sys .. "/queue/io_timeout"):read("l") == "30000",
        "timeout=30: the kernel's I/O timeout is 30000 ms")
  check(not os.execute("dd if=/dev/zero of=" .. dev .. " bs=4096 count=1 oflag=direct status=none 2>/dev/null"),
        "readonly=true: writing to the device fails")
  r:disconnect()
  check(io.open(sys .. "/pid") == nil, "the read-only device disconnects")
elseif cmd == "disconnect" then
  bh.nbd.disconnect(arg[2])
elseif cmd == "devices" then
  for _, d in ipairs(bh.nbd.devices()) do
    print(d.device, d.connected, d.size, d.pid, d.backend)
  end
elseif cmd == "list" then
  for _, e in ipairs(bh.nbd.list(arg[2])) do print(e.name, e.description) end
else
  error("usage: nbdctl.lua connect|serve|disconnect|devices|list ...")
end
