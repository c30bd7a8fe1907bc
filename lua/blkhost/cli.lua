-- SPDX-License-Identifier: BSD-3-Clause
-- Shared plumbing for the built-in commands (lua/cmd/*.lua): option
-- parsing in the getopt style qemu-img and qemu-nbd use, and a runner that
-- turns errors into one "blkhost NAME: message" line and exit status 1.
--
--   local cli = require "blkhost.cli"
--   return cli.run("info", USAGE, function(args)
--     local o, rest = cli.parse(args, {
--       { "f", "format", arg = "FMT" },          -- -f FMT, -fFMT, --format=FMT
--       { "o", "options", arg = "OPTS", multi = true }, -- repeatable: list
--       { nil, "output", arg = "FMT" },          -- long only
--       { "q", "quiet" },                        -- flag: true
--     })
--     ...
--     return 0
--   end)
--
-- Values land under the long name (or the short one if there is none).
-- "--" ends the options; a lone "-" is a positional argument.  Errors
-- raised with cli.fail(msg) or by blkhost itself print without a
-- traceback and without the locations inside these Lua files
-- (".../lua/cmd/nbd.lua:514: "); `blkhost --debug CMD` or
-- BLKHOST_DEBUG=1 keeps both.
--
-- The global options main.c parsed (`blkhost -q -v --debug CMD`) arrive
-- as package.loaded["blkhost.global"]: -q and -v count as if given to
-- the command (-v only where the command has a --verbose).

local cli = {}

local global = package.loaded["blkhost.global"] or {}
local env_debug = os.getenv("BLKHOST_DEBUG")
cli.debug = global.debug or (env_debug ~= nil and env_debug ~= "" and env_debug ~= "0")
cli.verbose = global.verbose or false
cli.quiet = global.quiet or false

-- msg without the "FILE.lua:LINE: " locations that point into blkhost's
-- Lua library (lua/cmd/*.lua, lua/blkhost/*.lua): errors raised by the C
-- API carry the position of the library line that called it, which says
-- nothing to a user.  Lua shortens long chunk names to ".../tail", so
-- the match is on the tail.  A script's own locations stay.
--
-- It runs in linear time: a message may carry a user's 64 KiB argument,
-- and a pattern starting with a repeated class would be quadratic on it.
function cli.clean(msg)
  msg = tostring(msg)
  local out, pos = {}, 1
  while true do
    local s, e = msg:find("%.lua:%d+: ", pos)
    if not s then break end
    -- The location's path: back from ".lua" to a space or a quote.
    local start = s
    while start > pos and not msg:sub(start - 1, start - 1):find("[%s'\"]") do
      start = start - 1
    end
    local path = msg:sub(start, s - 1)
    if path:find("/cmd/[%w_%-]+$") or path:find("/blkhost/[%w_%-]+$") then
      out[#out + 1] = msg:sub(pos, start - 1)
    else
      out[#out + 1] = msg:sub(pos, e)
    end
    pos = e + 1
  end
  out[#out + 1] = msg:sub(pos)
  return table.concat(out)
end

-- Write "blkhost NAME: message" on stderr when -v was given (to blkhost
-- or to the command).
function cli.note(name, fmt, ...)
  if cli.verbose then
    io.stderr:write("blkhost ", name, ": ", string.format(fmt, ...), "\n")
  end
end

local Usage = {} -- metatable marking usage errors

-- Raise an error that is shown as it is (no position, no traceback).
function cli.fail(msg)
  error(msg, 0)
end

-- Raise a usage error: shown with a hint to run --help.
function cli.usage_error(msg)
  error(setmetatable({ msg = msg }, Usage), 0)
end

local function find_opt(spec, short, long)
  for _, o in ipairs(spec) do
    if (short and o[1] == short) or (long and o[2] == long) then
      return o
    end
  end
  -- Unambiguous prefixes of long names are accepted, as getopt_long does.
  if long then
    local hit
    for _, o in ipairs(spec) do
      if o[2] and o[2]:sub(1, #long) == long then
        if hit then cli.usage_error("option '--" .. long .. "' is ambiguous") end
        hit = o
      end
    end
    return hit
  end
end

local function store(result, o, value)
  local key = o[2] or o[1]
  if o.multi then
    result[key] = result[key] or {}
    table.insert(result[key], value)
  else
    result[key] = value
  end
end

-- Parse args (a list of strings) against spec.  Returns the options table
-- and the list of positional arguments.  Raises a usage error on an
-- unknown option or a missing value.
--
-- Every command takes -q/--quiet (stored as result.quiet, and in
-- cli.quiet for helpers): no status lines or progress on stdout, errors
-- still on stderr.  A spec that lists -q itself keeps its own entry.
function cli.parse(args, spec)
  local result, rest = {}, {}
  if not find_opt(spec, "q", nil) then
    local s = {}
    for i, o in ipairs(spec) do s[i] = o end
    s[#s + 1] = { "q", "quiet" }
    spec = s
  end
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--" then
      for j = i + 1, #args do rest[#rest + 1] = args[j] end
      break
    elseif a:sub(1, 2) == "--" then
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      local o = find_opt(spec, nil, name)
      if not o then cli.usage_error("unknown option '--" .. name .. "'") end
      if o.arg then
        if not value then
          i = i + 1
          value = args[i]
          if not value then
            cli.usage_error("option '--" .. o[2] .. "' needs a value (" .. o.arg .. ")")
          end
        end
        store(result, o, value)
      else
        if value then
          cli.usage_error("option '--" .. o[2] .. "' takes no value")
        end
        store(result, o, true)
      end
    elseif a:sub(1, 1) == "-" and #a > 1 then
      local j = 2
      while j <= #a do
        local c = a:sub(j, j)
        local o = find_opt(spec, c, nil)
        if not o then cli.usage_error("unknown option '-" .. c .. "'") end
        if o.arg then
          local value = a:sub(j + 1)
          if value == "" then
            i = i + 1
            value = args[i]
            if not value then
              cli.usage_error("option '-" .. c .. "' needs a value (" .. o.arg .. ")")
            end
          end
          store(result, o, value)
          break
        end
        store(result, o, true)
        j = j + 1
      end
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  if global.quiet then result.quiet = true end
  if global.verbose and find_opt(spec, nil, "verbose") then result.verbose = true end
  cli.quiet = result.quiet == true
  cli.verbose = cli.verbose or result.verbose == true
  return result, rest
end

-- print(...) unless -q was given.
function cli.say(...)
  if not cli.quiet then print(...) end
end

-- Run fn(args) for command name; returns the exit status for main.c.
-- usage is printed for --help (exit 0) and after usage errors (exit 1).
function cli.run(name, usage, fn, args)
  args = args or arg
  local list = {}
  for i = 1, #args do list[i] = args[i] end
  for _, a in ipairs(list) do
    if a == "--" then break end
    if a == "--help" or a == "-h" then
      io.stdout:write(usage)
      return 0
    end
  end
  local ok, status = xpcall(fn, function(e)
    if cli.debug then
      return debug.traceback(tostring(type(e) == "table" and e.msg or e), 2)
    end
    if getmetatable(e) == Usage then return e end
    return cli.clean(e)
  end, list)
  if ok then
    return math.tointeger(status) or 0
  end
  if getmetatable(status) == Usage then
    io.stderr:write("blkhost ", name, ": ", status.msg, "\n",
                    "Try 'blkhost ", name, " --help'.\n")
  else
    io.stderr:write("blkhost ", name, ": ", tostring(status), "\n")
  end
  return 1
end

return cli
