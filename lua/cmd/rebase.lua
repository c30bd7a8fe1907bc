-- rebase: give an image another backing file, keeping what it reads (qemu-img rebase)
-- SPDX-License-Identifier: BSD-3-Clause
--
-- blkhost rebase [-f FMT] [-t CACHE] [-T CACHE] [-p] [-q] [-U] [-u]
--                -b BACKING [-F FMT] IMAGE
--
-- Safe mode (the default) first copies into IMAGE every area it does not
-- hold itself where the old backing file and the new one read
-- differently, so that IMAGE reads the same before and after; then the
-- header names the new backing file (blkhost.qcow2header).  A crash
-- during the copy leaves IMAGE reading as before, over the old backing
-- file.  -u (unsafe) only rewrites the header: the old backing file need
-- not exist.  -b '' removes the backing file (after copying everything
-- it showed, in safe mode).  Everything that can be refused is refused
-- before IMAGE is written.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local imageopts = require "blkhost.imageopts"
local blockmap = require "blkhost.blockmap"
local chain = require "blkhost.chain"
local progress = require "blkhost.progress"
local qcow2header = require "blkhost.qcow2header"

local USAGE = [==[
Usage: blkhost rebase [-f FMT] [-t CACHE] [-T CACHE] [-p] [-q] [-U] [-u]
                      -b BACKING [-F FMT] IMAGE

Make BACKING the backing file of IMAGE (a qcow2 image), as qemu-img
rebase does.  In safe mode (the default) the areas IMAGE does not hold
itself, where the old and the new backing file differ, are first copied
into IMAGE from the old one, so IMAGE reads the same afterwards.  -b ''
removes the backing file (IMAGE then holds everything it showed).

  -b BACKING      the new backing file, relative to IMAGE's folder ('':
                  none)
  -F FMT          BACKING's format (required with a BACKING)
  -u              unsafe: only rename the backing file in the header,
                  copy nothing (the old backing file need not exist)
  -f FMT          IMAGE's format (default: probe)
  --image-opts    IMAGE is an option string (driver= and file.filename= only)
  -t CACHE        IMAGE's cache mode (default writeback)
  -T CACHE        the backing files' cache mode
  -U              open the backing files even if another process
                  writes them
  -p              print progress ("    (NN.NN/100%)")
  -q              quiet
  -h, --help      this text

Nothing is changed when the image is no qcow2, the new backing file
cannot be opened as FMT, FMT is unknown or missing, or the name does not
fit in the header.
]==]

local IO_BUF = 2 * 1024 * 1024 -- bytes compared at a time, as qemu-img

