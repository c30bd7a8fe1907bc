-- SPDX-License-Identifier: BSD-3-Clause
-- bh.driver.register and driver files in one process: a driver any node
-- opens, its options, errors raised in Lua as errno plus message, and
-- the registrations the core or the binding refuses, with the reason.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/lua/?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"

local dir = t.tmpdir()
local seen_opts
local closed = 0
local rec = bh.driver.register {
  name = "luamem",
  open = function(opts)
    seen_opts = opts
    return { size = math.tointeger(tonumber(opts.size)), blocks = {} }
  end,
  close = function(h) closed = closed + 1 end,
  get_size = function(h) return h.size end,
  pread = function(h, count, offset)
    if offset >= 65536 then error("plain failure at " .. offset) end
    local s = {}
    for i = 0, count - 1 do s[#s + 1] = h.blocks[offset + i] or "\0" end
    return table.concat(s)
  end,
  pwrite = function(h, buf, offset)
    if offset >= 32768 then error({ errno = "ENOSPC", msg = "luamem is full" }) end
    for i = 1, #buf do h.blocks[offset + i - 1] = buf:sub(i, i) end
  end,
}
t.is(rec.name, "luamem", "register: returns the record's name")
t.is(rec.path, "lua:luamem", "register: recorded under the pseudo path lua:NAME")

local n = bh.open(nil, { format = "luamem", size = 131072, colour = "blue" })
t.is(n:size(), 131072, "open: get_size gives the node's size")
t.is(seen_opts.colour, "blue", "open: options other than the core's reach open(opts)")
t.is(seen_opts.readonly, false, "open: opts.readonly says how the node was opened")
n:write(100, "hello lua driver")
t.is(n:read(100, 16), "hello lua driver", "pread returns what pwrite stored")
t.is(n:read(0, 4), "\0\0\0\0", "unwritten bytes read as zeros")
t.error_like(function() n:write(40000, "x") end, "luamem is full",
             "error{errno='ENOSPC', msg=} in pwrite reaches the caller with its message")
t.error_like(function() n:read(70000, 10) end, "plain failure at 70000",
             "a plain error() in pread reaches the caller with its message")
t.is(n:read(100, 5), "hello", "the driver keeps working after its errors")
n:close()
t.is(closed, 1, "node:close() calls the driver's close(h)")

local found
for _, p in ipairs(bh.plugins()) do
  if p.name == "luamem" then found = p end
end
t.ok(found and found.kind == "driver" and not found.error,
     "bh.plugins() lists the registered Lua driver as a driver")

local function f() end
t.error_like(function() bh.driver.register { name = "a", get_size = f, pread = f } end,
             "Lua driver a has no open function", "registration without open refused, naming it")
t.error_like(function() bh.driver.register { name = "b", open = f, pread = f } end,
             "Lua driver b has no get_size function", "registration without get_size refused, naming it")
t.error_like(function() bh.driver.register { name = "c", open = f, get_size = f } end,
             "Lua driver c has no pread function", "registration without pread refused, naming it")
t.error_like(function()
  bh.driver.register { name = "d", open = f, get_size = f, pread = f, thread_model = "wild" }
end, "unknown thread_model 'wild' %(expected serialize or parallel%)",
  "unknown thread_model refused, naming it and the choices")
t.error_like(function()
  bh.driver.register { name = "luamem", open = f, get_size = f, pread = f }
end, "duplicate plugin name 'luamem'", "a second driver with the same name refused")
t.error_like(function()
  bh.driver.register { name = "raw", open = f, get_size = f, pread = f }
end, "duplicate plugin name 'raw'", "a Lua driver cannot take a C driver's name")
t.error_like(function()
  bh.driver.register { name = "Bad Name", open = f, get_size = f, pread = f }
end, "invalid plugin name 'Bad Name'", "the loader's name check applies to Lua drivers")
t.error_like(function()
  bh.driver.register { name = "p", open = f, get_size = f, pread = f, thread_model = "parallel" }
end, "needs a driver file", "parallel from a script refused: it needs a file each thread loads")
t.error_like(function() bh.driver.register { open = f, get_size = f, pread = f } end,
             "needs name=", "registration without a name refused")
t.error_like(function()
  bh.driver.register { name = "e", open = f, get_size = f, pread = "nope" }
end, "pread= must be a function", "a callback that is not a function refused")

-- can_fua: pwrite gets the FUA flag; without it the core flushes instead.
local function fua_driver(name, can)
  local log = {}
  bh.driver.register {
    name = name, can_fua = can,
    open = function() return {} end,
    get_size = function() return 65536 end,
    pread = function(h, c) return string.rep("\0", c) end,
    pwrite = function(h, buf, off, fua) log[#log + 1] = "pwrite fua=" .. tostring(fua) end,
    flush = function() log[#log + 1] = "flush" end,
  }
  local node = bh.open(nil, { format = name })
  node:write(0, "x", { fua = true })
  node:close()
  return table.concat(log, ",")
end
t.is(fua_driver("fuayes", true), "pwrite fua=true",
     "can_fua=true: a FUA write reaches pwrite with fua=true and no flush")
t.like(fua_driver("fuano", false), "^pwrite fua=false,flush",
       "without can_fua: pwrite gets fua=false and the core flushes after it")

-- extents: holes and zeros as the list says, for node:extents and block status.
bh.driver.register {
  name = "holey",
  open = function() return {} end,
  get_size = function() return 131072 end,
  pread = function(h, c) return string.rep("\0", c) end,
  extents = function(h, count, offset)
    if offset < 65536 then
      return { { length = 65536 - offset, hole = false, zero = false } }
    end
    return { { length = count, hole = true, zero = true } }
  end,
}
local hn = bh.open(nil, { format = "holey", readonly = true })
local ex = hn:extents(0, 131072)
t.is(#ex, 2, "extents: two areas from the driver's list")
t.ok(ex[2] and ex[2].offset == 65536 and ex[2].zero and not ex[1].zero,
     "extents: the second half is a zero hole, the first data")
hn:close()

-- Driver files: bh.plugin.load("x.lua").
local function write(path, text)
  local fh = assert(io.open(path, "w")); fh:write(text); fh:close()
end
write(dir .. "/noread.lua", 'return { name = "noread", open = function() end, get_size = function() return 0 end }')
t.error_like(function() bh.plugin.load(dir .. "/noread.lua") end, "noread has no pread",
             "a driver file without pread refused with the reason")
write(dir .. "/notable.lua", 'return 42')
t.error_like(function() bh.plugin.load(dir .. "/notable.lua") end, "must return its registration table",
             "a driver file that returns no table refused with the reason")
write(dir .. "/syntax.lua", 'return {')
t.error_like(function() bh.plugin.load(dir .. "/syntax.lua") end, "syntax.lua",
             "a driver file with a syntax error refused, naming the file")
local p = bh.plugin.load(os.getenv("SOURCE_ROOT") .. "/examples/drivers/pattern.lua")
t.is(p.thread_model, "parallel", "bh.plugin.load(pattern.lua) registers a parallel driver")
t.like(p.path, "pattern%.lua$", "a driver file's record has the file as its path")
local pat = bh.open(nil, { format = "pattern", size = "64K", readonly = true })
t.is(table.concat({ pat:read(8, 4):byte(1, 4) }, ","), "9,8,11,10", "pattern.lua: bytes are (off // 8 ~ off) & 0xff")
t.error_like(function() bh.open(nil, { format = "pattern", size = "64K" }) end, "no pwrite",
             "a driver without pwrite opens read-only only")
pat:close()
t.done()
