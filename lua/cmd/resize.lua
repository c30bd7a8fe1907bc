-- resize: change an image's virtual size (qemu-img resize)
-- SPDX-License-Identifier: BSD-3-Clause
--
-- blkhost resize [-f FMT] [--shrink] [--preallocation=MODE] [-q] IMAGE [+|-]SIZE
--
-- As qemu-img 7.2: SIZE may be relative (+SIZE, -SIZE, taken from the
-- last argument before the options are read, so that -1G is not an
-- option); shrinking needs --shrink; "Image resized." on success.  raw
-- and qcow2 grow and shrink (qcow2: a new L1 table and size in one
-- header write).  --preallocation=falloc|full (raw only) writes the new
-- area's zeros so that it takes disk space.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local imageopts = require "blkhost.imageopts"

local USAGE = [==[
Usage: blkhost resize [-f FMT] [--shrink] [--preallocation=MODE] [-q] IMAGE [+|-]SIZE

Change IMAGE's virtual size to SIZE, or by +SIZE / -SIZE (suffixes k, M,
G, T, P, E), as qemu-img resize does.  Shrinking needs --shrink and cuts
off the data past the new end.

  -f FMT               the image's format (default: probe)
  --image-opts         IMAGE is an option string (driver=qcow2,file.filename=F)
  --shrink             allow making the image smaller
  --preallocation=MODE off (default); raw also falloc or full (the
                       new area takes disk space); metadata is refused
  -q, --quiet          print nothing on success
  -h, --help           this text
]==]

local PREALLOC = { off = true, metadata = true, falloc = true, full = true }

return cli.run("resize", USAGE, function(args)
  -- The size is the last argument, taken out before the options are
  -- parsed, as qemu-img does: "-1G" is a size, not an option.
  local size_arg
  if #args >= 1 and args[#args] ~= "--help" and args[#args] ~= "-h" then
    size_arg = table.remove(args)
  end
  local o, rest = cli.parse(args, {
    { "f", "format", arg = "FMT" },
    { nil, "image-opts" },
    { nil, "shrink" },
    { nil, "preallocation", arg = "MODE" },
    { "q", "quiet" },
  })
  if not size_arg or #rest ~= 1 then
    cli.usage_error("Expecting image file name and size")
  end
  local mode = o.preallocation or "off"
  if not PREALLOC[mode] then
    cli.fail("Invalid preallocation mode '" .. mode .. "'")
  end

  local sign, digits = size_arg:match("^([+-]?)(.*)$")
  local ok, n = pcall(bh.parse_size, digits)
  if not ok or digits == "" then
    cli.fail("Parameter 'size' expects a non-negative number below 2^64")
  end

  local img <close> = bh.open(imageopts.apply(rest[1], { format = o.format, readonly = false }, o["image-opts"]))
  local current = img:size()
  local new = n
  if sign == "+" then
    new = current + n
  elseif sign == "-" then
    new = current - n
  end
  if new <= 0 then cli.fail("New image size must be positive") end
  if new < current and not o.shrink then
    cli.fail("Use the --shrink option to perform a shrink operation.")
  end
  if mode ~= "off" then
    if new < current then
      cli.fail("Preallocation can only be used for growing images")
    end
    -- falloc and full give the new area disk space; writing its zeros
    -- does both for raw.  qcow2 preallocation is not done.
    if img:format() ~= "raw" or mode == "metadata" then
      cli.fail("--preallocation=" .. mode .. " is not supported for " .. img:format() ..
               " images (raw takes falloc and full)")
    end
  end
  img:resize(new)
  if mode ~= "off" then
    local chunk = string.rep("\0", 1024 * 1024)
    local off = current
    while off < new do
      local n = math.min(#chunk, new - off)
      img:write(off, n == #chunk and chunk or chunk:sub(1, n))
      off = off + n
    end
  end
  img:flush()
  if not o.quiet then print("Image resized.") end
  return 0
end)
