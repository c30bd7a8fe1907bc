-- commit: write an overlay's changes into its backing file (qemu-img commit)
-- SPDX-License-Identifier: BSD-3-Clause
--
-- blkhost commit [-f FMT] [-t CACHE] [-b BASE] [-d] [-r RATE] [-p] [-q] IMAGE
--
-- Every area IMAGE or a layer between it and BASE holds (data or zeros)
-- is written into BASE (the backing file, or -b's deeper one), grown to
-- IMAGE's size first if smaller.  Then, as qemu-img does, IMAGE is
-- emptied (its clusters dropped, so it shows BASE through again) unless
-- -d is given; -b implies -d, since the layers between would no longer
-- read right over the changed BASE.  A crash at any point leaves IMAGE
-- reading as before: BASE gets the data before IMAGE lets go of it.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local imageopts = require "blkhost.imageopts"
local chain = require "blkhost.chain"
local progress = require "blkhost.progress"

local USAGE = [==[
Usage: blkhost commit [-f FMT] [-t CACHE] [-b BASE] [-d] [-r RATE] [-p] [-q] IMAGE

Write what IMAGE holds into its backing file, as qemu-img commit does,
then empty IMAGE (it then reads its backing file's data through).

  -b BASE         commit into BASE, a deeper file of IMAGE's backing
                  chain: the layers between are written there too
                  (implies -d)
  -d              leave IMAGE as it is (do not empty it)
  -f FMT          IMAGE's format (default: probe)
  --image-opts    IMAGE is an option string (driver= and file.filename= only)
  -t CACHE        cache mode of IMAGE and BASE (default writeback)
  -r RATE         accepted (qemu-img's rate limit); blkhost copies at
                  full speed
  -p              print progress ("    (NN.NN/100%)")
  -q              quiet
  -h, --help      this text
]==]

local realpath = chain.realpath

-- Index in layers (top first) of the image base names, or nil: the name
-- as the chain spells it, or the same file, base taken (as qemu-img takes
-- it) relative to the folder of the image above, or to the current one.
local function find_base(layers, base)
  local real = realpath(base)
  for i = 2, #layers do
    local l = layers[i]
    local here = realpath(l.name)
    if l.name == base or l.backing_name == base or (here and (here == real or
       here == realpath(chain.resolve(layers[i - 1].name, base)))) then
      return i
    end
  end
end

-- Copy into base what top holds above depth (the base's layer), with
-- bh.copy's requests in flight: data as it is, zeros as zero requests.
local function copy_down(top, base, depth, p)
  local size, done = top:size(), 0
  bh.copy(top, base, { max_depth = depth, sparse = 0, zero_requests = true,
                       progress = function(n)
    done = done + n
    if done < size then p:set(done / size * 100) end
  end })
end

return cli.run("commit", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "f", "format", arg = "FMT" },
    { nil, "image-opts" },
    { "t", "cache", arg = "CACHE" },
    { "b", "base", arg = "FILE" },
    { "d", "drop" },
    { "r", "rate-limit", arg = "RATE" },
    { "p", "progress" },
    { "q", "quiet" },
  })
  if #rest ~= 1 then cli.usage_error("Expecting one image file name") end
  local name = rest[1]
  name, o.format = imageopts.name_format(name, o.format, o["image-opts"], "commit")
  if o["rate-limit"] then
    local ok, r = pcall(bh.parse_size, o["rate-limit"])
    if not ok or r <= 0 then cli.fail("Invalid rate limit specified") end
  end

  local layers = chain.layers(name, { format = o.format })
  for i = 2, #layers do layers[i].backing_name = layers[i - 1].backing end
  if #layers < 2 then cli.fail("Image does not have a backing file") end
  local bi = 2
  if o.base then
    bi = find_base(layers, o.base)
    if not bi then
      cli.fail(string.format("Did not find '%s' in the backing chain of '%s'", o.base, name))
    end
  end
  local keep = o.drop or o.base ~= nil

  local p = progress.new{ enabled = o.progress and not o.quiet or false, min_skip = 1 }
  do
    local b = layers[bi]
    local base <close> = bh.open(b.name, { format = b.format, readonly = false, cache = o.cache })
    -- IMAGE opened read-only with its chain, locked, but for the base
    -- this process opened for writing above.
    local topts = { format = layers[1].format, readonly = true }
    local at = topts
    for _ = 2, bi do
      at.backing = {}
      at = at.backing
    end
    at.locking = false
    local top <close> = bh.open(name, topts)
    if base:size() < top:size() then base:resize(top:size()) end
    copy_down(top, base, bi - 1, p)
    base:flush()
  end
  if not keep then
    -- Emptied alone: without its backing file, dropped clusters become
    -- unallocated (the backing file shows) rather than zero clusters.
    local ok, err = pcall(function()
      local top <close> = chain.open_alone(name, { format = layers[1].format,
                                                   readonly = false, cache = o.cache,
                                                   discard = "unmap" })
      top:discard(0, top:size())
      top:flush()
    end)
    if not ok then cli.fail(string.format("Could not empty %s: %s", name, err)) end
  end
  p:set(100)
  p:finish()
  if not o.quiet then print("Image committed.") end
  return 0
end)
