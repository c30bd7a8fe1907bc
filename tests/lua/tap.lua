-- SPDX-License-Identifier: BSD-3-Clause
-- TAP for Lua tests run by `blkhost run tests/lua/NAME.lua`.
--
--   package.path = arg[0]:match("(.-)[^/]*$") .. "?.lua;" .. package.path
--   local t = require "tap"
--   t.plan(3)                     -- or leave out and t.done() prints it
--   t.ok(cond, "desc")
--   t.is(got, want, "desc")
--   t.like(str, "lua pattern", "desc")
--   t.error_like(fn, "lua pattern", "desc")  -- fn must raise a match
--   t.lives(fn, "desc")                      -- fn must not raise
--   local dir = t.tmpdir()        -- scratch dir, removed by t.done()
--   t.done()                      -- exits 0 if all passed, 1 otherwise

local t = {}

local n, failed, planned = 0, 0, nil
local tmpdirs = {}

local function remove_tmpdirs()
  for _, d in ipairs(tmpdirs) do
    os.execute("rm -rf '" .. d:gsub("'", "'\\''") .. "'")
  end
  tmpdirs = {}
end
-- A script that dies before t.done() still cleans up: blkhost closes the
-- Lua state on every exit path, which runs this finalizer.
t._cleanup = setmetatable({}, { __gc = remove_tmpdirs })

local function diag(msg)
  for line in (tostring(msg) .. "\n"):gmatch("(.-)\n") do
    io.stdout:write("# ", line, "\n")
  end
end
t.diag = diag

function t.plan(count)
  planned = count
  io.stdout:write("1..", count, "\n")
end

function t.ok(cond, desc)
  n = n + 1
  if cond then
    io.stdout:write("ok ", n, " - ", desc, "\n")
  else
    failed = failed + 1
    io.stdout:write("not ok ", n, " - ", desc, "\n")
    diag(debug.traceback("failed here", 2))
  end
  io.stdout:flush()
  return cond and true or false
end

function t.skip(desc)
  n = n + 1
  io.stdout:write("ok ", n, " - # SKIP ", desc, "\n")
end

local function show(v)
  if type(v) == "string" then
    if #v > 64 then v = v:sub(1, 64) .. "..." end
    return string.format("%q", v)
  end
  return tostring(v)
end

function t.is(got, want, desc)
  local r = t.ok(got == want, desc)
  if not r then diag("got:  " .. show(got) .. "\nwant: " .. show(want)) end
  return r
end

function t.like(got, pattern, desc)
  local r = t.ok(type(got) == "string" and got:find(pattern) ~= nil, desc)
  if not r then diag("got:  " .. show(got) .. "\nwant match for: " .. pattern) end
  return r
end

-- fn must raise an error whose message matches pattern; returns the message.
function t.error_like(fn, pattern, desc)
  local ok, err = pcall(fn)
  if ok then
    t.ok(false, desc)
    diag("no error was raised; wanted one matching: " .. pattern)
    return nil
  end
  t.like(tostring(err), pattern, desc)
  return tostring(err)
end

function t.lives(fn, desc)
  local ok, err = pcall(fn)
  local r = t.ok(ok, desc)
  if not r then diag("error: " .. tostring(err)) end
  return r
end

function t.tmpdir()
  local p = io.popen("mktemp -d \"${TMPDIR:-/tmp}/blkhost-lua.XXXXXX\"")
  local dir = p:read("l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  tmpdirs[#tmpdirs + 1] = dir
  return dir
end

-- Quote a string for /bin/sh.
function t.shq(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Run a shell command; returns its output (stdout+stderr) and exit status.
-- /usr/bin comes first in PATH, as in tap.sh: Debian's python3 has the
-- libnbd module that nbdsh needs, a pyenv python3 does not.
function t.sh(cmd)
  local p = io.popen("PATH=/usr/bin:$PATH; " .. cmd .. " 2>&1")
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

function t.done()
  remove_tmpdirs()
  if not planned then io.stdout:write("1..", n, "\n") end
  if planned and planned ~= n then
    diag(string.format("planned %d tests but ran %d", planned, n))
    failed = failed + 1
  end
  io.stdout:flush()
  os.exit(failed == 0 and 0 or 1, true)
end

return t
