-- SPDX-License-Identifier: BSD-3-Clause
-- Creation options as qemu-img takes them with -o, shared by
-- `blkhost create` and `blkhost convert`: "k=v,k2=v2" lists (",," is a
-- literal comma) and the `-o help` listing.

local bh = require "blkhost"
local cli = require "blkhost.cli"

local createopts = {}

-- Split str into the table into (keys in first-seen order appended to
-- order).  Returns true when the list asks for help ("help" or "?" as a
-- word), as qemu-img's -o does.
function createopts.split(str, into, order)
  local help = false
  local s = str:gsub(",,", "\0")
  for item in s:gmatch("[^,]+") do
    item = item:gsub("%z", ",")
    local k, v = item:match("^([^=]+)=(.*)$")
    if item == "help" or item == "?" then
      help = true
    elseif not k then
      cli.usage_error("option '" .. item .. "' is not key=value")
    else
      if into[k] == nil then order[#order + 1] = k end
      into[k] = v
    end
  end
  return help
end

-- `-o help`, laid out as qemu-img lays it out: with a FILE the protocol's
-- options join the format's, sorted by name.
function createopts.print_help(format, file)
  local list, seen = {}, {}
  local function add(opts)
    for _, o in ipairs(opts) do
      if not seen[o.name] then
        seen[o.name] = true
        list[#list + 1] = o
      end
    end
  end
  add(bh.create_options(format))
  if file then add(bh.create_options("file")) end
  table.sort(list, function(a, b) return a.name < b.name end)
  print(file and "Supported options:" or
        string.format("Supported %s options:", format))
  for _, o in ipairs(list) do
    print(string.format("  %-22s - %s", o.name .. "=<" .. o.type .. ">", o.help))
  end
  if not file then
    print("\nThe protocol level may support further options.\n" ..
          "Specify the target filename to include those options.")
  end
end

-- Whether format's images can have a backing file (it lists
-- backing_file among its creation options).  An unknown format answers
-- true, so that creating names the real problem.
function createopts.takes_backing(format)
  local ok, list = pcall(bh.create_options, format)
  if not ok then return true end
  for _, o in ipairs(list) do
    if o.name == "backing_file" then return true end
  end
  return false
end

return createopts
