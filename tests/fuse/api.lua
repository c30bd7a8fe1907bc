-- SPDX-License-Identifier: BSD-3-Clause
-- bh.fuse.export from Lua: the handle (tostring, uri, status, stop,
-- <close>), I/O through the mounted file reaching the node and back,
-- read-only exports, windows that cannot be truncated (EPERM), a
-- directory mount point, bh.loop() ending when the mount is removed
-- from outside, and the errors: unknown option, missing or busy mount
-- point.  The file is read by this same process (the export's worker
-- threads answer while the main thread waits) and by child processes.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/lua/?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"

local have = false
for _, p in ipairs(bh.plugins()) do
  if p.name == "fuse" and not p.error then have = true end
end
if not have then
  print("1..0 # SKIP the fuse plugin was not built (libfuse3-dev was missing)")
  os.exit(0)
end
local dev = io.open("/dev/fuse", "rb")
if not dev then
  print("1..0 # SKIP no /dev/fuse on this machine")
  os.exit(0)
end
dev:close()

local dir = t.tmpdir()
local function touch(p) local f = assert(io.open(p, "w")); f:close(); return p end

local function mounted(path)
  local real = bh.process.realpath(path)
  for line in io.lines("/proc/self/mountinfo") do
    local mp = line:match("^%S+ %S+ %S+ %S+ (%S+)")
    if mp == real then return true end
  end
  return false
end

local function slurp(path, off, n)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  f:seek("set", off or 0)
  local s = f:read(n or "a")
  f:close()
  return s
end

local mem = bh.open(nil, { format = "memory", size = "4M" })
mem:write(0, "hello fuse")
local mp = touch(dir .. "/mem.img")

t.error_like(function() bh.fuse.export(mem, mp, { bogus = 1 }) end,
             "unknown option 'bogus'", "bh.fuse.export: an unknown option is refused, named")
t.error_like(function() bh.fuse.export(mem, dir .. "/nope") end,
             "mount point '.*/nope': No such file or directory",
             "bh.fuse.export: a missing mount point is refused with ENOENT's message")
t.ok(not mounted(mp), "nothing is left mounted after a refused export")

-- Mounting needs privileges the test machine may not grant: skip the
-- rest, saying why, when the first mount fails for that reason.
local ok, e = pcall(bh.fuse.export, mem, mp)
if not ok then
  if tostring(e):match("cannot mount FUSE") then
    t.skip("mounting is not permitted here: " .. tostring(e))
    t.done()
    return
  end
  error(e)
end
t.ok(mounted(mp), "bh.fuse.export(node, FILE) mounts FILE (mountinfo)")
t.like(tostring(e), "^blkhost%.fuse%(.*mem%.img%)$", "tostring names the mount point")
t.is(e:uri(), mp, "exp:uri() is the path to open")
t.is(slurp(mp, 0, 10), "hello fuse", "this process reads the node's bytes through the file")
local st = e:status()
t.is(st.state, "running", "status: state running")
t.ok(st.threads >= 2, "status: a parallel node (memory) gets several request threads (" ..
     tostring(st.threads) .. ")")

local f = assert(io.open(mp, "r+b"))
f:seek("set", 1048576)
f:write("written through the file")
f:close()
t.is(mem:read(1048576, 24), "written through the file",
     "a write through the file reaches the node before close returns")
local out, code = t.sh("stat -c %s " .. t.shq(mp))
t.is(out, "4194304\n", "stat in a child process: the node's 4 MiB")
out, code = t.sh("printf 'hello fuse' | cmp -n 10 " .. t.shq(mp) .. " -")
t.is(code, 0, "cmp in a child process sees the same bytes")
mem:write(8192, "from lua")
t.is(slurp(mp, 8192, 8), "from lua", "a write from Lua is seen by the next open of the file")
st = e:status()
t.ok(st["bytes-written"] >= 24 and st.requests > 0, "status counts requests and bytes written")

t.error_like(function() bh.fuse.export(mem, mp) end, "already a mount point",
             "a second export on a mounted file is refused: already a mount point")

e:stop()
t.ok(not mounted(mp), "exp:stop() unmounts")
t.is(e:status().state, "stopped", "status after stop: stopped")
t.lives(function() e:stop() end, "a second stop does nothing")
e:close()

-- <close> unmounts at the end of the scope.
do
  local x <close> = bh.fuse.export(mem, mp, { readonly = true })
  t.ok(mounted(mp), "a read-only export mounts")
  local fh, err = io.open(mp, "r+b")
  t.ok(not fh and tostring(err):match("Read%-only file system"),
       "read-only: opening for writing fails with EROFS (" .. tostring(err) .. ")")
  out = t.sh("stat -c %a " .. t.shq(mp))
  t.is(out, "400\n", "read-only: the file's mode is 0400")
end
t.ok(not mounted(mp), "<close> on the handle unmounts at the end of the scope")

-- A window of fixed size cannot change it: truncate gets EPERM, as
-- truncate(2) says.
local img = dir .. "/win.raw"
bh.create(img, { size = "2M" })
local disk <close> = bh.open(img, { format = "raw" })
disk:write(1048576, "window start")
local win = disk:window { offset = 1048576, size = 524288 }
local wm = touch(dir .. "/win.mnt")
do
  local x <close> = bh.fuse.export(win, wm)
  t.is(slurp(wm, 0, 12), "window start", "a window exports its own range")
  out, code = t.sh("truncate -s 256K " .. t.shq(wm))
  t.ok(code ~= 0 and out:match("Operation not permitted"),
       "truncate on a window fails with EPERM (" .. out:gsub("\n", "") .. ")")
end

-- A directory mount point holds the export as one file.
local dm = dir .. "/d"
os.execute("mkdir " .. t.shq(dm))
do
  local x <close> = bh.fuse.export(mem, dm, { name = "vm.img" })
  t.is(x:uri(), dm .. "/vm.img", "over a directory, exp:uri() is the file in it")
  t.is(slurp(x:uri(), 0, 10), "hello fuse", "the file in the directory reads the node")
  out = t.sh("ls " .. t.shq(dm))
  t.is(out, "vm.img\n", "the directory lists the one file")
end
t.error_like(function() bh.fuse.export(mem, dm, { name = "a/b" }) end, "bad file name 'a/b'",
             "a file name with a slash is refused")

-- bh.loop() returns once the mount is taken away from outside.
do
  local x <close> = bh.fuse.export(mem, mp)
  out, code = t.sh("umount " .. t.shq(mp) .. " || fusermount3 -u " .. t.shq(mp))
  t.is(code, 0, "umount from outside succeeds")
  t.is(bh.loop(), 0, "bh.loop() returns when the export's mount is removed from outside")
  t.is(x:status().state, "stopped", "status then says stopped")
end
t.ok(not mounted(mp), "nothing is left mounted")
t.done()
