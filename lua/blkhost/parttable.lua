-- SPDX-License-Identifier: BSD-3-Clause
-- Printing a partition table, for `blkhost info --partitions` and scripts.
--
--   local parttable = require "blkhost.parttable"
--   local parts, tab = img:partitions()
--   io.write(parttable.human(parts, tab))   -- an aligned text table
--   io.write(parttable.json(parts, tab))    -- a JSON document
--   io.write(parttable.format(parts, tab, "json"))  -- either, by name
--   io.write(parttable.show(img, "human", { sector_size = 4096 }))  -- read + format
--
-- parts and tab are what node:partitions() returns; tab may be nil.
-- JSON keys use hyphens like the rest of blkhost's JSON output
-- ("sector-size", "type-name"); fields a partition does not have (an MBR
-- partition's label, an unknown type's name) are left out.

local bh = require "blkhost"
local json = require "blkhost.json"

local parttable = {}

local COLUMNS = {
  { "Number", "number", right = true },
  { "Start", "offset", right = true },
  { "Size", "size", right = true },
  { "", "human", right = true },
  { "Boot", "boot" },
  { "Type", "kind" },
  { "Label", "label" },
  { "UUID", "uuid" },
}

local function row_of(p)
  local kind = p.type_name or p.type
  if p.scheme == "mbr" and p.type_name then
    kind = p.type_name .. " (" .. p.type .. ")"
  end
  return {
    number = tostring(p.number),
    offset = tostring(p.offset),
    size = tostring(p.size),
    human = bh.human_size(p.size),
    boot = p.bootable and "*" or "",
    kind = kind,
    label = p.label or "",
    uuid = p.uuid or "",
  }
end

-- Text as wide as it looks: UTF-8 continuation bytes take no column.
local function width(s)
  local _, cont = s:gsub("[\128-\191]", "")
  return #s - cont
end

local function pad(s, w, right)
  local fill = string.rep(" ", w - width(s))
  return right and fill .. s or s .. fill
end

function parttable.human(parts, tab)
  local out = {}
  if tab then
    local line = string.format("Partition table: %s, sector size %d, id %s",
                               tab.scheme, tab.sector_size, tab.id)
    if tab.backup_used then
      line = line .. " (from the backup GPT header: the primary is damaged)"
    end
    out[#out + 1] = line
  end
  if #parts == 0 then
    out[#out + 1] = "No partitions."
    return table.concat(out, "\n") .. "\n"
  end
  local rows = {}
  for i, p in ipairs(parts) do rows[i] = row_of(p) end
  -- Columns empty in every row (no labels on MBR) are not shown.
  local cols = {}
  for _, c in ipairs(COLUMNS) do
    local w, used = width(c[1]), false
    for _, r in ipairs(rows) do
      if r[c[2]] ~= "" then used = true end
      w = math.max(w, width(r[c[2]]))
    end
    if used then cols[#cols + 1] = { title = c[1], key = c[2], w = w, right = c.right } end
  end
  local function line(get)
    local cells = {}
    for i, c in ipairs(cols) do
      cells[i] = pad(get(c), c.w, c.right)
    end
    return (table.concat(cells, "  "):gsub("%s+$", ""))
  end
  out[#out + 1] = line(function(c) return c.title end)
  for _, r in ipairs(rows) do
    out[#out + 1] = line(function(c) return r[c.key] end)
  end
  return table.concat(out, "\n") .. "\n"
end

local PART_KEYS = { "number", "scheme", "type", "type-name", "uuid", "label",
                    "offset", "size", "bootable", "logical", "attributes" }

function parttable.json(parts, tab)
  local list = {}
  for i, p in ipairs(parts) do
    local e = {
      number = p.number, scheme = p.scheme, type = p.type,
      ["type-name"] = p.type_name, uuid = p.uuid, label = p.label,
      offset = p.offset, size = p.size, bootable = p.bootable,
    }
    if p.scheme == "mbr" then e.logical = p.logical else e.attributes = p.attributes end
    list[i] = json.object(e, PART_KEYS)
  end
  local doc = { partitions = json.array(list) }
  local keys = { "partitions" }
  if tab then
    doc.scheme = tab.scheme
    doc["sector-size"] = tab.sector_size
    doc.id = tab.id
    doc["backup-used"] = tab.backup_used
    keys = { "scheme", "sector-size", "id", "backup-used", "partitions" }
  end
  return json.encode(json.object(doc, keys), { indent = 4 }) .. "\n"
end

function parttable.format(parts, tab, output)
  if output == nil or output == "human" then
    return parttable.human(parts, tab)
  elseif output == "json" then
    return parttable.json(parts, tab)
  end
  error("partition table output must be human or json, not '" .. tostring(output) .. "'", 2)
end

-- Read node's table (opts as for node:partitions) and format it.
function parttable.show(node, output, opts)
  local parts, tab = node:partitions(opts)
  return parttable.format(parts, tab, output)
end

return parttable
