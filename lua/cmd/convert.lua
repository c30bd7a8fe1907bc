-- convert: copy images into a new image of any format (qemu-img convert)
-- SPDX-License-Identifier: BSD-3-Clause
--
-- blkhost convert [-f FMT] [-O FMT] [-o OPTS] [-B BACKING -F FMT] [-n]
--                 [-S SIZE] [-m N] [-W] [-c] [-p] [-q] [-t CACHE] [-T CACHE]
--                 [-U] SOURCE... TARGET
--
-- Every option, the sources and the target's creation options are
-- checked before the target is created, so a refused convert leaves an
-- existing TARGET byte-identical and makes no new file.  A convert that
-- fails later removes TARGET if it made it.  The copy (bh.copy, -m
-- requests in flight) walks the sources' maps: areas that read as zeros
-- are not read, and zero runs of -S bytes inside data are not written
-- either, so the target stays sparse.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local imageopts = require "blkhost.imageopts"
local snapparam = require "blkhost.snapparam"
local chain = require "blkhost.chain"
local createopts = require "blkhost.createopts"
local progress = require "blkhost.progress"

local USAGE = [==[
Usage: blkhost convert [-f FMT] [-O FMT] [-o OPTIONS] [-B BACKING -F FMT] [-n]
                       [-S SIZE] [-m N] [-W] [-c] [-p] [-q] [-l SNAPSHOT]
                       SOURCE... TARGET

Copy SOURCE (several are joined end to end) into TARGET, an image of
format FMT (default raw), created with the creation options OPTIONS (as
blkhost create's -o; -o help lists them).  Areas reading as zeros are
skipped, so the target is as sparse as it can be.  Every option is
checked before TARGET is created; a convert that fails removes a TARGET it
created.

  -f FMT          format of the sources (default: probe)
  --image-opts    each SOURCE is an option string (driver=qcow2,file.filename=F)
  -O FMT          format of TARGET (default raw)
  -o OPTS         TARGET's creation options, k=v,k2=v2 (help: list them)
  -B BACKING      TARGET gets BACKING as its backing file; only what the
                  sources' top layer holds is copied (needs -F)
  -F FMT          format of BACKING
  -n              TARGET exists: write into it, do not create it
  --target-is-zero  with -n: TARGET reads as zeros already (zeros are
                  not written)
  -S SIZE         zero runs this long (a multiple of 512; default 4k) are
                  not written; 0 writes everything (fully allocated)
  -m N            requests in flight, 1 to 16 (default 8)
  -W              allow out-of-order writes (without it, reads run ahead
                  but the target is written in order, one request at a
                  time, as qemu-img does)
  -c              compress TARGET's data clusters (qcow2: zlib, or zstd
                  with -o compression_type=zstd); clusters that do not
                  shrink are written as they are
  -p              print progress ("    (NN.NN/100%)")
  -q              quiet
  -t CACHE        TARGET's cache mode (default unsafe, as qemu-img: no
                  flush; -t writeback flushes TARGET at the end)
  -T CACHE        the sources' cache mode
  -U              open sources another process is writing
  -l SNAPSHOT     copy the source's internal snapshot instead of its
                  current data: 'snapshot.id=[ID],snapshot.name=[NAME]'
                  or '[ID_OR_NAME]' (one source only)
  -h, --help      this text
]==]

local SUFFIX_HINT = " You may use k, M, G, T, P or E suffixes for\n" ..
  "kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes."

local function parse_sparse(s)
  local ok, n = pcall(bh.parse_size, s)
  if not ok or not math.tointeger(n) or n < 0 then
    cli.fail("Invalid buffer size for sparse output specified." .. SUFFIX_HINT)
  end
  if n % 512 ~= 0 or n > 16 * 1024 * 1024 then
    cli.fail("Invalid buffer size for sparse output specified. Valid sizes " ..
             "are multiples of 512 up to 16777216. Select 0 to disable " ..
             "sparse detection (fully allocates output).")
  end
  return n
end

