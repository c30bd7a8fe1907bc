-- SPDX-License-Identifier: BSD-3-Clause
-- vmstate: list the sections of a snapshot's saved VM state (blkhost's or QEMU's savevm stream)
--
-- blkhost vmstate [-l] [--output=human|json] [--dump FILE] [-f FMT] [-U] IMAGE SNAPSHOT
-- Reads the vmstate area of SNAPSHOT (its id, else its name) without
-- loading anything, and lists the stream's sections: section id, idstr,
-- instance id, version id, state size (bh.vmstate.sections, over
-- bh_savevm_scan).  A section it cannot decode ends the listing with the
-- reason; the sections before it are still listed (exit status 2).
-- --dump writes the raw stream (vm_state_size bytes), which QEMU's
-- scripts/analyze-migration.py -f FILE reads.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local imageopts = require "blkhost.imageopts"
local json = require "blkhost.json"

local USAGE = [==[
Usage: blkhost vmstate [-l] [--output=human|json] [--dump FILE] [-f FMT] [-U] IMAGE SNAPSHOT

List the sections of the VM state saved in internal snapshot SNAPSHOT
(its id, else its name) of IMAGE: blkhost's savevm streams and QEMU's
(savevm in the QEMU monitor) alike.  Nothing is loaded.

  -l, --list            list the sections (the default unless --dump
                        is given alone)
  --output=FMT          human (default) or json
  --dump=FILE           write the raw savevm stream to FILE (for QEMU's
                        scripts/analyze-migration.py -f FILE)
  -f, --format=FMT      driver to open IMAGE with (default: probe)
  --image-opts          IMAGE is an option string (driver=qcow2,file.filename=F)
  -U, --force-share     open an image another process is writing
  -q, --quiet           with --dump alone, print nothing
  -h, --help            this text

Exit status: 0 every section was listed, 1 an error (nothing listed),
2 the listing stops at a section that cannot be decoded (the reason is
printed).
]==]

local ROW = "%4s  %-32s %8s %8s %12s  %s"

local function find_snapshot(img, image, want)
  local ok, sns = pcall(img.snapshots, img)
  if not ok then
    cli.fail(string.format("Could not list the snapshots of '%s': %s", image, tostring(sns)))
  end
  for _, s in ipairs(sns) do if s.id == want then return s end end
  for _, s in ipairs(sns) do if s.name == want then return s end end
  cli.fail(string.format("Snapshot '%s' does not exist in '%s'", want, image))
end

local function dump(view, size, file)
  local f, err = io.open(file, "wb")
  if not f then cli.fail(string.format("Could not create '%s': %s", file, err)) end
  local pos, CHUNK = 0, 1 << 20
  local ok, why = pcall(function()
    while pos < size do
      local n = math.min(CHUNK, size - pos)
      assert(f:write(bh.vmstate.read(view, pos, n)))
      pos = pos + n
    end
    assert(f:close())
  end)
  if not ok then
    io.close(f)
    os.remove(file)
    cli.fail(string.format("Could not dump the state to '%s' (removed): %s", file, tostring(why)))
  end
end

-- QEMU's JSON trailer, found from the end of the state as the one place
-- where byte 0x06 and a be32 length span exactly to the end (the walk
-- cannot reach it in a stream without section footers).
local TAIL = 16 << 20
local function trailer(view, size)
  local n = math.min(size, TAIL)
  local tail = bh.vmstate.read(view, size - n, n)
  for p = #tail - 4, 1, -1 do
    if tail:byte(p) == 6 and string.unpack(">I4", tail, p + 1) == #tail - p - 4 then
      return tail:sub(p + 5)
    end
  end
end

-- A FULL section's size as the trailer describes it: its fields (QEMU
-- writes runs of equal array elements once, with array_len), plus the
-- marker, name and version of each subsection.
local function described_size(d)
  local n = 0
  for _, f in ipairs(d.fields or {}) do n = n + f.size * (f.array_len or 1) end
  for _, sub in ipairs(d.subsections or {}) do
    n = n + 1 + 1 + #sub.vmsd_name + 4 + described_size(sub)
  end
  return n
end

-- The walk, with the stream's own page size (in its JSON trailer) for its
-- RAM section (QEMU targets other than x86 may use other sizes); when it
-- stops before EOF (a stream without section footers), again with the
-- sizes the trailer gives every FULL section.
local function scan(view, size)
  local opts = { size = size }
  local sc = bh.vmstate.sections(view, opts)
  local desc_json = sc.vmdesc
  if not sc.complete then desc_json = trailer(view, size) end
  local redo = false
  -- A trailer that is not the JSON expected is ignored, not an error.
  pcall(function()
    local desc = require("dkjson").decode(desc_json)
    local ps = math.tointeger(desc.page_size)
    if ps and ps ~= sc.page_size and ps > 0 and ps & (ps - 1) == 0 then
      opts.page_size, redo = ps, true
    end
    if not sc.complete then
      local sizes = {}
      for i, d in ipairs(desc.devices) do
        sizes[i] = { idstr = d.name, instance_id = d.instance_id, size = described_size(d) }
      end
      opts.sizes, redo = sizes, true
    end
  end)
  if not redo then return sc end
  local again = bh.vmstate.sections(view, opts)
  -- Where the described sizes do not lead to EOF either, the first
  -- walk's reason is kept (the footer it did not find, say).
  if again.complete or (sc.complete and not again.described) then return again end
  return sc
