-- SPDX-License-Identifier: BSD-3-Clause
-- ctl: send one command to a running server's control socket
--
-- blkhost ctl SOCKET COMMAND [KEY=VALUE ...] [--output=human|json]
--
-- The client of the control socket (docs/control.md): builds
-- {"execute": COMMAND, "arguments": {...}}, sends it, prints the answer.
-- A VALUE that reads as JSON (7, true, {"daily": 7}, "quoted") is that
-- value, anything else a string; KEY may be dotted (keep.daily=7 is
-- {"keep": {"daily": 7}}).  --output=json prints the answer line as the
-- server sent it.  Exit status 0 on {"return": ...}, 1 on {"error": ...}
-- or when the server cannot be reached.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local json = require "blkhost.json"
local dkjson = require "dkjson"

local USAGE = [==[
Usage: blkhost ctl SOCKET COMMAND [KEY=VALUE ...] [--output=human|json]

Send COMMAND to the control socket of a running blkhost server
(bh.control.listen, examples/export.lua --control PATH) and print the
answer.  `blkhost ctl SOCKET query-commands` lists the commands.

  KEY=VALUE             an argument; VALUE is JSON if it parses as JSON
                        (7, true, {"daily":7}), else a string; dotted KEYs
                        make objects (keep.daily=7)
  --output=FMT          human (default) or json (the answer line as sent)
  -t, --timeout=SECS    how long to wait for the answer (default 600)
  -h, --help            this text

Examples:
  blkhost ctl /run/blkhost/vm1.sock query-exports
  blkhost ctl /run/blkhost/vm1.sock snapshot-create name=before-upgrade
  blkhost ctl /run/blkhost/vm1.sock rotate prefix=nightly- keep.daily=7 dry_run=true
]==]

local function parse_value(text)
  if text:match("^[%[{\"%-%d]") or text == "true" or text == "false" or text == "null" then
    local v, pos, err = dkjson.decode(text, 1, dkjson.null)
    if not err and pos == #text + 1 then
      if v == dkjson.null then return nil end
      return v
    end
  end
  return text
end

local function set_arg(args, key, value)
  local t = args
  local parts = {}
  for p in (key .. "."):gmatch("([^.]*)%.") do parts[#parts + 1] = p end
  for i = 1, #parts - 1 do
    local k = parts[i]
    if k == "" then cli.usage_error("bad argument name '" .. key .. "'") end
    if t[k] == nil then t[k] = {} end
    if type(t[k]) ~= "table" then cli.usage_error("argument '" .. key .. "' conflicts with '" .. k .. "'") end
    t = t[k]
  end
  if parts[#parts] == "" then cli.usage_error("bad argument name '" .. key .. "'") end
  t[parts[#parts]] = value
end

-- Human output: a list of objects one per line (key=value), rotate's
-- plan lines as they are, a scalar as it is, {} as nothing.
local function scalar(v)
  if type(v) == "table" then return json.encode(v) end
  return tostring(v)
end

local function show(v)
  if type(v) ~= "table" then print(scalar(v)); return end
  if type(v.lines) == "table" then
    for _, l in ipairs(v.lines) do print(l) end
    return
  end
  local function line(o)
    if type(o) ~= "table" then return scalar(o) end
    local keys = {}
    for k in pairs(o) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      -- name and id first: what a reader looks for
      local ra = (a == "id" and 0) or (a == "name" and 1) or 2
      local rb = (b == "id" and 0) or (b == "name" and 1) or 2
      if ra ~= rb then return ra < rb end
      return tostring(a) < tostring(b)
    end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. scalar(o[k]) end
    return table.concat(parts, " ")
  end
  if #v > 0 then
    for _, o in ipairs(v) do print(line(o)) end
  elseif next(v) ~= nil then
    print(line(v))
  end
end

return cli.run("ctl", USAGE, function(argv)
  local o, rest = cli.parse(argv, {
    { nil, "output", arg = "FMT" },
    { "t", "timeout", arg = "SECS" },
  })
  local output = o.output or "human"
  if output ~= "human" and output ~= "json" then
    cli.usage_error("--output must be human or json, not '" .. output .. "'")
  end
  local timeout = tonumber(o.timeout or "600")
  if not timeout or timeout <= 0 then cli.usage_error("--timeout must be a positive number of seconds") end
  if #rest < 2 then cli.usage_error("Expecting a control socket and a command") end
  local socket = rest[1]:gsub("^unix:", "")
  local args = {}
  for i = 3, #rest do
    local k, v = rest[i]:match("^([^=]+)=(.*)$")
    if not k then cli.usage_error("arguments are KEY=VALUE, not '" .. rest[i] .. "'") end
    set_arg(args, k, parse_value(v))
  end
  local req = { execute = rest[2] }
  if next(args) ~= nil then req.arguments = args end

  local ok, conn = pcall(bh.control.connect, socket, timeout)
  if not ok then cli.fail(tostring(conn)) end
  local aok, line = pcall(conn.call, conn, json.encode(json.object(req, { "execute", "arguments" })))
  conn:close()
  if not aok then cli.fail(tostring(line)) end
  local ans = dkjson.decode(line)
  if type(ans) ~= "table" then cli.fail("the server answered something that is not JSON: " .. line) end
  if output == "json" then print(line) end
  if ans.error then
    cli.fail(("%s: %s"):format(tostring(ans.error.class), tostring(ans.error.desc)))
  end
  if output == "human" then show(ans["return"]) end
  return 0
end)
