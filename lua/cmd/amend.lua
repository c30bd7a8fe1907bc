-- amend: change options of an existing image (qemu-img amend)
-- SPDX-License-Identifier: BSD-3-Clause
--
-- blkhost amend [-f FMT] [-t CACHE] [-p] [-q] [--force] -o OPTIONS IMAGE
--
-- As qemu-img 7.2 amend: OPTIONS is a "k=v,k2=v2" list (several -o are
-- joined); qcow2 takes compat=0.10|1.1, lazy_refcounts=on|off,
-- refcount_bits=1..64 and size; `-o help` lists them.  Everything is
-- checked before the image is touched (node:amend), so a refused amend
-- leaves it byte-identical; the messages are qemu-img's.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local imageopts = require "blkhost.imageopts"
local progress = require "blkhost.progress"

local USAGE = [==[
Usage: blkhost amend [-f FMT] [-t CACHE] [-p] [-q] [--force] -o OPTIONS IMAGE

Change options of the existing IMAGE as qemu-img amend does.  For qcow2:
compat=0.10|1.1 (upgrade, or downgrade with zero clusters expanded),
lazy_refcounts=on|off, refcount_bits=1|2|4|8|16|32|64 (the refcount
structure rewritten in the new width), size=SIZE.  Creation-only options
(cluster_size, encryption, preallocation, ...) are refused.

  -o OPTIONS       comma separated key=value list (repeatable); -o help
                   lists the options of IMAGE's format (or of -f FMT)
  -f FMT           the image's format (default: probe)
  --image-opts     IMAGE is an option string (driver=qcow2,file.filename=F)
  -t CACHE         cache mode of IMAGE (default writeback)
  -p, --progress   show progress, as qemu-img's "(NN.NN/100%)" line
  --force          what qemu-img amend --force allows (qcow2: nothing
                   more; it matters only to encryption)
  -q, --quiet      print nothing but errors
  -h, --help       this text
]==]

-- Whether a -o list asks for help ("help" or "?" as an item), as
-- qemu-img's has_help_option.
local function wants_help(list)
  for item in ((list:gsub(",,", "\0")) .. ","):gmatch("([^,]*),") do
    if item == "help" or item == "?" then return true end
  end
  return false
end

-- The list as qemu-img reads it: a bare key means key=on, an empty
-- item (a trailing comma) makes the list invalid.
local function normalize(list)
  local items = {}
  for item in ((list:gsub(",,", "\0")) .. ","):gmatch("([^,]*),") do
    if item == "" then cli.fail("Invalid option list: " .. list) end
    if not item:find("=", 1, true) then item = item .. "=on" end
    items[#items + 1] = (item:gsub("%z", ",,"))
  end
  return table.concat(items, ",")
end

local function print_help(format)
  local ok, list = pcall(bh.amend_options, format)
  if not ok then cli.fail("Unknown file format '" .. format .. "'") end
  if not list then
    cli.fail("Format driver '" .. format .. "' does not support option amendment")
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  print(string.format("Amend options for '%s':", format))
  for _, o in ipairs(list) do
    print(string.format("  %-22s - %s", o.name .. "=<" .. o.type .. ">", o.help))
  end
  return 0
end

return cli.run("amend", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "o", "options", arg = "OPTIONS", multi = true },
    { "f", "format", arg = "FMT" },
    { nil, "image-opts" },
    { "t", "cache", arg = "CACHE" },
    { "p", "progress" },
    { nil, "force" },
    { "q", "quiet" },
  })
  if not o.options then cli.usage_error("Must specify options (-o)") end
  local list = table.concat(o.options, ",")
  if list == "" then cli.fail("Invalid option list: ") end
  -- With -f, help needs no image (qemu-img prints it before opening).
  if o.format and wants_help(list) then return print_help(o.format) end
  if #rest ~= 1 then cli.usage_error("Expecting one image file name") end

  local ok, img = pcall(imageopts.open, rest[1], {
    format = o.format, readonly = false, cache = o.cache,
  }, o["image-opts"])
  if not ok then cli.fail("Could not open '" .. rest[1] .. "': " .. tostring(img)) end
  local _ <close> = img
  if wants_help(list) then return print_help(img:format()) end

  local p = progress.new{ enabled = (o.progress and not o.quiet) == true, min_skip = 1 }
  local done, err = pcall(img.amend, img, normalize(list), {
    force = o.force,
    progress = function(n, total) p:set(n * 100.0 / total) end,
  })
  if done then p:set(100) end
  p:finish()
  if not done then cli.fail(tostring(err)) end
  img:flush()
  return 0
end)