local function parse_workers(s)
  local n = math.tointeger(tonumber(s))
  if not n or n < 1 or n > 16 then
    cli.fail("Invalid number of coroutines. Allowed number of coroutines " ..
             "is between 1 and 16")
  end
  return n
end

local realpath = chain.realpath

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- Copy every source into target, end to end, with c.workers requests in
-- flight (bh.copy: the map walk, the reads and the sparse writes run in
-- C; only progress comes back here).  With a backing file on the target,
-- areas the source's top layer does not hold are left alone: the backing
-- file shows through them.  c.flags go with every data write; c.align
-- keeps chunks on whole units (compressed clusters).
local function copy(sources, target, c, p, total)
  local base = 0
  local function advance(n) p:add(n / total * 100) end
  for _, src in ipairs(sources) do
    bh.copy(src, target, { target_offset = base, workers = c.workers,
                           in_order = c.in_order, sparse = c.sparse,
                           zero_init = c.zero_init, skip_backing = c.backing,
                           chunk = c.chunk, flags = c.flags, align = c.align,
                           progress = total > 0 and advance or nil })
    base = base + src:size()
  end
  target:flush()
end

-- -c: refused, as by qemu-img, before anything is created, for a format
-- whose driver cannot write compressed data or with preallocation.
local function check_compress(format, copts)
  local can = false
  for _, p in ipairs(bh.plugins()) do
    if p.kind == "driver" and p.name == format and not p.error then can = p.compress end
  end
  if not can then cli.fail("Compression not supported for this file format") end
  if copts.preallocation and copts.preallocation ~= "off" then
    cli.fail("Compression and preallocation not supported at the same time")
  end
end