end

local function records(s)
  if not s.iterative then return "full" end
  return string.format("iterative, %d record%s%s", s.records, s.records == 1 and "" or "s",
                       s.ended and "" or ", no END")
end

local function human(image, sn, sc)
  print(string.format("Snapshot '%s' (id %s) of '%s': %d bytes of VM state",
                      sn.name, sn.id, image, sn.vm_state_size))
  print(string.format("Stream: QEVM version %d%s", sc.version,
                      sc.machine and (", machine " .. sc.machine) or ""))
  if sc.described then
    print("No section footers: the sizes of FULL sections are those its JSON description gives")
  end
  print(string.format(ROW, "ID", "IDSTR", "INSTANCE", "VERSION", "SIZE", "RECORDS"))
  for _, s in ipairs(sc.sections) do
    print(string.format(ROW, s.section_id, s.idstr, s.instance_id, s.version_id, s.size,
                        records(s)))
  end
  if sc.complete then
    print(string.format("EOF at offset %d; %s", sc.eof_offset, sc.vmdesc
      and string.format("JSON description of %d bytes at offset %d", #sc.vmdesc, sc.vmdesc_offset)
      or "no JSON description"))
  end
end

local function as_json(image, sn, sc)
  local secs = json.array {}
  for i, s in ipairs(sc.sections) do
    secs[i] = json.object({ ["section-id"] = s.section_id, idstr = s.idstr,
      ["instance-id"] = s.instance_id, ["version-id"] = s.version_id, offset = s.offset,
      size = s.size, iterative = s.iterative, records = s.records, ended = s.ended },
      { "section-id", "idstr", "instance-id", "version-id", "offset", "size", "iterative",
        "records", "ended" })
  end
  local t = { filename = image,
    snapshot = json.object({ id = sn.id, name = sn.name }, { "id", "name" }),
    ["vm-state-size"] = sn.vm_state_size, ["format-version"] = sc.version,
    machine = sc.machine, ["page-size"] = sc.page_size,
    ["sizes-from-description"] = sc.described, sections = secs,
    complete = sc.complete, ["eof-offset"] = sc.eof_offset,
    ["vmdesc-offset"] = sc.vmdesc_offset, ["vmdesc-size"] = sc.vmdesc and #sc.vmdesc,
    error = sc.error, ["stop-offset"] = sc.stop_offset }
  print(json.encode(json.object(t, { "filename", "snapshot", "vm-state-size", "format-version",
    "machine", "page-size", "sizes-from-description", "sections", "complete", "eof-offset", "vmdesc-offset",
    "vmdesc-size", "error", "stop-offset" }), { indent = 4 }))
end

return cli.run("vmstate", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "l", "list" },
    { nil, "output", arg = "FMT" },
    { nil, "dump", arg = "FILE" },
    { "f", "format", arg = "FMT" },
    { nil, "image-opts" },
    { "U", "force-share" },
  })
  local output = o.output or "human"
  if output ~= "human" and output ~= "json" then
    cli.usage_error("--output must be human or json, not '" .. output .. "'")
  end
  if #rest ~= 2 then cli.usage_error("Expecting an image file name and a snapshot") end
  local image, want = rest[1], rest[2]
  local listing = o.list or o.output or not o.dump

  local opts = { format = o.format, readonly = true }
  if o["force-share"] then opts.locking = false end
  local ok, img = pcall(bh.open, imageopts.apply(image, opts, o["image-opts"]))
  if not ok then cli.fail(tostring(img)) end
  local _ <close> = img
  local sn = find_snapshot(img, image, want)
  if sn.vm_state_size == 0 then
    cli.fail(string.format("Snapshot '%s' of '%s' is a disk-only snapshot: it holds no "
                           .. "saved VM state", sn.name, image))
  end
  local view <close> = img:snapshot_open(sn.id)
  if o.dump then dump(view, sn.vm_state_size, o.dump) end
  if not listing then return 0 end

  local sok, sc = pcall(scan, view, sn.vm_state_size)
  if not sok then
    cli.fail(string.format("The state in snapshot '%s' of '%s' is not a savevm stream: %s",
                           sn.name, image, tostring(sc)))
  end
  if output == "json" then as_json(image, sn, sc) else human(image, sn, sc) end
  if not sc.complete then
    io.stderr:write(string.format("blkhost vmstate: stopped at offset %d: %s\n",
                                  sc.stop_offset, sc.error))
    return 2
  end
  return 0
end)
