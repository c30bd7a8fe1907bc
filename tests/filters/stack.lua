-- SPDX-License-Identifier: BSD-3-Clause
-- Stacking: filters= order (first innermost), bh.filter over any node,
-- filters under and over windows and under a format (file.driver=), and
-- the refusals of bad stacks.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/filters/?.lua;" .. package.path
local lib = require "lib"
local t, bh = lib.t, lib.bh
local dir = t.tmpdir()
local function count(path, pat)
  local n = 0
  for l in io.lines(path) do if l:find(pat) then n = n + 1 end end
  return n
end

do
  local outer, inner = dir .. "/outer.log", dir .. "/inner.log"
  local d <close> = bh.open(nil, { format = "memory", size = "1M",
    filters = { { "error", op = "read", error = "ENOSPC" }, { "log", file = outer } } })
  t.is(d:format(), "log", "filters=: the last filter is the top node")
  pcall(d.read, d, 0, 512)
  t.is(count(outer, "Read .*return=%-28 %(ENOSPC"), 1,
       "filters={error, log}: the log over the error filter sees the failed read")
  local e <close> = bh.open(nil, { format = "memory", size = "1M",
    filters = { { "log", file = inner }, { "error", op = "read" } } })
  t.ok(not pcall(e.read, e, 0, 512), "filters={log, error}: the read fails")
  t.is(count(inner, "Read"), 0, "filters={log, error}: the log under the error filter never sees it")
end

do
  local m <close> = lib.memdisk(1048576, 12)
  local w <close> = m:window{ offset = 4096, size = 65536 }
  local f <close> = bh.filter("delay", w, { rdelay = "0" })
  t.is(f:size(), 65536, "a filter over a window has the window's size")
  t.is(f:read(0, 16), m:read(4096, 16), "a filter over a window reads the window's bytes")
  local g <close> = bh.filter("log", m, { file = dir .. "/w.log" })
  local gw <close> = g:window{ offset = 8192 }
  t.is(gw:read(0, 16), m:read(8192, 16), "a window over a filter reads through it")
  t.is(count(dir .. "/w.log", "Read offset=0x2000 count=0x10"), 1,
       "the window's read went through the filter at the window's offset")
end

do
  local img = dir .. "/f.img"
  bh.create(img, { format = "raw", size = "1M" })
  local lf = dir .. "/file.log"
  do
    local d <close> = bh.open(img, { format = "raw", file = { driver = "log", file = lf } })
    d:write(0, "through the file filter")
  end
  t.is(lib.slurp(img):sub(1, 23), "through the file filter",
       "file.driver=log stacks a filter under a format and the data lands")
  t.ok(count(lf, "Write offset=0x0 count=0x17") == 1,
       "file.driver=log logs the format's writes to its file")

  t.error_like(function() bh.open(img, { filters = { { "nosuchfilter" } } }) end,
               "unknown format 'nosuchfilter'", "filters={{\"nosuchfilter\"}} refused")
  t.error_like(function() bh.open(img, { filters = { { "raw" } } }) end,
               "raw is not a filter", "a driver that is not a filter refused as one")
  t.error_like(function() bh.open(img, { filters = { { 42 } } }) end,
               "filters%[1%] must be", "a filter spec without a name refused")
  t.error_like(function() bh.open(img, { filters = "log" }) end,
               "filters must be a list", "filters= that is not a list refused")
  t.error_like(function() bh.open(img, { filters = { { "delay", rdelay = "1ms" }, { "delay", bogus = 1 } } }) end,
               "bogus", "an unknown option of the second filter refused")
  t.lives(function() local d <close> = bh.open(img, { locking = true }); d:write(0, "x") end,
          "after the refusals the image is closed again (it opens writable, locked)")
  local n = bh.open(img)
  n:close()
  t.error_like(function() bh.filter("log", n, { file = lf }) end, "closed",
               "bh.filter over a closed node refused")
end
t.done()