return cli.run("convert", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "f", "format", arg = "FMT" },
    { nil, "image-opts" },
    { "O", "output-format", arg = "FMT" },
    { "o", "options", arg = "OPTS", multi = true },
    { "B", "backing", arg = "FILE" },
    { "F", "backing-format", arg = "FMT" },
    { "n", "no-create" },
    { "S", "sparse-size", arg = "SIZE" },
    { "m", "parallel", arg = "N" },
    { "W", "out-of-order" },
    { "c", "compress" },
    { "p", "progress" },
    { "q", "quiet" },
    { "t", "cache", arg = "CACHE" },
    { "T", "source-cache", arg = "CACHE" },
    { "U", "force-share" },
    { nil, "target-is-zero" },
    { "l", "snapshot-param", arg = "SNAPSHOT" },
  })
  local format = o["output-format"] or "raw"
  local copts, order, help = {}, {}, false
  for _, s in ipairs(o.options or {}) do
    help = createopts.split(s, copts, order) or help
  end
  if help then
    createopts.print_help(format, #rest >= 2 and rest[#rest] or nil)
    return 0
  end

  -- Options alone.
  local snapshot
  if o["snapshot-param"] then
    local why
    snapshot, why = snapparam.parse(o["snapshot-param"])
    if not snapshot then cli.fail(why) end
  end
  if o.compress then check_compress(format, copts) end
  local sparse = o["sparse-size"] and parse_sparse(o["sparse-size"]) or 4096
  local workers = o.parallel and parse_workers(o.parallel) or 8
  if #rest < 2 then cli.usage_error("Must specify image file name") end
  local target_name = table.remove(rest)
  if snapshot and #rest > 1 then
    cli.fail("No support for concatenating multiple snapshot")
  end
  if o["target-is-zero"] and not o["no-create"] then
    cli.fail("--target-is-zero requires use of -n flag")
  end
  if o["no-create"] and #order > 0 then
    cli.fail("-o has no effect when skipping image creation")
  end
  if o["backing-format"] and not o.backing then
    cli.fail("-F (backing format) needs -B (backing file)")
  end
  if o.backing and not o["no-create"] and not createopts.takes_backing(format) then
    cli.fail(string.format("Backing file not supported for file format '%s'", format))
  end
  if o.backing and not o["backing-format"] and not o["no-create"] then
    cli.fail("Use of backing file requires explicit backing format")
  end

  -- The sources open before anything is made.
  local sources, bases = {}, {}
  local function close_all()
    for _, s in ipairs(sources) do s:close() end
    for _, s in ipairs(bases) do s:close() end
  end
  local total = 0
  for _, name in ipairs(rest) do
    local opts = { format = o.format, readonly = true, cache = o["source-cache"] }
    if o["force-share"] then opts.locking = false end
    local ok, node = pcall(bh.open, imageopts.apply(name, opts, o["image-opts"]))
    if not ok then
      close_all()
      cli.fail(tostring(node))
    end
    if snapshot then
      -- -l/-s: the source is the internal snapshot, read-only.
      bases[#bases + 1] = node
      ok, node = pcall(node.snapshot_open, node, snapshot)
      if not ok then
        close_all()
        cli.fail("Failed to load snapshot: " .. tostring(node))
      end
    end
    sources[#sources + 1] = node
    total = total + node:size()
  end

  -- qemu-img writes the target with cache=unsafe unless told otherwise:
  -- a conversion is redone rather than recovered after a crash.
  local target_cache = o.cache or "unsafe"
  -- The target must not be a source or a file of a source's backing
  -- chain (it would be emptied before it is read; -U lifts the locks that
  -- would otherwise refuse it), nor the new backing file.
  local target_real = realpath(target_name)
  if target_real then
    for i, src in ipairs(sources) do
      for depth, f in ipairs(chain.files(src, rest[i])) do
        if f == target_real then
          close_all()
          cli.fail(depth == 1 and
            string.format("target '%s' is the source '%s': converting " ..
                          "an image onto itself would destroy it", target_name, rest[i]) or
            string.format("target '%s' is in the backing chain of the source " ..
                          "'%s': converting onto it would destroy it", target_name, rest[i]))
        end
      end
    end
    -- The target will name its backing file relative to its own folder.
    local backing = o.backing
    if backing and backing:sub(1, 1) ~= "/" then
      backing = (target_name:match("^(.*/)") or "") .. backing
    end
    if backing and realpath(backing) == target_real then
      close_all()
      cli.fail(string.format("target '%s' is its own backing file (-B)", target_name))
    end
  end

  local created = false
  local target
  local ok, err = pcall(function()
    if o["no-create"] then
      target = bh.open(target_name, { format = format, cache = target_cache })
      if target:size() < total then
        cli.fail(string.format("target '%s' is smaller (%d bytes) than the source (%d bytes)",
                               target_name, target:size(), total))
      end
    else
      copts.format = format
      copts.size = total
      if o.backing then
        copts.backing_file = o.backing
        copts.backing_fmt = o["backing-format"]
      end
      -- Every creation option is checked before the file is touched.
      bh.create_check(target_name, copts)
      local existed = exists(target_name)
      bh.create(target_name, copts)
      created = not existed
      target = bh.open(target_name, { format = format, cache = target_cache })
    end
    -- A target made here without a backing file reads as zeros, so zeros
    -- need not be written; an existing one or one with a backing file
    -- does not.
    local zero_init = (o["target-is-zero"] or not o["no-create"]) and
                      not o.backing and not copts.backing_file
    local p = progress.new{ enabled = o.progress and not o.quiet or false, min_skip = 1 }
    local c = { sparse = sparse, zero_init = zero_init, workers = workers,
                in_order = not o["out-of-order"],
                backing = o.backing ~= nil or copts.backing_file ~= nil }
    if o.compress then
      -- Compressed writes take whole clusters: the copy keeps its chunks
      -- on cluster boundaries and skips (or zeroes) whole zero clusters,
      -- as qemu-img leaves out zero buffers; -S 0 compresses everything.
      local cs = target:info()["cluster-size"] or 65536
      c.flags, c.align = { compress = true }, cs
      c.sparse = sparse ~= 0 and cs or 0
    end
    copy(sources, target, c, p, total)
    p:set(100)
    p:finish()
  end)
  if target then target:close() end
  close_all()
  if not ok then
    if created then os.remove(target_name) end
    error(err, 0)
  end
  return 0
end)
