-- SPDX-License-Identifier: BSD-3-Clause
-- Filters under the FUSE export (the other frontend a test can mount):
-- cp of the mounted file gives the image's bytes through cache and
-- blocksize, and an error filter's errno reaches a reader (cat: EIO).
package.path = os.getenv("SOURCE_ROOT") .. "/tests/filters/?.lua;" .. package.path
local lib = require "lib"
local t, bh = lib.t, lib.bh
local have = false
for _, p in ipairs(bh.plugins()) do
  if p.name == "fuse" and not p.error then have = true end
end
local dev = io.open("/dev/fuse", "rb")
if not have or not dev then
  print("1..0 # SKIP " .. (have and "no /dev/fuse on this machine" or "the fuse plugin was not built"))
  os.exit(0)
end
dev:close()
local dir = t.tmpdir()
local function touch(p) local f = assert(io.open(p, "w")); f:close(); return p end

local m <close> = lib.memdisk(1048576, 21)
local want = m:read(0, 1048576)
local d <close> = bh.filter("blocksize", bh.filter("cache", m, { size = "128K" }), { minblock = 4096 })
local mp = touch(dir .. "/disk.img")
local ok, e = pcall(bh.fuse.export, d, mp)
if not ok then
  if tostring(e):match("cannot mount FUSE") then
    t.skip("mounting is not permitted here: " .. tostring(e))
    t.done()
    return
  end
  error(e)
end
local out, code = t.sh("cp " .. t.shq(mp) .. " " .. t.shq(dir .. "/copy"))
t.is(code, 0, "cp of a FUSE export over cache and blocksize succeeds")
t.ok(lib.slurp(dir .. "/copy") == want, "and the copy holds the image's bytes")
out, code = t.sh("printf 'through fuse' | dd of=" .. t.shq(mp) .. " bs=1 seek=5000 conv=notrunc status=none")
t.is(d:read(5000, 12), "through fuse", "an unaligned write through the mounted file lands through the filters")
e:stop()

local bad <close> = bh.filter("error", m, { op = "read", start = "512K", ["end"] = "516K" })
local mp2 = touch(dir .. "/bad.img")
local e2 = bh.fuse.export(bad, mp2)
out, code = t.sh("dd if=" .. t.shq(mp2) .. " bs=4096 count=1 status=none | wc -c")
t.is(out, "4096\n", "a read outside the error range through FUSE works")
out, code = t.sh("dd if=" .. t.shq(mp2) .. " bs=4096 skip=128 count=1 status=none")
t.ok(code ~= 0 and out:find("Input/output error"), "a read in the range gets EIO through FUSE (" .. out:gsub("\n", " ") .. ")")
e2:stop()
t.done()