-- Write into img (at base) the units (img's clusters, counted from offset
-- 0) where old and new differ, neighbouring ones as one request: old's
-- bytes, or zeros when old lies past the end of the old backing file
-- (old_zero).  A whole cluster is written where any byte differs: the
-- bytes that do not differ are old's too, which is what the cluster shows
-- already, and qemu-img's sector writes allocate that cluster whole all
-- the same.
local function write_differences(img, base, old, new, old_zero, unit)
  local n = #old
  local run -- first byte (0-based) of the pending run of differing units
  local function flush(upto)
    if not run then return end
    if old_zero then
      img:zero(base + run, upto - run)
    else
      img:write(base + run, (run == 0 and upto == n) and old or old:sub(run + 1, upto))
    end
    run = nil
  end
  local i = 0
  while i < n do
    local e = math.min(n, ((base + i) // unit + 1) * unit - base)
    if old:sub(i + 1, e) ~= new:sub(i + 1, e) then
      run = run or i
    else
      flush(i)
    end
    i = e
  end
  flush(n)
end

-- The safe copy: every area img does not hold, where the old view (img
-- itself reads it from its old chain) and new (nil: zeros) differ.
local function copy_differences(img, old_size, new, unit, p)
  local size = img:size()
  local new_size = new and new:size() or 0
  blockmap.each(img, 0, size, IO_BUF, function(off, n, e)
    if not (e.depth == 0 and e.present) then
      local old_zero = off >= old_size
      if not old_zero then n = math.min(n, old_size - off) end
      if new and off < new_size then n = math.min(n, new_size - off) end
      -- An area the old chain shows as zeros is not read.
      local old = (old_zero or e.zero) and blockmap.zeros(n) or img:read(off, n)
      local newbuf = (new and off < new_size) and new:read(off, n) or blockmap.zeros(n)
      if old ~= newbuf then write_differences(img, off, old, newbuf, old_zero, unit) end
    end
    -- 100 is printed once, when the header is written too.
    if off + n < size then p:set((off + n) / size * 100) end
    return n
  end)
end

return cli.run("rebase", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "f", "format", arg = "FMT" },
    { nil, "image-opts" },
    { "F", "backing-format", arg = "FMT" },
    { "b", "backing", arg = "FILE" },
    { "u", "unsafe" },
    { "p", "progress" },
    { "q", "quiet" },
    { "t", "cache", arg = "CACHE" },
    { "T", "source-cache", arg = "CACHE" },
    { "U", "force-share" },
  })
  if #rest ~= 1 then cli.usage_error("Expecting one image file name") end
  local name = rest[1]
  name, o.format = imageopts.name_format(name, o.format, o["image-opts"], "rebase")
  local backing = o.backing
  if not o.unsafe and not backing then
    cli.usage_error("Must specify backing file (-b) or use unsafe mode (-u)")
  end
  local bfmt = o["backing-format"]
  if bfmt and not chain.is_format(bfmt) then
    cli.fail("Invalid format name: '" .. bfmt .. "'")
  end
  local function cannot(why)
    cli.fail(string.format("Could not change the backing file to '%s': %s",
                           backing or "", why))
  end
  if backing == "" then backing = nil end
  -- qemu-img 7.2 refuses a backing file without its format, but in safe
  -- mode only after the copy; here before anything is written.
  if backing and not bfmt then cannot("backing format must be specified") end

  -- The header must be able to take the new name: checked first.
  local format = o.format or chain.probe(name)
  if format and format ~= "qcow2" then cannot("Operation not supported") end
  local ok, plan = pcall(qcow2header.plan, name, backing, bfmt)
  if not ok then
    -- An image that does not open says so; a header too small, why.
    if format == "qcow2" then cannot(plan) end
    local img <close> = bh.open(name, { format = o.format, readonly = true })
    cannot("Operation not supported")
  end

  local p = progress.new{ enabled = o.progress and not o.quiet or false, min_skip = 2 }
  if o.unsafe then
    -- The image must still open (alone: its old backing file may be gone).
    local img <close> = chain.open_alone(name, { format = "qcow2", readonly = true })
  else
    local img <close> = bh.open(name, { format = "qcow2", readonly = false, cache = o.cache })
    local info = img:info()
    local old_size = 0
    if info["backing-filename"] then
      -- The old backing file's size: beyond it the image reads zeros.
      local old <close> = bh.open(chain.resolve(name, info["backing-filename"]),
        { format = info["backing-format"], readonly = true, cache = o["source-cache"],
          locking = not o["force-share"] })
      old_size = old:size()
    end
    local new
    if backing then
      local nok, n = pcall(bh.open, chain.resolve(name, backing),
        { format = bfmt, readonly = true, cache = o["source-cache"],
          locking = not o["force-share"] })
      if not nok then
        cli.fail(string.format("Could not open new backing file '%s': %s", backing, n))
      end
      new = n
    end
    local cok, err = pcall(copy_differences, img, old_size, new,
                           info["cluster-size"] or 512, p)
    if new then new:close() end
    if not cok then error(err, 0) end
    img:flush()
  end
  -- The image is closed: its header is rewritten in one write.
  local wok, err = pcall(qcow2header.write, plan)
  if not wok then cannot(err) end
  p:set(100)
  p:finish()
  return 0
end)
