-- SPDX-License-Identifier: BSD-3-Clause
-- node:partitions(), node:partition() and blkhost.parttable, on the images
-- api.sh made in the directory arg[1]: dos.img (make_dos), gpt.img
-- (make_gpt) and empty.img (a DOS label with no partitions).
package.path = os.getenv("SOURCE_ROOT") .. "/tests/lua/?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"
local parttable = require "blkhost.parttable"

local dir = arg[1]
local MiB = 1024 * 1024

-- ---- listing ----
local dos <close> = bh.open(dir .. "/dos.img", { format = "raw" })
local parts, tab = dos:partitions()
t.is(#parts, 7, "DOS: 7 partitions (3 primaries, the extended one, 3 logicals)")
t.is(tab.scheme, "mbr", "DOS: table scheme is mbr")
t.like(tab.id, "^0x%x%x%x%x%x%x%x%x$", "DOS: table id is the disk signature")
t.is(tab.sector_size, 512, "DOS: sector size 512")
local p1, p4, p5 = parts[1], parts[4], parts[5]
t.ok(p1.number == 1 and p1.scheme == "mbr" and p1.type == "0x83" and
     p1.type_name == "linux" and p1.bootable == true and p1.logical == false,
     "DOS: partition 1 is a bootable linux (0x83) primary")
t.ok(p1.offset == MiB and p1.size == 8 * MiB, "DOS: partition 1 at 1 MiB, 8 MiB long")
t.is(p1.uuid, tab.id:sub(3) .. "-01", "DOS: uuid is Linux's PARTUUID (signature-01)")
t.is(p1.label, nil, "DOS: partitions have no label")
t.is(p4.type_name, "extended", "DOS: partition 4 is the extended container")
t.ok(p5.number == 5 and p5.logical and p5.offset > p4.offset and
     p5.offset + p5.size <= p4.offset + p4.size, "DOS: logical 5 lies inside 4")
t.is(parts[7].type_name, "fat32", "DOS: logical 7 has type 0x0b, fat32")

local gpt <close> = bh.open(dir .. "/gpt.img", { format = "raw", readonly = true })
local gparts, gtab = gpt:partitions()
t.is(#gparts, 5, "GPT: 5 partitions")
t.like(gtab.id, "^%x+%-%x+%-%x+%-%x+%-%x+$", "GPT: table id is the disk GUID")
t.ok(gtab.scheme == "gpt" and gtab.backup_used == false, "GPT: scheme gpt, primary header used")
local names = {}
for _, p in ipairs(gparts) do names[#names + 1] = p.label end
t.is(table.concat(names, ","), "efi,root,swap,home,data", "GPT: labels in order")
t.is(gparts[1].type_name, "efi-system", "GPT: type_name efi-system")
t.is(gparts[2].type, "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "GPT: type GUID in text form")
t.ok(gparts[2].bootable and gparts[2].attributes == 4, "GPT: LegacyBIOSBootable is bit 2, bootable")
t.is(gparts[4].type_name, "linux-home", "GPT: type_name linux-home")
t.is(gparts[5].type_name, "microsoft-basic-data", "GPT: type_name microsoft-basic-data")
t.like(gparts[3].uuid, "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x+$", "GPT: uuid in GUID form")
t.is(#gpt:partitions({ sector_size = 512 }), 5, "GPT: sector_size=512 given explicitly")

-- ---- selecting ----
local function size_of(node) local s = node:size(); node:close(); return s end
t.is(size_of(gpt:partition(2)), 16 * MiB, "partition(2) is a 16 MiB window")
t.is(size_of(gpt:partition { label = "root" }), 16 * MiB, "partition{label='root'}")
t.is(size_of(gpt:partition { type_name = "swap" }), 4 * MiB, "partition{type_name='swap'}")
t.is(size_of(gpt:partition { uuid = gparts[4].uuid:lower() }), 8 * MiB, "partition{uuid=} ignores case")
t.is(size_of(gpt:partition { type = gparts[3].type:lower() }), 4 * MiB, "partition{type=GUID} ignores case")
t.is(size_of(dos:partition { type = "82" }), 4 * MiB, "partition{type='82'} matches MBR 0x82")
t.is(size_of(dos:partition { type_name = "linux", number = 5 }), 4 * MiB, "selectors combine: type_name + number")
t.is(size_of(dos:partition(7)), parts[7].size, "partition(7): the last logical")

local e = t.error_like(function() gpt:partition { label = "nope" } end,
  "no partition with label 'nope'; the table has 1 %(gpt, efi%-system, label 'efi'",
  "not found: the message lists what exists")
t.like(e or "", "5 %(gpt, microsoft%-basic%-data, label 'data'", "not found: ... down to the last partition")
t.error_like(function() dos:partition(9) end, "no partition with number 9; the table has 1 %(mbr, linux",
  "partition(9) on a 7-partition disk: not found")
t.error_like(function() dos:partition { type_name = "linux" } end,
  "3 partitions have type_name 'linux': 1 %(.-%); 5 %(.-%); 6 %(.-%); say which one",
  "ambiguous type_name: the message lists the matches")
t.error_like(function() dos:partition { lable = "x" } end, "unknown partition option 'lable'",
  "misspelt selector refused")
t.error_like(function() dos:partition {} end, "say which partition", "empty selector refused")
t.error_like(function() dos:partition(0) end, "partition numbers start at 1", "partition(0) refused")
t.error_like(function() dos:partition("root") end, "expected a partition number or a table",
  "a bare string refused")
t.error_like(function() dos:partitions { sector_size = "big" } end, "sector_size must be a non%-negative integer",
  "sector_size='big' refused")
t.error_like(function() dos:partitions { sectorsize = 512 } end, "unknown partition option 'sectorsize'",
  "partitions{sectorsize=} refused")

-- ---- window modes ----
do
  local w <close> = dos:partition(5)
  t.is(w:readonly(), false, "a window over a writable disk is writable by default")
  w:write(0, "written-through-window")
  t.is(dos:read(p5.offset, 22), "written-through-window", "a write to window 5 lands at its offset on the disk")
  t.error_like(function() w:write(p5.size - 2, "abc") end, "past the end", "a write past the window's end refused")
  local r <close> = dos:partition(5, { readonly = true })
  t.is(r:readonly(), true, "partition(5, {readonly=true}) is read-only")
  t.error_like(function() r:write(0, "x") end, "read%-only", "writing a read-only window refused")
  t.is(r:read(0, 22), "written-through-window", "the read-only window reads the same bytes")
end
do
  local w <close> = gpt:partition { label = "root" }
  t.is(w:readonly(), true, "a window over a read-only disk is read-only by default")
end
t.error_like(function() gpt:partition(2, { readonly = false }) end, "cannot open a writable",
  "a writable window over a read-only disk refused")

-- ---- printing ----
local function lit(s) return (s:gsub("%W", "%%%0")) end
local human = parttable.human(gparts, gtab)
t.like(human, "^Partition table: gpt, sector size 512, id " .. lit(gtab.id) .. "\n", "human: header line")
t.like(human, "\nNumber +Start +Size +Boot +Type +Label +UUID\n", "human: column titles")
t.like(human, "\n +2 +5242880 +16777216 +16 MiB +%* +linux +root +" .. lit(gparts[2].uuid) .. "\n",
  "human: the row of partition 2")
local dh = parttable.human(parts, tab)
t.ok(not dh:find("Label"), "human: no Label column for MBR")
t.like(dh, "extended %(0x05%)", "human: MBR type shown with its code")
local empty <close> = bh.open(dir .. "/empty.img", { format = "raw", readonly = true })
local eparts, etab = empty:partitions()
t.is(#eparts, 0, "a DOS label with no partitions lists none")
t.like(parttable.human(eparts, etab), "\nNo partitions%.\n$", "human: 'No partitions.'")
t.is(parttable.format(gparts, gtab, "json"), parttable.json(gparts, gtab), "format(..., 'json')")
t.is(parttable.show(gpt, "human"), human, "show(node, 'human') reads and formats")
t.error_like(function() parttable.format(gparts, gtab, "xml") end, "must be human or json",
  "format(..., 'xml') refused")

local jpath = dir .. "/parts.json"
local f = assert(io.open(jpath, "w"))
f:write(parttable.json(gparts, gtab))
f:close()
local out, code = t.sh("/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); " ..
  "p=d[\"partitions\"]; print(d[\"scheme\"], d[\"sector-size\"], len(p), p[1][\"label\"], " ..
  "p[1][\"type-name\"], p[1][\"offset\"], p[1][\"bootable\"])' " .. t.shq(jpath))
t.is(out, "gpt 512 5 root linux 5242880 True\n", "json: parses, keys and values as expected")
f = assert(io.open(jpath, "w"))
f:write(parttable.json(parts, tab))
f:close()
out, code = t.sh("/usr/bin/python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))[\"partitions\"]; " ..
  "print(p[4][\"type\"], p[4][\"logical\"], \"label\" in p[4])' " .. t.shq(jpath))
t.is(out, "0x83 True False\n", "json: MBR partitions have logical and no label")
t.is(code, 0, "json: python exit status 0")

do
  local g2 = bh.open(dir .. "/gpt.img", { format = "raw", readonly = true })
  local w <close> = g2:partition { label = "home" }
  g2:close()
  collectgarbage()
  t.is(#w:read(0, 4096), 4096, "a window keeps working after its disk node is closed")
end

dos:close()
t.error_like(function() dos:partitions() end, "node is closed", "partitions() on a closed node refused")
t.done()
