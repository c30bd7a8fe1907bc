-- SPDX-License-Identifier: BSD-3-Clause
-- log: one parseable line per request with its result.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/filters/?.lua;" .. package.path
local lib = require "lib"
local t, bh = lib.t, lib.bh
local dir = t.tmpdir()
local m <close> = lib.memdisk(1048576, 8)
local path = dir .. "/io.log"
do
  local e = bh.filter("error", m, { op = "trim", error = "ENOSPC", discard = "unmap" })
  local l <close> = bh.filter("log", e, { file = path, discard = "unmap" })
  e:close()
  l:write(4096, "abcd", { fua = true })
  l:read(0, 512)
  l:zero(8192, 4096, { may_unmap = true })
  l:flush()
  pcall(l.discard, l, 0, 4096)
  l:extents(0, 65536)
end
local lines = lib.lines(path)
local pat = "^(%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+Z) id=(%d+) (%a+)(.-) flags=(%S+) "
            .. "elapsed=([%d%.]+) return=(.*)$"
local parsed, all = {}, true
for _, l in ipairs(lines) do
  local ts, id, op, range, flags, el, ret = l:match(pat)
  if not ts then all = false; t.diag("unparsed: " .. l) end
  parsed[#parsed + 1] = { id = tonumber(id), op = op, range = range, flags = flags, ret = ret }
end
t.ok(#lines >= 6 and all, "log: every line parses as time id op [offset count] flags elapsed return ("
     .. #lines .. " lines)")
t.is(parsed[1].op .. parsed[1].range .. " " .. parsed[1].flags .. " " .. parsed[1].ret,
     "Write offset=0x1000 count=0x4 fua 0", "log: a FUA write: offset, count in hex, flags=fua, return=0")
t.is(parsed[2].op .. parsed[2].range, "Read offset=0x0 count=0x200", "log: a read")
t.is(parsed[3].op .. " " .. parsed[3].flags, "Zero may_trim", "log: a zero with may_trim")
t.is(parsed[4].op .. parsed[4].range, "Flush", "log: a flush has no range")
t.like(parsed[5].op .. " " .. parsed[5].ret, "^Trim %-28 %(ENOSPC: .*injected ENOSPC",
       "log: a failed trim logs -errno, its name and the message")
t.is(parsed[6].op, "Extents", "log: block status is logged as Extents")
local ids = true
for i, p in ipairs(parsed) do ids = ids and p.id == i end
t.ok(ids, "log: requests are numbered 1, 2, ... in order")
do
  local l <close> = bh.filter("log", m, { file = path })
  l:read(0, 1)
end
t.is(#lib.lines(path), #lines + 1, "log: a second node appends to the file")
t.error_like(function() bh.filter("log", m, {}) end, "log: option file=PATH .* is required",
             "log: no file= refused")
t.error_like(function() bh.filter("log", m, { file = dir .. "/no/such/dir/x" }) end,
             "log: cannot open '.*no/such/dir/x'", "log: an unwritable file= refused, named")
t.done()
