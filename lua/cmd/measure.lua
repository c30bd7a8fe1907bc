-- measure: how large an image of a format would be (qemu-img measure)
-- SPDX-License-Identifier: BSD-3-Clause
--
-- blkhost measure [--output=human|json] [-O FMT] [-o OPTS] [-f FMT] [-l SNAPSHOT] [-U]
--                 (--size N | IMAGE)
--
-- The file size a new image needs: "required size" for the data of IMAGE
-- (or none with --size) plus its metadata, "fully allocated size" when
-- every cluster is written, and for a qcow2 IMAGE measured as qcow2 v3
-- "bitmaps size", with qemu-img 7.2's arithmetic so that the figures are
-- its figures.  Nothing is created.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local imageopts = require "blkhost.imageopts"
local blockmap = require "blkhost.blockmap"
local chain = require "blkhost.chain"
local createopts = require "blkhost.createopts"
local json = require "blkhost.json"

local USAGE = [==[
Usage: blkhost measure [--output=human|json] [-O FMT] [-o OPTIONS] [-f FMT]
                       [-l SNAPSHOT] [-U] (--size N | IMAGE)

Print the file size an image of format FMT (-O, default raw) would need,
created with the creation options OPTIONS: of size N (--size, suffixes k,
M, G, T, P, E), or converted from IMAGE (its data areas only).  "required
size" is what it takes with the data written, "fully allocated size" with
every cluster written.  Nothing is created.

  --size N        a new, empty image of N bytes
  -O FMT          the format to measure for (raw or qcow2; default raw)
  -o OPTS         its creation options (qcow2: cluster_size, compat,
                  refcount_bits, preallocation, backing_file, extended_l2)
  -f FMT          IMAGE's format (default: probe)
  --image-opts    IMAGE is an option string (driver=qcow2,file.filename=F)
  -l SNAPSHOT     measure IMAGE's internal snapshot (id or name)
  -U              open IMAGE even if another process writes it
  --output=FMT    human (default) or json (qemu-img's keys)
  -q, --quiet     accepted (the output is the result)
  -h, --help      this text
]==]

local SIZE_HINT = "You may use k, M, G, T, P or E suffixes for\n" ..
  "kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes."
local MAX_L1_BYTES = 32 * 1024 * 1024 -- qcow2's limit on the L1 table
-- Creation options qemu-img 7.2 takes for qcow2 that blkhost's create
-- does not (measure only counts with them).
local QCOW2_MORE = { extended_l2 = true, data_file = true, data_file_raw = true,
                     ["encrypt.format"] = true, encryption = true }

local function round_up(n, a) return (n + a - 1) // a * a end
local function div_up(n, d) return (n + d - 1) // d end

local function parse_bool(k, v)
  if v == "on" or v == "true" or v == "yes" then return true end
  if v == "off" or v == "false" or v == "no" then return false end
  cli.fail(string.format("Parameter '%s' expects 'on' or 'off'", k))
end

-- qcow2's creation options as measure counts with them.
local function qcow2_params(opts)
  local p = { extended_l2 = opts.extended_l2 and parse_bool("extended_l2", opts.extended_l2) or false }
  local ok, cs = pcall(bh.parse_size, opts.cluster_size or "64k")
  if not ok or cs < 512 or cs > 2 * 1024 * 1024 or cs & (cs - 1) ~= 0 then
    cli.fail("Cluster size must be a power of two between 512 and 2048k")
  end
  if p.extended_l2 and cs < 16384 then
    cli.fail("Extended L2 entries are only supported with cluster sizes of at least 16384 bytes")
  end
  p.cluster_size = cs
  local compat = opts.compat or "1.1"
  if compat == "0.10" or compat == "v2" then
    p.version = 2
  elseif compat == "1.1" or compat == "v3" then
    p.version = 3
  else
    cli.fail("Invalid compatibility level: '" .. compat .. "'")
  end
  local bits = math.tointeger(tonumber(opts.refcount_bits or "16"))
  if not bits or bits < 1 or bits > 64 or bits & (bits - 1) ~= 0 then
    cli.fail("Refcount width must be a power of two and may not exceed 64 bits")
  end
  if p.version < 3 and bits ~= 16 then
    cli.fail("Different refcount widths than 16 bits require compatibility level 1.1 " ..
             "or above (use compat=1.1 or greater)")
  end
  p.refcount_order = 0
  while (1 << p.refcount_order) < bits do p.refcount_order = p.refcount_order + 1 end
  local prealloc = opts.preallocation or "off"
  if prealloc ~= "off" and prealloc ~= "metadata" and prealloc ~= "falloc" and prealloc ~= "full" then
    cli.fail("invalid parameter value: " .. prealloc)
  end
  p.full = prealloc == "falloc" or prealloc == "full"
  p.backing = opts.backing_file ~= nil
  return p
end

-- Refcount table and block clusters for clusters host clusters: the fixed
-- point where they also count themselves.
local function refcount_metadata(clusters, cs, order)
  local per_table = cs // 8
  local per_block = cs * 8 // (1 << order)
  local table, blocks, n, last = 0, 0, 0, nil
  repeat
    last = n
    blocks = div_up(clusters + table + blocks, per_block)
    table = div_up(blocks, per_table)
    n = clusters + blocks + table
  until n == last
  return (blocks + table) * cs
end

-- A qcow2 image of size (a cluster multiple) with every cluster written.
local function qcow2_full_size(size, p)
  local cs, l2e = p.cluster_size, p.extended_l2 and 16 or 8
  local meta = cs -- the header
  local nl2e = round_up(size // cs, cs // l2e)
  meta = meta + nl2e * l2e
  local nl1e = round_up(nl2e * l2e // cs, cs // 8)
  meta = meta + nl1e * 8
  meta = meta + refcount_metadata((meta + size) // cs, cs, p.refcount_order)
  return meta + size
end

-- Bytes of clusters of size cs that img's data areas touch (areas reading
-- as zeros are left out), counted as qemu-img counts them.
local function data_clusters(img, cs)
  local size = img:size()
  local walk = blockmap.walker(img)
  local required, off = 0, 0
  while off < size do
    local e = walk:at(off)
    local n = e.start + e.length - off
    if not e.zero and e.data then
      n = round_up(off + n, cs) - off
      required = required + off % cs + n
    end
    off = off + n
  end
  return required
end

-- Persistent bitmaps of a qcow2 img, with a table of bitmap clusters
-- and a directory entry each.
local function bitmaps_size(img, cs)
  local info, keys = img:info()
  local total, dir = 0, 0
  local size = img:size()
  for _, k in ipairs(keys) do
    local i = k:match("^bitmaps%.(%d+)%.name$")
    if i then
      local gran = info["bitmaps." .. i .. ".granularity"]
      local bytes = div_up(div_up(size, gran), 8)
      local clusters = div_up(bytes, cs)
      total = total + clusters * cs + round_up(clusters * 8, cs)
      dir = dir + round_up(24 + #info[k], 8)
    end
  end
  return total + round_up(dir, cs)
end

local function measure_qcow2(p, size, img)
  local cs = p.cluster_size
  local vsize = round_up(size, cs)
  local l2_tables = div_up(vsize // cs, cs // (p.extended_l2 and 16 or 8))
  if l2_tables * 8 > MAX_L1_BYTES then
    cli.fail("The image size is too large (try using a larger cluster size)")
  end
  local required = 0
  if img then
    required = p.backing and vsize or data_clusters(img, cs)
  end
  if p.full then required = vsize end
  local full = qcow2_full_size(vsize, p)
  local r = { required = full - vsize + required, ["fully-allocated"] = full }
  if p.version >= 3 and img and img:format() == "qcow2" then
    r.bitmaps = bitmaps_size(img, cs)
  end
  return r
end

return cli.run("measure", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { nil, "size", arg = "N" },
    { "O", "output-format", arg = "FMT" },
    { "o", "options", arg = "OPTS", multi = true },
    { "f", "format", arg = "FMT" },
    { nil, "image-opts" },
    { "l", "snapshot", arg = "SNAPSHOT" },
    { "U", "force-share" },
    { nil, "output", arg = "FMT" },
  })
  local output = o.output or "human"
  if output ~= "human" and output ~= "json" then
    cli.usage_error("--output must be human or json, not '" .. output .. "'")
  end
  if #rest > 1 then cli.fail("At most one filename argument is allowed.") end
  local name = rest[1]
  if not o.size and not name then cli.fail("Either --size N or one filename must be specified.") end
  if o.size and name then cli.fail("--size N cannot be used together with a filename.") end
  local size
  if o.size then
    local ok, n = pcall(bh.parse_size, o.size)
    if not ok or not math.tointeger(n) or n < 0 or o.size:sub(1, 1) == "-" then
      cli.fail("Invalid image size specified. " .. SIZE_HINT)
    end
    size = n
  end

  local format = o["output-format"] or "raw"
  if format ~= "raw" and format ~= "qcow2" then
    cli.fail(chain.is_format(format) and
      "Format driver '" .. format .. "' does not support image size measurement" or
      "Unknown file format '" .. format .. "'")
  end
  local copts, order = {}, {}
  for _, s in ipairs(o.options or {}) do
    if createopts.split(s, copts, order) then copts.help = "" order[#order + 1] = "help" end
  end
  -- Keys the format or the file protocol takes, as qemu-img checks them.
  local known = {}
  for _, f in ipairs({ format, "file" }) do
    for _, opt in ipairs(bh.create_options(f)) do known[opt.name] = true end
  end
  for _, k in ipairs(order) do
    if not known[k] and not (format == "qcow2" and QCOW2_MORE[k]) then
      cli.fail("Invalid parameter '" .. k .. "'\nInvalid options for file format '" ..
               format .. "'")
    end
  end
  local p = format == "qcow2" and qcow2_params(copts)

  local img
  if name then
    img = bh.open(imageopts.apply(name, { format = o.format, readonly = true, snapshot = o.snapshot,
                                          locking = not o["force-share"] }, o["image-opts"]))
    size = img:size()
  end
  local r
  if format == "raw" then
    local n = img and size or round_up(size, 512)
    r = { required = n, ["fully-allocated"] = n }
  else
    r = measure_qcow2(p, size, img)
  end
  if img then img:close() end

  if output == "json" then
    io.stdout:write(json.encode(json.object(r, r.bitmaps and
      { "bitmaps", "required", "fully-allocated" } or { "required", "fully-allocated" }),
      { indent = 4 }), "\n")
  else
    print("required size: " .. r.required)
    print("fully allocated size: " .. r["fully-allocated"])
    if r.bitmaps then print("bitmaps size: " .. r.bitmaps) end
  end
  return 0
end)
