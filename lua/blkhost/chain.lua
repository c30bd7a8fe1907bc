-- SPDX-License-Identifier: BSD-3-Clause
-- Backing chains as qemu-img names them, for `rebase`, `commit` and
-- `info --backing-chain`: a backing file name is relative to the folder
-- of the image that names it (unless absolute or a URI), and format
-- names are the loaded drivers'.
--
--   local chain = require "blkhost.chain"
--   chain.resolve("dir/top.qcow2", "base.qcow2")   --> "dir/base.qcow2"
--   chain.is_format("qcow2")                       --> true
--   for _, l in ipairs(chain.layers("top.qcow2")) do ... l.name, l.format end

local bh = require "blkhost"

local chain = {}

-- backing as the image named image sees it.
function chain.resolve(image, backing)
  if backing:sub(1, 1) == "/" or backing:find("://", 1, true) then return backing end
  return (image:match("^(.*/)") or "") .. backing
end

-- Whether name is a driver blkhost has loaded.
function chain.is_format(name)
  for _, p in ipairs(bh.plugins()) do
    if p.kind == "driver" and p.name == name and not p.error then return true end
  end
  return false
end

-- "qcow2" when the file behind name starts with qcow2's magic, else nil
-- (also when it cannot be read: opening it later says why).
function chain.probe(name)
  local ok, fmt = pcall(function()
    local raw <close> = bh.open(name, { format = "raw", readonly = true, locking = false })
    return raw:size() >= 4 and raw:read(0, 4) == "QFI\xfb" and "qcow2" or nil
  end)
  return ok and fmt or nil
end

-- Open name alone: a qcow2 image without its backing file (backing=null),
-- so that a missing backing file does not stop it.  opts as bh.open's.
function chain.open_alone(name, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if (o.format or chain.probe(name)) == "qcow2" then o.backing = "null" end
  return bh.open(name, o)
end

-- The absolute path of an existing file, else nil.
function chain.realpath(path)
  local ok, p = pcall(bh.process.realpath, path)
  return ok and p or nil
end
local realpath = chain.realpath

-- The files of node's backing chain (node opened as name), node's own
-- first, as real paths.  Stops at a file that is not there (opening it
-- would have failed) or after 64 levels.  For refusing to write onto a
-- file that is also read.
function chain.files(node, name)
  local files = { realpath(name) }
  local info = node:info()
  local image = info.filename or name
  for _ = 1, 64 do
    local backing = info["backing-filename"]
    if not backing or backing == "" then break end
    backing = chain.resolve(image, backing)
    local real = realpath(backing)
    if not real then break end
    files[#files + 1] = real
    local ok, b = pcall(bh.open, backing, { readonly = true, locking = false,
                                             format = info["backing-format"] })
    if not ok then break end
    info = b:info()
    b:close()
    image = backing
  end
  return files
end

-- The layers of name's backing chain, top first: {name=, format=,
-- backing=, backing_format=} from each image's own header, each opened
-- alone (read-only, without its backing file where the format allows).
-- opts are added to every open (format only to the top's).  Stops after
-- 64 levels or at a loop; raises what an open raises.
function chain.layers(name, opts)
  local list, seen = {}, {}
  local format = opts and opts.format
  for _ = 1, 64 do
    local o = { readonly = true, format = format }
    for k, v in pairs(opts or {}) do if k ~= "format" then o[k] = v end end
    local node <close> = chain.open_alone(name, o)
    local info = node:info()
    local real = info.filename or name
    if seen[real] then error("Backing file '" .. name .. "' creates a loop", 0) end
    seen[real] = true
    local l = { name = name, format = info.format, backing = info["backing-filename"],
                backing_format = info["backing-format"], size = node:size() }
    list[#list + 1] = l
    if not l.backing or l.backing == "" then break end
    name, format = chain.resolve(name, l.backing), l.backing_format
  end
  return list
end

return chain
