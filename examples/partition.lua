-- SPDX-License-Identifier: BSD-3-Clause
-- partition.lua: export only the partition labelled "root" of a GPT image,
-- read-only, over NBD.
--
--   blkhost run examples/partition.lua disk.img
--   blkhost run examples/partition.lua disk.img --socket /tmp/root.sock
--   blkhost run examples/partition.lua disk.img --label home --tcp 127.0.0.1:10809
--
-- The partition is chosen by what it is, not by its number, so the script
-- keeps working when partitions are added or reordered.  If no partition
-- (or more than one) has the label, the error lists the partitions there
-- are.  Clients see a disk the size of the partition, starting at its
-- first byte; they cannot reach the rest of the image, and cannot write.
--
--   nbdinfo 'nbd+unix:///?socket=/tmp/blkhost-root.sock'
--   nbdcopy 'nbd+unix:///?socket=/tmp/blkhost-root.sock' root.img
local bh = require "blkhost"

local image, socket, tcp
local label = "root"
local i = 1
while arg[i] do
  local a = arg[i]
  if a == "--socket" then i = i + 1; socket = arg[i]
  elseif a == "--tcp" then i = i + 1; tcp = arg[i]
  elseif a == "--label" then i = i + 1; label = arg[i]
  elseif a:sub(1, 1) == "-" then
    error("unknown option " .. a .. " (known: --socket PATH, --tcp HOST:PORT, "
          .. "--label LABEL)", 0)
  else image = a end
  i = i + 1
end
if not image then
  error("usage: blkhost run examples/partition.lua IMAGE [--label L] "
        .. "[--socket PATH | --tcp HOST:PORT]", 0)
end

-- Read-only all the way down: the image itself is opened read-only, so
-- the partition window cannot be writable either.
local disk <close> = bh.open(image, { readonly = true })
local parts, tab = disk:partitions()
if tab.scheme ~= "gpt" then
  error(image .. " has an " .. tab.scheme .. " partition table; labels need GPT", 0)
end
local root <close> = disk:partition { label = label }

local tmp = os.getenv("TMPDIR") or "/tmp"
local listen = tcp and "tcp:" .. tcp
               or "unix:" .. (socket or tmp .. "/blkhost-" .. label .. ".sock")
local server <close> = bh.nbd.server{ listen = { listen }, persistent = true }
server:export(root, { name = "", readonly = true,
                      description = image .. " partition '" .. label .. "'" })

for _, p in ipairs(parts) do
  if p.label == label then
    print(string.format("exporting partition %d '%s' (%s, %s at offset %d) at %s",
                        p.number, label, p.type_name or p.type,
                        bh.human_size(p.size), p.offset, server:uri("")))
  end
end
io.stdout:flush()
bh.loop()
