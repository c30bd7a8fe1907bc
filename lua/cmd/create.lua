-- SPDX-License-Identifier: BSD-3-Clause
-- create: create a disk image (qemu-img create's arguments)
--
-- blkhost create [-f FMT] [-o k=v,...] [-b BACKING [-F BACKING_FMT]] [-u] FILE [SIZE]
--
-- Nothing here touches FILE: bh.create checks every option (the driver's
-- own checks, unknown keys, the backing file) before it creates or empties
-- it, and removes a file it created when the creation fails.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local createopts = require "blkhost.createopts"

local USAGE = [==[
Usage: blkhost create [-f FMT] [-o OPTIONS] [-b BACKING -F BACKING_FMT] [-u] FILE [SIZE]

Create FILE as an image of format FMT (default raw) and virtual size SIZE
(bytes, or with a K/M/G/T/P/E suffix, also fractional: 1.5G; rounded up
to 512 bytes).  Options are the driver's creation options, as -o k=v,k2=v2
(repeatable; ",," is a literal comma); -o help lists them.  Every option
is checked before FILE is created or emptied.

  -f, --format=FMT         image format (raw, qcow2, ...)
  -o, --options=OPTS       creation options for the driver (help: list them)
  -b, --backing=FILE       backing file (formats that have one)
  -F, --backing-format=FMT format of the backing file (needed with -b)
  -u, --unsafe             do not open the backing file (give SIZE and -F)
  -q, --quiet              print nothing on success
  -h, --help               this text
]==]

-- A backing file name is relative to the image's folder, as the image
-- will resolve it.
local function backing_path(image, backing)
  if backing:sub(1, 1) == "/" or backing:find("://", 1, true) then
    return backing
  end
  local dir = image:match("^(.*)/[^/]*$") or "."
  return dir .. "/" .. backing
end

-- qemu-img 7.2 refuses -b without -F (a probed backing format lets a guest
-- that writes a qcow2 header into a raw backing file take over the
-- chain); like it, tell what the backing file looks like.
local function refuse_unnamed_backing(file, backing, unsafe)
  local msg = file .. ": Backing file specified without backing format"
  if unsafe then cli.fail(msg) end
  local path = backing_path(file, backing)
  local ok, node = pcall(bh.open, path, { readonly = true, locking = false })
  if not ok then
    cli.fail(string.format("%s: Could not open '%s': %s\nCould not open backing image.",
                           file, backing, tostring(node)))
  end
  local format = node:info().format
  node:close()
  cli.fail(msg .. "\nDetected format of " .. format .. ".")
end

return cli.run("create", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "f", "format", arg = "FMT" },
    { "o", "options", arg = "OPTS", multi = true },
    { "b", "backing", arg = "FILE" },
    { "F", "backing-format", arg = "FMT" },
    { "u", "unsafe" },
    { "q", "quiet" },
  })
  local format = o.format or "raw"
  local opts, order = {}, {}
  local help = false
  for _, s in ipairs(o.options or {}) do
    help = createopts.split(s, opts, order) or help
  end
  if help then
    createopts.print_help(format, rest[1])
    return 0
  end

  if #rest == 0 then cli.usage_error("no file given") end
  if #rest > 2 then
    cli.usage_error("too many arguments: expected FILE [SIZE], got " .. #rest)
  end
  local file, size = rest[1], rest[2]

  local function set(k, v)
    if opts[k] == nil then order[#order + 1] = k end
    opts[k] = v
  end
  if o.backing then set("backing_file", o.backing) end
  if o["backing-format"] then set("backing_fmt", o["backing-format"]) end
  if (opts.backing_fmt or opts.backing_format) and
     not (opts.backing_file or opts.backing) then
    cli.fail(file .. ": Backing format cannot be used without backing file "
             .. "(-F needs -b)")
  end
  if size then
    if opts.size then
      cli.fail(file .. ": The image size must be specified only once")
    end
    -- Check it here so that the message says which argument was wrong.
    local ok, bytes = pcall(bh.parse_size, size)
    if not ok then
      cli.usage_error("invalid size '" .. size .. "': " .. tostring(bytes))
    end
    set("size", bytes)
  end
  local backing = opts.backing_file or opts.backing
  if backing and not createopts.takes_backing(format) then
    cli.fail(string.format("%s: Backing file not supported for file format '%s'",
                           file, format))
  end
  if backing and backing ~= "" and
     not (opts.backing_fmt or opts.backing_format) then
    refuse_unnamed_backing(file, backing, o.unsafe)
  end
  opts.format = format

  if o.unsafe and backing then opts.unsafe = "on" end
  -- Like qemu-img, say what is about to be made only once every option
  -- passed: a refused create prints nothing but its error.
  bh.create_check(file, opts)
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
