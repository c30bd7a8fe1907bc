-- map: show where an image's data lives (qemu-img map)
-- SPDX-License-Identifier: BSD-3-Clause
--
-- blkhost map [--output=human|json] [-f FMT] [--start-offset=N]
--             [--max-length=N] [-U] IMAGE
--
-- node:map() answers one area at a time with the layer of the backing
-- chain that holds it (depth), whether it reads as zeros, holds data, and
-- where on the host the bytes sit.  Neighbouring answers that qemu-img 7.2
-- would merge are merged here the same way, so the output is byte for
-- byte qemu-img map's.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local imageopts = require "blkhost.imageopts"

local USAGE = [==[
Usage: blkhost map [--output=human|json] [-f FMT] [--start-offset=OFFSET]
                   [--max-length=LENGTH] [-U] IMAGE

Print which areas of IMAGE hold data, which read as zeros, which layer of
the backing chain holds them (depth) and where in which file the bytes
are.  The output is qemu-img map's: human prints the data areas only,
json every area.  The image is opened read-only.

  -f, --format=FMT       driver to open IMAGE with (default: probe)
  --image-opts           IMAGE is an option string (driver=qcow2,file.filename=F)
  --output=FMT           human (default) or json
  --start-offset=N       begin at byte N (K/M/G/... suffixes)
  --max-length=N         map at most N bytes
  -U, --force-share      open an image another process is writing
  -q, --quiet            accepted (the output is the result)
  -h, --help             this text
]==]

local SUFFIX_HINT = " You may use k, M, G, T, P or E suffixes for\n" ..
  "kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes."

-- A byte count with qemu-img's suffixes (cvtnum), or the message it prints.
local function parse_count(s, what)
  local ok, n = pcall(bh.parse_size, s)
  if not ok or not math.tointeger(n) or n < 0 then
    cli.fail("Invalid " .. what .. " specified." .. SUFFIX_HINT)
  end
  return n
end

-- qemu-img merges two answers when nothing it prints tells them apart and
-- the host offsets (if any) continue each other.
local function mergeable(a, b)
  if a.length == 0 then return false end
  if a.zero ~= b.zero or a.data ~= b.data or a.depth ~= b.depth or
     a.present ~= b.present or (a.offset == nil) ~= (b.offset == nil) or
     a.file ~= b.file then
    return false
  end
  return a.offset == nil or a.offset + a.length == b.offset
end

local function json_entry(e)
  local s = string.format('{ "start": %d, "length": %d, "depth": %d, ' ..
    '"present": %s, "zero": %s, "data": %s', e.start, e.length, e.depth,
    tostring(e.present), tostring(e.zero), tostring(e.data))
  if e.offset then s = s .. string.format(', "offset": %d', e.offset) end
  return s .. "}"
end

return cli.run("map", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "f", "format", arg = "FMT" },
    { nil, "image-opts" },
    { nil, "output", arg = "FMT" },
    { nil, "start-offset", arg = "OFFSET" },
    { nil, "max-length", arg = "LENGTH" },
    { "U", "force-share" },
  })
  local output = o.output or "human"
  if output ~= "human" and output ~= "json" then
    cli.fail("--output must be used with human or json as argument.")
  end
  local start = o["start-offset"] and parse_count(o["start-offset"], "start offset") or 0
  local max = o["max-length"] and parse_count(o["max-length"], "max length")
  if #rest == 0 then cli.usage_error("no image given") end
  if #rest > 1 then cli.usage_error("one image at a time, got " .. #rest) end

  local opts = { format = o.format, readonly = true }
  if o["force-share"] then opts.locking = false end
  local img <close> = bh.open(imageopts.apply(rest[1], opts, o["image-opts"]))

  local size = img:size()
  local stop = max and math.min(start + max, size) or size

  -- Entries are printed as they are completed (an entry is complete when
  -- the next one cannot be merged into it), so a failure part way, human
  -- output meeting a data area without a host offset or the image failing
  -- to say where an area is, comes after what qemu-img would have printed
  -- before it, and the pending entry is lost as in qemu-img.
  local out = io.stdout
  if output == "human" then
    out:write(string.format("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File"))
  else
    out:write("[")
  end
  local function dump(e, last)
    if output == "json" then
      out:write(json_entry(e), last and "" or ",\n")
    elseif e.data and not e.offset then
      out:flush()
      cli.fail("File contains external, encrypted or compressed clusters.")
    elseif e.data and not e.zero then
      out:write(string.format("%#-16x%#-16x%#-16x%s\n", e.start, e.length, e.offset, e.file))
    end
  end
  local cur = { start = start, length = 0, depth = 0, present = false, zero = false, data = false }
  local function feed(e)
    if mergeable(cur, e) then
      cur.length = cur.length + e.length
    else
      if cur.length > 0 then dump(cur, false) end
      cur = e
    end
  end
  -- Map [a, b) a window at a time.  When the node fails to map a
  -- window, halve it (down to 512 bytes) so that every area before the
  -- one that fails is still printed, then raise the failure.
  local function map_range(a, b)
    local ok, list = pcall(img.map, img, a, b - a)
    if ok then
      for _, e in ipairs(list) do feed(e) end
      return
    end
    if b - a <= 512 then
      out:flush()
      error(list, 0)
    end
    local mid = a + math.max(512, (b - a) // 1024 * 512)
    map_range(a, mid)
    map_range(mid, b)
  end
  local WINDOW = 1 << 30
  for a = start, stop - 1, WINDOW do
    map_range(a, math.min(a + WINDOW, stop))
  end
  dump(cur, true)
  if output == "json" then out:write("]\n") end
  return 0
end)
