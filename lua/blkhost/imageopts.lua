-- SPDX-License-Identifier: BSD-3-Clause
-- qemu's --image-opts: an image named by its driver options instead of a
-- filename, "driver=qcow2,file.filename=disk.qcow2,file.aio=threads".
-- Every command that opens images takes it (lua/cmd/*.lua), and turns
-- the string into bh.open's filename and options table here:
--
--   local imageopts = require "blkhost.imageopts"
--   name, opts = imageopts.apply(name, opts, o["image-opts"])
--   local img <close> = bh.open(name, opts)
--
-- The syntax is QemuOpts': KEY=VALUE pairs split at ",", a ",," inside a
-- value standing for one ","; a KEY alone means KEY=on.  driver= names
-- the format (or protocol: file, nbd, null); the file is file.filename=
-- under a format, filename= for the file protocol.  Every other key goes
-- to bh.open unchanged (dotted keys reach the child: file.aio=threads),
-- where a key no driver takes is refused by name.  The few spellings
-- that differ from blkhost's are translated: read-only, cache.direct and
-- cache.no-flush, qemu's protocol names, and nbd's server.* keys, which
-- become an NBD URI.

local imageopts = {}

-- The KEY=VALUE pairs of s, in order: { {key, value}, ... }.
function imageopts.split(s)
  local pairs_, i, n = {}, 1, #s
  while i <= n do
    local key_end = s:find("[=,]", i) or n + 1
    local key = s:sub(i, key_end - 1)
    if s:sub(key_end, key_end) ~= "=" then
      pairs_[#pairs_ + 1] = { key, "on" }
      i = key_end + 1
    else
      local value, j = {}, key_end + 1
      while j <= n do
        local c = s:sub(j, j)
        if c == "," then
          if s:sub(j + 1, j + 1) ~= "," then break end
          j = j + 1
        end
        value[#value + 1] = c
        j = j + 1
      end
      pairs_[#pairs_ + 1] = { key, table.concat(value) }
      i = j + 1
    end
  end
  return pairs_
end

-- qemu's driver names for blkhost's drivers.
local driver_names = { host_device = "file", host_cdrom = "file", ["null-co"] = "null" }

-- qemu's cache.direct / cache.no-flush pair as blkhost's cache mode.
local function cache_mode(direct, no_flush)
  local on = { on = true, ["true"] = true, yes = true }
  direct, no_flush = on[direct or "off"], on[no_flush or "off"]
  if direct and no_flush then return nil end
  return direct and "none" or no_flush and "unsafe" or "writeback"
end

-- An NBD URI from qemu's nbd options (server.type/path/host/port, or
-- the older path/host/port, and export).
local function nbd_uri(kv, spec)
  local function take(k) local v = kv[k]; kv[k] = nil; return v end
  local stype, path = take("server.type"), take("server.path") or take("path")
  local host, port = take("server.host") or take("host"), take("server.port") or take("port")
  local export = take("export") or ""
  if stype == "unix" or (not stype and path) then
    if not path then error("NBD server address missing", 0) end
    return "nbd+unix:///" .. export .. "?socket=" .. path
  end
  if not host then error("NBD server address missing", 0) end
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  return "nbd://" .. host .. (port and ":" .. port or "") .. "/" .. export
end

-- The filename and bh.open options of an --image-opts string.  base
-- holds the command's own options (readonly, cache, ...); the string's
-- come on top.
function imageopts.parse(spec, base)
  local kv, order = {}, {}
  for _, p in ipairs(imageopts.split(spec)) do
    if kv[p[1]] == nil then order[#order + 1] = p[1] end
    kv[p[1]] = p[2]
  end
  local driver = kv.driver
  if not driver and not kv["file.filename"] and not kv["file.driver"] and not kv.file then
    error("Must specify either driver or file", 0)
  end
  kv.driver, kv["node-name"] = nil, nil
  if driver then driver = driver_names[driver] or driver end
  local name
  if driver == "nbd" then
    name = nbd_uri(kv, spec)
  elseif kv.filename then
    name, kv.filename = kv.filename, nil
  elseif kv["file.filename"] then
    name, kv["file.filename"] = kv["file.filename"], nil
    if kv["file.driver"] then
      kv["file.driver"] = driver_names[kv["file.driver"]] or kv["file.driver"]
    end
  end
  local opts = {}
  for k, v in pairs(base or {}) do opts[k] = v end
  opts.format = driver
  for _, k in ipairs(order) do
    local v = kv[k]
    local prefix = k:match("^(.-)cache%.direct$") or k:match("^(.-)cache%.no%-flush$")
    if v == nil then
      -- taken above
    elseif prefix then
      local mode = cache_mode(kv[prefix .. "cache.direct"], kv[prefix .. "cache.no-flush"])
      if not mode then
        error(prefix .. "cache.direct=on with "
              .. prefix .. "cache.no-flush=on has no blkhost cache mode", 0)
      end
      opts[prefix .. "cache"] = mode
      kv[prefix .. "cache.direct"], kv[prefix .. "cache.no-flush"] = nil, nil
    else
      opts[(k:gsub("read%-only$", "readonly"))] = v
    end
  end
  return name, opts
end

-- name and opts for bh.open from an --image-opts string; a string that
-- does not parse raises its reason alone.
local function resolve(name, opts, enabled)
  if not enabled then return name, opts end
  if opts and opts.format then
    error("--image-opts and --format are mutually exclusive", 0)
  end
  local file, o = imageopts.parse(name, opts)
  local cli = package.loaded["blkhost.cli"]
  if cli and cli.verbose then
    local keys = {}
    for k, v in pairs(o) do keys[#keys + 1] = k .. "=" .. tostring(v) end
    table.sort(keys)
    io.stderr:write("blkhost: --image-opts '", name, "': bh.open('", tostring(file), "'",
                    ", {", table.concat(keys, ", "), "})\n")
  end
  return file, o
end

-- name and opts for bh.open: unchanged without --image-opts (enabled
-- false or nil), else what the string name says.  A format given with -f
-- as well is refused, as qemu-img refuses it; a string that does not
-- parse is refused as qemu-img does, "Could not open 'STRING': why".
function imageopts.apply(name, opts, enabled)
  if enabled and opts and opts.format then resolve(name, opts, enabled) end
  local ok, file, o = pcall(resolve, name, opts, enabled)
  if not ok then error("Could not open '" .. name .. "': " .. tostring(file), 0) end
  return file, o
end

-- bh.open of what name says, for callers that pcall it and put "Could
-- not open 'NAME': " before the error themselves (check, compare, dd,
-- snapshot).
function imageopts.open(name, opts, enabled)
  return require("blkhost").open(resolve(name, opts, enabled))
end

-- The filename and driver of an --image-opts string, for commands that
-- open their image several times by name (rebase, commit, nbd -s); they
-- refuse any other option rather than drop it.  Unchanged if not enabled.
function imageopts.name_format(name, format, enabled, command)
  if not enabled then return name, format end
  local file, o = imageopts.apply(name, { format = format }, true)
  for k in pairs(o) do
    if k ~= "format" then
      error(string.format("--image-opts with %s takes driver= and the file name only, not '%s'",
                          command, k), 0)
    end
  end
  return file, o.format
end

return imageopts
