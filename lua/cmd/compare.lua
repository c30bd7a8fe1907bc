-- compare: check that two images have the same contents (qemu-img compare)
-- SPDX-License-Identifier: BSD-3-Clause
--
-- blkhost compare [-f FMT] [-F FMT] [-T CACHE] [-s] [-p] [-q] [-U] IMAGE1 IMAGE2
--
-- Exit status as qemu-img 7.2's: 0 identical, 1 different, 2 an image
-- could not be opened, 3 its allocation could not be read, 4 its data
-- could not be read.  Areas both images say read as zeros are not read;
-- where only one holds data, that one must read as zeros.  Images of
-- different sizes are identical when the extra area reads as zeros,
-- unless -s (strict) is given, which also wants the same allocation.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local imageopts = require "blkhost.imageopts"
local blockmap = require "blkhost.blockmap"
local progress = require "blkhost.progress"

local USAGE = [==[
Usage: blkhost compare [-f FMT] [-F FMT] [-T CACHE] [-s] [-p] [-q] [-U] IMAGE1 IMAGE2

Check that IMAGE1 and IMAGE2 read the same.  Prints "Images are
identical." or where the first difference is, as qemu-img compare does.
Exit status: 0 identical, 1 different, 2 an image could not be opened,
3 allocation could not be read, 4 data could not be read.

  -f FMT            format of IMAGE1 (default: probe)
  --image-opts      IMAGE1 and IMAGE2 are option strings (driver=qcow2,file.filename=F)
  -F FMT            format of IMAGE2 (default: probe)
  -s, --strict      different sizes or allocation count as different
  -p, --progress    print progress (as qemu-img: "    (NN.NN/100%)")
  -q, --quiet       print nothing, only the exit status tells
  -U, --force-share open images another process is writing
  -T CACHE          the images' cache mode (default writeback)
  -h, --help        this text
]==]

local IO_BUF = 2 * 1024 * 1024 -- qemu-img's chunk
local SECTOR = 512

local zeros = blockmap.zeros

-- Index (0-based) of the first 512-byte sector of a that differs from b
-- when the first sector agrees, else 0: qemu-img reports a difference at
-- sector granularity from the chunk's start.
local function first_difference(a, b)
  for i = 1, #a, SECTOR do
    if a:sub(i, i + SECTOR - 1) ~= b:sub(i, i + SECTOR - 1) then return i - 1 end
  end
end

local function first_nonzero(a)
  return first_difference(a, zeros(#a))
end

local function same_status(e1, size1, e2, size2)
  return e1.present == e2.present and e1.zero == e2.zero and e1.data == e2.data and
    (e1.offset == nil) == (e2.offset == nil) and
    (e1.start + e1.length == size1) == (e2.start + e2.length == size2)
end

-- The comparison itself; returns the exit status.  say() prints unless -q.
local function compare(img1, name1, img2, name2, strict, p, say)
  local size1, size2 = img1:size(), img2:size()
  if strict and size1 ~= size2 then
    say("Strict mode: Image size mismatch!")
    return 1
  end
  local total = math.min(size1, size2)
  local larger = math.max(size1, size2)
  local w1, w2 = blockmap.walker(img1), blockmap.walker(img2)

  local function read(img, name, off, len)
    local ok, data = pcall(img.read, img, off, len)
    if not ok then
      io.stderr:write(string.format("blkhost compare: Error while reading offset %d of %s: %s\n",
                                    off, name, tostring(data)))
      return nil
    end
    return data
  end
  local function status(w, name, off)
    local ok, e = pcall(w.at, w, off)
    if not ok then
      io.stderr:write("blkhost compare: Sector allocation test failed for " .. name ..
                      ": " .. tostring(e) .. "\n")
      return nil
    end
    return e
  end
  -- 1 when the area holds a non-zero byte (reported), 4 on a read error.
  local function check_empty(img, name, off, len)
    local data = read(img, name, off, len)
    if not data then return 4 end
    if data ~= zeros(#data) then
      say(string.format("Content mismatch at offset %d!", off + first_nonzero(data)))
      return 1
    end
    return 0
  end

  local offset = 0
  while offset < total do
    local e1 = status(w1, name1, offset)
    if not e1 then return 3 end
    local e2 = status(w2, name2, offset)
    if not e2 then return 3 end
    local chunk = math.min(e1.start + e1.length, e2.start + e2.length) - offset
    if strict and not same_status(e1, size1, e2, size2) then
      say(string.format("Strict mode: Offset %d block status mismatch!", offset))
      return 1
    end
    if e1.zero and e2.zero then
      -- both read as zeros: nothing to read
    elseif e1.present == e2.present then
      if e1.present then
        chunk = math.min(chunk, IO_BUF)
        local a = read(img1, name1, offset, chunk)
        if not a then return 4 end
        local b = read(img2, name2, offset, chunk)
        if not b then return 4 end
        if a ~= b then
          say(string.format("Content mismatch at offset %d!", offset + first_difference(a, b)))
          return 1
        end
      end
    else
      chunk = math.min(chunk, IO_BUF)
      local r = e1.present and check_empty(img1, name1, offset, chunk)
                or check_empty(img2, name2, offset, chunk)
      if r ~= 0 then return r end
    end
    offset = offset + chunk
    p:add(chunk / larger * 100)
  end

  if size1 ~= size2 then
    say("Warning: Image size mismatch!")
    local over, name, w = img1, name1, w1
    if size2 > size1 then over, name, w = img2, name2, w2 end
    while offset < larger do
      local e = status(w, name, offset)
      if not e then return 3 end
      local chunk = e.start + e.length - offset
      if e.present then
        chunk = math.min(chunk, IO_BUF)
        local r = check_empty(over, name, offset, chunk)
        if r ~= 0 then return r end
      end
      offset = offset + chunk
      p:add(chunk / larger * 100)
    end
  end
  say("Images are identical.")
  return 0
end

return cli.run("compare", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "f", "format", arg = "FMT" },
    { nil, "image-opts" },
    { "F", "format2", arg = "FMT" },
    { "s", "strict" },
    { "p", "progress" },
    { "q", "quiet" },
    { "U", "force-share" },
    { "T", "source-cache", arg = "CACHE" },
  })
  if #rest ~= 2 then cli.usage_error("Expecting two image file names") end

  -- Failing to open is status 2, not cli.run's 1.
  local function open(name, format)
    local opts = { format = format, readonly = true, cache = o["source-cache"] }
    if o["force-share"] then opts.locking = false end
    local ok, node = pcall(imageopts.open, name, opts, o["image-opts"])
    if not ok then
      io.stderr:write("blkhost compare: Could not open '", name, "': ", tostring(node), "\n")
      return nil
    end
    return node
  end
  local img1 <close> = open(rest[1], o.format)
  if not img1 then return 2 end
  local img2 <close> = open(rest[2], o.format2)
  if not img2 then return 2 end

  local quiet = o.quiet
  local p = progress.new{ enabled = o.progress and not quiet or false, min_skip = 2 }
  local function say(line)
    if not quiet then print(line) end
  end
  local status = compare(img1, rest[1], img2, rest[2], o.strict, p, say)
  p:finish()
  return status
end)
