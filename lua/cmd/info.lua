-- SPDX-License-Identifier: BSD-3-Clause
-- info: show an image's format, virtual size, disk size and driver facts
--
-- blkhost info [--output=human|json] [-f FORMAT] [-o OPTS] [--backing-chain] [--partitions] IMAGE
-- The image is opened read-only.  --partitions prints its partition table
-- instead (blkhost.parttable does the formatting).  The text output follows qemu-img info's
-- layout and the JSON output its key names ("filename", "format",
-- "virtual-size", "actual-size", then the driver's own keys).  qcow2
-- persistent bitmaps print as qemu-img's "bitmaps:" list, and the JSON of
-- a qcow2 image also carries qemu-img's "format-specific" object.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local json = require "blkhost.json"
local chain = require "blkhost.chain"
local snaptable = require "blkhost.snaptable"
local imageopts = require "blkhost.imageopts"

local USAGE = [==[
Usage: blkhost info [--output=human|json] [-f FORMAT] [-o OPTIONS] [--backing-chain]
                    [--partitions [--sector-size=N]] [--image-opts] IMAGE

Show an image's format, virtual size, disk size and what its driver
reports (cluster size, backing file, ...).  The image is opened read-only.

  -f, --format=FORMAT   driver to open IMAGE with (default: probe)
  -o, --options=OPTS    more open options, k=v,k2=v2 (repeatable)
  --image-opts          IMAGE is qemu's option string, not a filename:
                        driver=qcow2,file.filename=disk.qcow2,file.aio=threads
  --output=FMT          human (default) or json
  --backing-chain       every image of the backing chain, top first
  --partitions          print the partition table (MBR or GPT) instead
  --sector-size=N       sector size for --partitions (512 or 4096;
                        default: the image's block size)
  -U, --force-share     open an image another process is writing (its
                        metadata may be changing: figures may be stale)
  -q, --quiet           accepted (the output is the result)
  -h, --help            this text
]==]

-- Keys shown on their own lines first, with qemu-img's labels.
local LABELS = {
  { "filename", "image" },
  { "format", "file format" },
  { "virtual-size", "virtual size" },
  { "actual-size", "disk size" },
}
-- Driver keys qemu-img also prints at the top level, with its labels.
local TOP = {
  { "cluster-size", "cluster_size" },
  { "backing-filename", "backing file" },
  { "backing-format", "backing file format" },
  { "backing-filename-format", "backing file format" },
}
-- Facts about how blkhost opened the image, not about the image.
local HIDDEN = { ["read-only"] = true, cache = true }

local function split_opts(str, into)
  -- "k=v,k2=v2", ",," being a literal comma.
  local s = str:gsub(",,", "\0")
  for item in s:gmatch("[^,]+") do
    item = item:gsub("%z", ",")
    local k, v = item:match("^([^=]+)=(.*)$")
    if not k then cli.usage_error("option '" .. item .. "' is not key=value") end
    into[k] = v
  end
end

-- Persistent bitmaps come from the driver as flat keys
-- bitmaps.N.name / .granularity / .flags (comma separated); qemu-img shows
-- them as a list of {flags, name, granularity}.
local function bitmap_key(k)
  local i, field = k:match("^bitmaps%.(%d+)%.(%a+)$")
  return i and tonumber(i) + 1, field
end

local function bitmaps(info, keys)
  local list = {}
  for _, k in ipairs(keys) do
    local i, field = bitmap_key(k)
    if i then
      list[i] = list[i] or { flags = json.array({}) }
      if field == "flags" then
        for f in info[k]:gmatch("[^,]+") do table.insert(list[i].flags, f) end
      else
        list[i][field] = info[k]
      end
    end
  end
  for i, b in ipairs(list) do
    list[i] = json.object(b, { "flags", "name", "granularity" })
  end
  return list
end

local function show(v)
  if type(v) == "boolean" then return v and "true" or "false" end
  return tostring(v)
end

-- The bitmaps list (from bitmaps()) as qemu-img prints it under "Format
-- specific information", appended to out.
local function bitmap_lines(out, list)
  out[#out + 1] = "    bitmaps:"
  for i, b in ipairs(list) do
    out[#out + 1] = string.format("        [%d]:", i - 1)
    out[#out + 1] = "            flags:"
    for j, f in ipairs(b.flags) do
      out[#out + 1] = string.format("                [%d]: %s", j - 1, f)
    end
    out[#out + 1] = "            name: " .. b.name
    out[#out + 1] = "            granularity: " .. show(b.granularity)
  end
end

local function human(info, keys)
  local out = {}
  local shown = {}
  for _, l in ipairs(LABELS) do
    local k, label = l[1], l[2]
    local v = info[k]
    shown[k] = true
    if v ~= nil then
      if k == "virtual-size" then
        v = string.format("%s (%d bytes)", bh.human_size(v), v)
      elseif k == "actual-size" then
        v = bh.human_size(v)
      end
      out[#out + 1] = label .. ": " .. show(v)
    end
  end
  for _, l in ipairs(TOP) do
    local k, label = l[1], l[2]
    if info[k] ~= nil then
      out[#out + 1] = label .. ": " .. show(info[k])
      shown[k] = true
    end
  end
  -- The rest is the driver's own, indented under a heading as qemu-img
  -- prints its format specific information.
  local heading = false
  for _, k in ipairs(keys) do
    if not shown[k] and not HIDDEN[k] then
      if not heading then
        out[#out + 1] = "Format specific information:"
        heading = true
      end
      if bitmap_key(k) then
        if not shown.bitmaps then
          shown.bitmaps = true
          bitmap_lines(out, bitmaps(info, keys))
        end
      else
        out[#out + 1] = "    " .. k:gsub("-", " ") .. ": " .. show(info[k])
      end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

-- The top-level keys of qemu-img 7.2's info JSON, in the order it prints
-- them (its dictionary's order); the driver's other facts are in
-- "format-specific", as qemu-img has them.
local JSON_ORDER = {
  "backing-filename-format", "snapshots", "virtual-size", "filename",
  "cluster-size", "format", "actual-size", "format-specific",
  "full-backing-filename", "backing-filename", "dirty-flag",
}

-- qemu-img's snapshot list entries, in its key order.
local function json_snapshots(img)
  local list = {}
  for _, sn in ipairs(img:snapshots()) do
    local vm = sn.vm_clock_ns or 0
    local e = {
      icount = sn.icount,
      ["vm-clock-nsec"] = vm % 1000000000,
      name = sn.name,
      ["date-sec"] = sn.date,
      ["date-nsec"] = sn.date_nsec,
      ["vm-clock-sec"] = vm // 1000000000,
      id = sn.id,
      ["vm-state-size"] = sn.vm_state_size,
    }
    local order = {}
    for _, k in ipairs({ "icount", "vm-clock-nsec", "name", "date-sec", "date-nsec",
                         "vm-clock-sec", "id", "vm-state-size" }) do
      if e[k] ~= nil then order[#order + 1] = k end
    end
    list[#list + 1] = json.object(e, order)
  end
  return list
end

local function json_info(img, info, keys)
  local t = {
    filename = info.filename, format = info.format,
    ["virtual-size"] = info["virtual-size"], ["actual-size"] = info["actual-size"],
    ["cluster-size"] = info["cluster-size"],
    ["dirty-flag"] = info.dirty or false,
  }
  local backing = info["backing-filename"]
  if backing then
    t["backing-filename"] = backing
    t["backing-filename-format"] = info["backing-format"] or info["backing-filename-format"]
    -- Resolved as qemu-img does: relative to the image's folder.
    t["full-backing-filename"] = backing:sub(1, 1) == "/" and backing or
      (info.filename:match("^(.*/)") or "") .. backing
  end
  local ok, snaps = pcall(json_snapshots, img)
  if ok and #snaps > 0 then t.snapshots = snaps end
  -- qcow2 facts where qemu-img puts them.
  if info.format == "qcow2" then
    local v3 = info.compat ~= "0.10"
    local d = {
      compat = info.compat,
      ["compression-type"] = info["compression-type"] or "zlib",
      ["refcount-bits"] = info["refcount-bits"],
    }
    for _, k in ipairs(keys) do
      if bitmap_key(k) then d.bitmaps = bitmaps(info, keys) break end
    end
    if v3 then
      d["lazy-refcounts"] = info["lazy-refcounts"]
      d.corrupt = info.corrupt
      d["extended-l2"] = false
    end
    t["format-specific"] = json.object({ type = "qcow2", data = json.object(d,
      { "compat", "compression-type", "lazy-refcounts", "bitmaps",
        "refcount-bits", "corrupt", "extended-l2" }) }, { "type", "data" })
  end
  local order = {}
  for _, k in ipairs(JSON_ORDER) do
    if t[k] ~= nil then order[#order + 1] = k end
  end
  return json.object(t, order)
end

-- qemu-img 7.2's human layout of one image, from its JSON table t (as
-- json_info makes it): used for --backing-chain, whose blocks are
-- qemu-img's byte for byte.
local SPECIFIC_ORDER = { "compat", "compression-type", "lazy-refcounts", "bitmaps",
                         "refcount-bits", "corrupt", "extended-l2" }

local function qemu_human(img, t)
  local out = {
    "image: " .. t.filename,
    "file format: " .. t.format,
    string.format("virtual size: %s (%d bytes)", bh.human_size(t["virtual-size"]),
                  t["virtual-size"]),
    "disk size: " .. (t["actual-size"] and bh.human_size(t["actual-size"]) or "unavailable"),
  }
  if t["cluster-size"] then out[#out + 1] = "cluster_size: " .. t["cluster-size"] end
  if t["dirty-flag"] then out[#out + 1] = "cleanly shut down: no" end
  local b = t["backing-filename"]
  if b then
    local full = t["full-backing-filename"]
    out[#out + 1] = "backing file: " .. b .. (full ~= b and " (actual path: " .. full .. ")" or "")
    if t["backing-filename-format"] then
      out[#out + 1] = "backing file format: " .. t["backing-filename-format"]
    end
  end
  local ok, sns = pcall(img.snapshots, img)
  if ok and #sns > 0 then
    out[#out + 1] = "Snapshot list:"
    for _, l in ipairs(snaptable.lines(sns)) do out[#out + 1] = l end
  end
  local fs = t["format-specific"]
  if fs then
    out[#out + 1] = "Format specific information:"
    local d = fs.data
    for _, k in ipairs(SPECIFIC_ORDER) do
      local v = d[k]
      if k == "bitmaps" and v then
        bitmap_lines(out, v)
      elseif v ~= nil then
        out[#out + 1] = "    " .. k:gsub("-", " ") .. ": " .. show(v)
      end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

return cli.run("info", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "f", "format", arg = "FORMAT" },
    { "o", "options", arg = "OPTS", multi = true },
    { nil, "output", arg = "FMT" },
    { "U", "force-share" },
    { nil, "partitions" },
    { nil, "backing-chain" },
    { nil, "sector-size", arg = "N" },
    { nil, "image-opts" },
  })
  local output = o.output or "human"
  if output ~= "human" and output ~= "json" then
    cli.usage_error("--output must be human or json, not '" .. output .. "'")
  end
  if #rest == 0 then cli.usage_error("no image given") end
  if #rest > 1 then cli.usage_error("one image at a time, got " .. #rest) end

  local opts = {}
  for _, s in ipairs(o.options or {}) do split_opts(s, opts) end
  opts.format = o.format or opts.format
  opts.readonly = true
  -- Like qemu-img -U: look at an image another process holds for writing.
  if o["force-share"] then opts.locking = false end
  local name
  name, opts = imageopts.apply(rest[1], opts, o["image-opts"])

  local ok, img = pcall(bh.open, name, opts)
  if not ok then
    -- A qcow2 image whose backing file is missing is still shown (as
    -- qemu-img info shows it: it does not open backing files), opened
    -- alone, with a warning naming the reason; --backing-chain needs the
    -- chain and fails.
    local why = img
    if o["backing-chain"] or o.partitions or (opts.format or chain.probe(name)) ~= "qcow2" then
      error(why, 0)
    end
    ok, img = pcall(chain.open_alone, name, opts)
    if not ok then error(why, 0) end
    io.stderr:write("blkhost info: warning: ", tostring(why), "\n")
  end
  local _ <close> = img
  if o.partitions then
    local popts = {}
    if o["sector-size"] then
      popts.sector_size = math.tointeger(tonumber(o["sector-size"]))
      if not popts.sector_size then
        cli.usage_error("--sector-size must be a number, not '" .. o["sector-size"] .. "'")
      end
    end
    io.stdout:write(require("blkhost.parttable").show(img, output, popts))
    return 0
  end
  local info, keys = img:info()
  if not o["backing-chain"] then
    -- qcow2 in qemu-img's own layout (its snapshot table included); other
    -- formats list what their drivers tell (an RBD image's pool and
    -- objects, say), which qemu-img does not show.
    if output == "json" then
      io.stdout:write(json.encode(json_info(img, info, keys), { indent = 4 }) .. "\n")
    elseif img:format() == "qcow2" then
      io.stdout:write(qemu_human(img, json_info(img, info, keys)))
    else
      io.stdout:write(human(info, keys))
    end
    return 0
  end
  -- --backing-chain: every image down the chain, each opened on its own
  -- by the name qemu-img resolves (relative to the image above's folder).
  local list, texts, seen = {}, {}, {}
  local cur = img
  while true do
    local t = json_info(cur, info, keys)
    list[#list + 1] = t
    texts[#texts + 1] = qemu_human(cur, t)
    seen[info.filename] = true
    local next_name = t["full-backing-filename"]
    if not next_name then break end
    if seen[next_name] then cli.fail("Backing file '" .. next_name .. "' creates a loop") end
    if cur ~= img then cur:close() end
    cur = bh.open(next_name, { format = t["backing-filename-format"], readonly = true,
                               locking = opts.locking })
    info, keys = cur:info()
  end
  if cur ~= img then cur:close() end
  io.stdout:write(output == "json" and json.encode(json.array(list), { indent = 4 }) .. "\n" or
                  table.concat(texts, "\n"))
  return 0
end)
