-- convert: copy images into a new image of any format (qemu-img convert)
-- SPDX-License-Identifier: BSD-3-Clause
--
-- blkhost convert [-f FMT] [-O FMT] [-o OPTS] [-B BACKING -F FMT] [-n]
--                 [-S SIZE] [-m N] [-W] [-p] [-q] [-t CACHE] [-T CACHE] [-U]
--                 SOURCE... TARGET
--
-- Every option, the sources and the target's creation options are
-- checked before the target is created, so a refused convert leaves an
-- existing TARGET byte-identical and makes no new file.  A convert that
-- fails later removes TARGET if it made it.  The copy walks the sources'
-- maps (node:map): areas that read as zeros are not read, and zero runs of
-- -S bytes inside data are not written either, so the target stays sparse.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local imageopts = require "blkhost.imageopts"
local blockmap = require "blkhost.blockmap"
local chain = require "blkhost.chain"
local createopts = require "blkhost.createopts"
local progress = require "blkhost.progress"

local USAGE = [==[
Usage: blkhost convert [-f FMT] [-O FMT] [-o OPTIONS] [-B BACKING -F FMT] [-n]
                       [-S SIZE] [-m N] [-W] [-p] [-q] SOURCE... TARGET

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
  -m N            parallel requests, 1 to 16 (default 8; see below)
  -W              allow out-of-order writes
  -c              compress (refused: blkhost cannot write compressed
                  clusters)
  -p              print progress ("    (NN.NN/100%)")
  -q              quiet
  -t CACHE        TARGET's cache mode (default unsafe, as qemu-img: no
                  flush; -t writeback flushes TARGET at the end)
  -T CACHE        the sources' cache mode
  -U              open sources another process is writing
  -h, --help      this text

The Lua API does blocking I/O only, so requests run one at a time
whatever -m says; -m and -W are checked and accepted for qemu-img's
command lines.
]==]

local IO_BUF = 2 * 1024 * 1024 -- bytes read at a time
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

local zeros = blockmap.zeros

-- Write data (for target offset off) into target, leaving out
-- sparse-sized blocks of zeros (aligned to sparse in the target): those
-- are skipped when the target reads as zeros already, else zeroed.
-- Neighbouring blocks of a kind go out as one request.
local function write_sparse(target, off, data, sparse, zero_init)
  if sparse == 0 then
    target:write(off, data)
    return
  end
  local len = #data
  local run_start, run_zero -- pending run: first byte (0-based), kind
  local function flush_run(upto)
    if run_start and run_zero then
      if not zero_init then target:zero(off + run_start, upto - run_start, { may_unmap = true }) end
    elseif run_start then
      -- The whole buffer is the common case: no copy then.
      target:write(off + run_start, (run_start == 0 and upto == len) and data
                   or data:sub(run_start + 1, upto))
    end
    run_start = nil
  end
  -- nonzero: 1-based position of the first non-zero byte at or after the
  -- block being looked at (len + 1: none).  string.find scans in C and
  -- each byte is scanned once, whatever the block size.
  local nonzero = 0
  local pos = 0
  while pos < len do
    -- Blocks end at multiples of sparse in the target.
    local block_end = math.min(len, ((off + pos) // sparse + 1) * sparse - off)
    if nonzero <= pos then nonzero = data:find("[^\0]", pos + 1) or len + 1 end
    local zero = block_end - pos == sparse and nonzero > block_end
    if run_start and run_zero ~= zero then flush_run(pos) end
    if not run_start then run_start, run_zero = pos, zero end
    pos = block_end
  end
  flush_run(len)
end

-- Write len bytes of zeros at off: nothing if the target reads as zeros,
-- a write of zeros when fully allocating (-S 0), else a zero request.
local function write_zeros(target, off, len, sparse, zero_init)
  if sparse == 0 then
    while len > 0 do
      local n = math.min(len, IO_BUF)
      target:write(off, zeros(n))
      off, len = off + n, len - n
    end
  elseif not zero_init then
    target:zero(off, len, { may_unmap = true })
  end
end

-- Copy every source into target, end to end.  With a backing file on the
-- target, areas the source's top layer does not hold are left alone: the
-- backing file shows through them.
local function copy(sources, target, c, p, total)
  local base = 0
  for _, src in ipairs(sources) do
    local size = src:size()
    local walk = blockmap.walker(src)
    local off = 0
    while off < size do
      local e = walk:at(off)
      local len = math.min(e.start + e.length - off, IO_BUF)
      local kind
      if c.backing and e.depth > 0 then
        kind = "backing"
      elseif e.zero then
        kind = "zero"
      else
        kind = "data"
      end
      if kind == "zero" then
        write_zeros(target, base + off, len, c.sparse, c.zero_init)
      elseif kind == "data" then
        write_sparse(target, base + off, src:read(off, len), c.sparse, c.zero_init)
      end
      off = off + len
      if total > 0 then p:add(len / total * 100) end
    end
    base = base + size
  end
  target:flush()
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
  if o.compress then
    cli.fail("-c: compressed output is not supported: blkhost's qcow2 " ..
             "driver reads compressed clusters but cannot write them")
  end
  local sparse = o["sparse-size"] and parse_sparse(o["sparse-size"]) or 4096
  if o.parallel then parse_workers(o.parallel) end
  if #rest < 2 then cli.usage_error("Must specify image file name") end
  local target_name = table.remove(rest)
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
  local sources = {}
  local function close_all()
    for _, s in ipairs(sources) do s:close() end
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
    copy(sources, target, { sparse = sparse, zero_init = zero_init,
                            backing = o.backing ~= nil or copts.backing_file ~= nil },
         p, total)
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
