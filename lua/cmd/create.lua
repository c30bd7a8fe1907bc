-- create: create a disk image (qemu-img create's arguments)
--
-- blkhost create [-f FMT] [-o k=v,...] [-b BACKING [-F BACKING_FMT]] FILE [SIZE]

local bh = require "blkhost"
local cli = require "blkhost.cli"

local USAGE = [==[
Usage: blkhost create [-f FMT] [-o OPTIONS] [-b BACKING [-F BACKING_FMT]] FILE [SIZE]

Create FILE as an image of format FMT (default raw) and virtual size SIZE
(bytes, or with a K/M/G/T/P/E suffix).  Options are the driver's creation
options, as -o k=v,k2=v2 (repeatable; ",," is a literal comma).

  -f, --format=FMT         image format (raw, qcow2, ...)
  -o, --options=OPTS       creation options for the driver
  -b, --backing=FILE       backing file (formats that have one)
  -F, --backing-format=FMT format of the backing file
  -q, --quiet              print nothing on success
  -h, --help               this text
]==]

local function split_opts(str, into, order)
  local s = str:gsub(",,", "\0")
  for item in s:gmatch("[^,]+") do
    item = item:gsub("%z", ",")
    local k, v = item:match("^([^=]+)=(.*)$")
    if not k then cli.usage_error("option '" .. item .. "' is not key=value") end
    if into[k] == nil then order[#order + 1] = k end
    into[k] = v
  end
end

return cli.run("create", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "f", "format", arg = "FMT" },
    { "o", "options", arg = "OPTS", multi = true },
    { "b", "backing", arg = "FILE" },
    { "F", "backing-format", arg = "FMT" },
    { "q", "quiet" },
  })
  if #rest == 0 then cli.usage_error("no file given") end
  if #rest > 2 then
    cli.usage_error("too many arguments: expected FILE [SIZE], got " .. #rest)
  end
  local file, size = rest[1], rest[2]

  local opts, order = {}, {}
  for _, s in ipairs(o.options or {}) do split_opts(s, opts, order) end
  if o["backing-format"] and not o.backing then
    cli.usage_error("-F needs -b: a backing format without a backing file")
  end
  local function set(k, v)
    if opts[k] == nil then order[#order + 1] = k end
    opts[k] = v
  end
  if o.backing then set("backing_file", o.backing) end
  if o["backing-format"] then set("backing_fmt", o["backing-format"]) end
  if size then
    -- Check it here so that the message says which argument was wrong.
    local ok, bytes = pcall(bh.parse_size, size)
    if not ok then
      cli.usage_error("invalid size '" .. size .. "': " .. tostring(bytes))
    end
    set("size", bytes)
  end
  local format = o.format or "raw"
  opts.format = format

  if not o.quiet then
    local parts = { string.format("Formatting '%s', fmt=%s", file, format) }
    for _, k in ipairs(order) do
      parts[#parts + 1] = string.format("%s=%s", k, tostring(opts[k]))
    end
    print(table.concat(parts, " "))
  end
  bh.create(file, opts)
  return 0
end)
