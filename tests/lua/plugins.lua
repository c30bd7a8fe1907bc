-- SPDX-License-Identifier: BSD-3-Clause
-- bh.plugins() and bh.plugin.load(): the built-in drivers are listed with
-- their fields; loading a missing or non-ELF file is a Lua error naming
-- the file; an unknown frontend is refused naming the available ones.
package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"

local list = bh.plugins()
t.ok(type(list) == "table" and #list >= 4, "bh.plugins() lists at least 4 plugins")
local by_name = {}
for _, p in ipairs(list) do
  if p.name then by_name[p.name] = p end
end
for _, name in ipairs({ "raw", "file", "null", "memory" }) do
  local p = by_name[name]
  t.ok(p and p.kind == "driver" and not p.error, "driver '" .. name .. "' is loaded")
end
local raw = by_name.raw or {}
t.ok(type(raw.version) == "string" and raw.version ~= "", "raw has a version")
t.like(raw.path, "raw%.so$", "raw's path ends in raw.so")
t.ok(type(raw.description) == "string" and raw.description ~= "", "raw has a description")
t.ok(type(bh.plugin.search_path()) == "table" and #bh.plugin.search_path() >= 1, "bh.plugin.search_path() lists directories")

local dir = t.tmpdir()
t.error_like(function() bh.plugin.load(dir .. "/nothere.so") end, "nothere%.so",
             "bh.plugin.load of a missing file is refused, naming it")
local txt = dir .. "/notelf.so"
local f = io.open(txt, "w")
f:write("this is not an ELF file\n")
f:close()
t.error_like(function() bh.plugin.load(txt) end, "notelf%.so",
             "bh.plugin.load of a text file is refused, naming it")
local refused = false
for _, p in ipairs(bh.plugins()) do
  if p.path and p.path:find("notelf%.so$") and p.error then refused = true end
end
t.ok(refused, "the refused file shows up in bh.plugins() with its error")
t.error_like(function() bh.plugin.load() end, "string expected", "bh.plugin.load() without a path refused")

t.error_like(function() bh.frontend("no-such-frontend", {}) end, "no%-such%-frontend",
             "bh.frontend with an unknown name refused, naming it")
t.ok(type(bh.loop) == "function" and type(bh.quit) == "function", "bh.loop and bh.quit exist")

t.done()
