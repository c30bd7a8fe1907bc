-- bench: time a run of read or write requests on an image (qemu-img bench)
-- SPDX-License-Identifier: BSD-3-Clause
--
-- blkhost bench [-c COUNT] [-d DEPTH] [-f FMT] [--flush-interval=N]
--               [-i AIO] [-n] [--no-drain] [-o OFFSET] [--pattern=N] [-q]
--               [-s SIZE] [-S STEP] [-t CACHE] [-w] [-U] FILENAME
--
-- qemu-img 7.2 bench's options, messages and output lines.  The loop
-- itself is C (bh.bench: DEPTH requests in flight, results collected on
-- this thread), so what is timed is the image's path, not Lua.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local cint = require "blkhost.cint"

local USAGE = [==[
Usage: blkhost bench [-c COUNT] [-d DEPTH] [-f FMT] [--flush-interval=N]
                     [-i AIO] [-n] [--no-drain] [-o OFFSET] [--pattern=N]
                     [-q] [-s SIZE] [-S STEP] [-t CACHE] [-w] [-U] FILENAME

Send COUNT read (or, with -w, write) requests of SIZE bytes to FILENAME,
DEPTH of them in flight at a time, and print how long they took, as
qemu-img bench does.  Request n starts at OFFSET + n * STEP, wrapping
around at the end of the image.

  -c COUNT        requests in all (default 75000)
  -d DEPTH        requests in flight (default 64)
  -f FMT          FILENAME's format (default: probe)
  -s SIZE         bytes per request (default 4096; k, M, G suffixes)
  -S STEP         bytes from one request to the next (default SIZE)
  -o OFFSET       where the first request starts (default 0)
  -w              write requests (default: read)
  --pattern=N     the byte written (0 to 255, default 0)
  --flush-interval=N
                  with -w: a flush after every N requests (N >= DEPTH)
  --no-drain      flushes go out beside the requests in flight instead of
                  waiting for the queue to empty
  -t CACHE        cache mode: writeback (default), none, writethrough,
                  directsync, unsafe
  -i AIO          the file's I/O: threads, native, io_uring
  -n              same as -i native (needs -t none or directsync)
  -U              open FILENAME even if another process writes it (not
                  with -w)
  -q              taken for qemu-img's command lines; the two lines are
                  the result and still print, as with qemu-img
  -h, --help      this text

Unlike qemu-img 7.2, which waits forever with -d 0, DEPTH 0 is refused.
]==]

local SUFFIX_HINT = " You may use k, M, G, T, P or E suffixes for\n" ..
  "kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes."
local INT_MAX = 2147483647

-- An unsigned number as strtoul reads it (blkhost.cint), at most max;
-- nil if it is not one.
local function parse_ulong(s, max)
  local n = cint.parse(s)
  if n and n >= 0 and n <= max then return n end
end

-- A size with qemu-img's cvtnum messages ("Invalid NAME specified...").
local function parse_size(name, s, max)
  local ok, n = pcall(bh.parse_size, s)
  if not ok or not math.tointeger(n) then
    cli.fail("Invalid " .. name .. " specified." .. SUFFIX_HINT)
  end
  if n > max then
    cli.fail(string.format("Invalid %s specified. Must be between 0 and %d.", name, max))
  end
  return n
end

-- qemu's cache mode names (bdrv_parse_cache_mode); "off" is "none".
local CACHE = { none = "none", off = "none", writeback = "writeback",
                writethrough = "writethrough", directsync = "directsync",
                unsafe = "unsafe" }
local AIO = { threads = true, native = true, io_uring = true }

return cli.run("bench", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "c", "count", arg = "COUNT" },
    { "d", "depth", arg = "DEPTH" },
    { "f", "format", arg = "FMT" },
    { "n", "native" },
    { "i", "aio", arg = "AIO" },
    { "o", "offset", arg = "OFFSET" },
    { "q", "quiet" },
    { "s", "size", arg = "SIZE" },
    { "S", "step", arg = "STEP" },
    { "t", "cache", arg = "CACHE" },
    { "w", "write" },
    { "U", "force-share" },
    { nil, "pattern", arg = "N" },
    { nil, "flush-interval", arg = "N" },
    { nil, "no-drain" },
  })
  -- Each option as qemu-img checks it, with its message.
  local count, depth = 75000, 64
  if o.count then
    count = parse_ulong(o.count, INT_MAX) or cli.fail("Invalid request count specified")
  end
  if o.depth then
    depth = parse_ulong(o.depth, INT_MAX)
    if not depth or depth == 0 then cli.fail("Invalid queue depth specified") end
  end
  local aio = o.native and "native" or nil
  if o.aio then
    if not AIO[o.aio] then cli.fail("Invalid aio option: " .. o.aio) end
    aio = o.aio
  end
  local offset = o.offset and parse_size("offset", o.offset, math.maxinteger) or 0
  local size = o.size and parse_size("buffer size", o.size, INT_MAX) or 4096
  local step = o.step and parse_size("step_size", o.step, INT_MAX) or 0
  local cache = "writeback"
  if o.cache then
    cache = CACHE[o.cache] or cli.fail("Invalid cache mode")
  end
  local pattern = 0
  if o.pattern then
    pattern = parse_ulong(o.pattern, 0xff) or cli.fail("Invalid pattern byte specified")
  end
  local flush_interval = 0
  if o["flush-interval"] then
    flush_interval = parse_ulong(o["flush-interval"], INT_MAX) or
      cli.fail("Invalid flush interval specified")
  end
  if #rest ~= 1 then cli.usage_error("Expecting one image file name") end
  local filename = rest[1]
  if not o.write and flush_interval > 0 then
    cli.fail("--flush-interval is only available in write tests")
  end
  if flush_interval > 0 and flush_interval < depth then
    cli.fail("Flush interval can't be smaller than depth")
  end
  if o.write and o["force-share"] then
    cli.fail(string.format("Could not open '%s': force-share=on can only be " ..
                           "used with read-only images", filename))
  end

  local opts = { format = o.format, readonly = not o.write, cache = cache }
  if o["force-share"] then opts.locking = false end
  if aio then
    -- aio belongs to the file driver: the node itself when FMT is file.
    if o.format == "file" then opts.aio = aio else opts.file = { aio = aio } end
  end
  local ok, node = pcall(bh.open, filename, opts)
  if not ok then cli.fail(tostring(node)) end

  io.stdout:write(string.format("Sending %d %s requests, %d bytes each, %d in parallel " ..
                                "(starting at offset %d, step size %d)\n",
                                count, o.write and "write" or "read", size, depth,
                                offset, step > 0 and step or size))
  if flush_interval > 0 then
    io.stdout:write(string.format("Sending flush every %d requests\n", flush_interval))
  end
  io.stdout:flush()
  local ran, seconds = pcall(bh.bench, node, {
    write = o.write or false, count = count, depth = depth, offset = offset,
    size = size, step = step, flush_interval = flush_interval,
    drain = not o["no-drain"], pattern = pattern })
  node:close()
  if not ran then cli.fail("Failed request: " .. tostring(seconds)) end
  io.stdout:write(string.format("Run completed in %3.3f seconds.\n", seconds))
  return 0
end)
