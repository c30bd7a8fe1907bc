-- SPDX-License-Identifier: BSD-3-Clause
-- snapshot: list, create, apply and delete internal snapshots
-- (qemu-img snapshot's options, output and exit codes)
--
-- blkhost snapshot [-l | -c NAME | -a NAME | -d NAME] [-f FMT] [-U] [-q] IMAGE
-- The list is qemu-img's table (ID, TAG, VM SIZE, DATE, VM CLOCK, ICOUNT),
-- nothing at all when there are no snapshots.  As qemu-img 7.2: -a finds
-- a snapshot by id first, then by name; -d by name only (the first of
-- that name), so `-d 1` never deletes id 1 unless it is named "1".  Exit
-- status 0 on success, 1 on any error.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local snaptable = require "blkhost.snaptable"

local USAGE = [==[
Usage: blkhost snapshot [-l | -c NAME | -a NAME | -d NAME] [-f FMT] [-U] [-q] IMAGE

List, create, apply (revert to) or delete internal snapshots of IMAGE.

  -l                    list the snapshots (the default)
  -c NAME               create a snapshot called NAME
  -a NAME               revert the image to snapshot NAME (id or name)
  -d NAME               delete snapshot NAME (by name only)
  -f, --format=FMT      driver to open IMAGE with (default: probe)
  -U, --force-share     open without taking the image lock (-l only)
  -q, --quiet           print nothing on success
  -h, --help            this text
]==]

local function list(img)
  local lines = snaptable.lines(img:snapshots())
  if #lines == 0 then return end
  io.stdout:write("Snapshot list:\n", table.concat(lines, "\n"), "\n")
end

return cli.run("snapshot", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "l", "list" },
    { "c", "create", arg = "NAME" },
    { "a", "apply", arg = "NAME" },
    { "d", "delete", arg = "NAME" },
    { "f", "format", arg = "FMT" },
    { "U", "force-share" },
    { "q", "quiet" },
  })
  local n = 0
  for _, k in ipairs { "list", "create", "apply", "delete" } do
    if o[k] then n = n + 1 end
  end
  if n > 1 then cli.usage_error("Cannot mix '-l', '-a', '-c', '-d'") end
  if #rest ~= 1 then cli.usage_error("Expecting one image file name") end
  local listing = n == 0 or o.list
  if o["force-share"] and not listing then
    cli.fail("--force-share/-U can only be used with -l (read-only access)")
  end

  local opts = { format = o.format, readonly = listing or nil }
  if o["force-share"] then opts.file = { locking = false } end
  local ok, img = pcall(bh.open, rest[1], opts)
  if not ok then cli.fail("Could not open '" .. rest[1] .. "': " .. tostring(img)) end

  local what, name, fn
  if listing then
    local lok, err = pcall(list, img)
    img:close()
    if not lok then cli.fail(tostring(err)) end
    return 0
  elseif o.create then
    what, name = "create", o.create
    fn = function() img:snapshot_create(name) end
  elseif o.apply then
    what, name = "apply", o.apply
    fn = function() img:snapshot_apply(name) end
  else
    what, name = "delete", o.delete
    fn = function()
      -- By name only, as qemu-img: the first snapshot called name.
      for _, s in ipairs(img:snapshots()) do
        if s.name == name then return img:snapshot_delete { id = s.id } end
      end
      error("snapshot not found", 0)
    end
  end
  local fok, err = pcall(fn)
  local cok, cerr = pcall(img.close, img)
  if not fok then
    cli.fail(string.format("Could not %s snapshot '%s': %s", what, name,
                           tostring(err)))
  end
  if not cok then cli.fail(tostring(cerr)) end
  return 0
end)
