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
--
-- An image a blkhost server is serving (it holds the write lock): -l, -c
-- and -d go to that server's control socket (found through the lock
-- holder's pid, blkhost/registry.lua, or given with --control PATH), which
-- runs them between its clients' requests.  An image QEMU holds is
-- refused with how to do it through QEMU (blkhost/handoff.lua).

local bh = require "blkhost"
local cli = require "blkhost.cli"
local imageopts = require "blkhost.imageopts"
local handoff = require "blkhost.handoff"
local snaptable = require "blkhost.snaptable"

local USAGE = [==[
Usage: blkhost snapshot [-l | -c NAME | -a NAME | -d NAME] [-f FMT] [-U] [-q] IMAGE

List, create, apply (revert to) or delete internal snapshots of IMAGE.

  -l                    list the snapshots (the default)
  -c NAME               create a snapshot called NAME
  -a NAME               revert the image to snapshot NAME (id or name)
  -d NAME               delete snapshot NAME (by name only)
  -f, --format=FMT      driver to open IMAGE with (default: probe)
  --image-opts          IMAGE is an option string (driver=qcow2,file.filename=F)
  -U, --force-share     open without taking the image lock (-l only)
  --control=PATH        the control socket of the server serving IMAGE
                        (found by itself when the server registered it)
  -q, --quiet           print nothing on success
  -h, --help            this text
]==]

local function list(sns)
  local lines = snaptable.lines(sns)
  if #lines == 0 then return end
  io.stdout:write("Snapshot list:\n", table.concat(lines, "\n"), "\n")
end

-- -l, -c or -d through the control socket of the server serving image.
local function through_server(image, lock_error, control, what, name)
  local sock = handoff.server_for(image, lock_error, control)
  local export = handoff.export_of(sock, image)
  if what == "list" then
    local sns = {}
    for _, s in ipairs(handoff.call(sock, "query-snapshots", { export = export })) do
      sns[#sns + 1] = { id = s.id, name = s.name, date = s.date,
                        vm_state_size = s["vm-state-size"], vm_clock_ns = s["vm-clock-ns"] }
    end
    list(sns)
  elseif what == "create" then
    handoff.call(sock, "snapshot-create", { export = export, name = name })
  else
    handoff.call(sock, "snapshot-delete", { export = export, name = name })
  end
end

return cli.run("snapshot", USAGE, function(args)
  local o, rest = cli.parse(args, {
    { "l", "list" },
    { "c", "create", arg = "NAME" },
    { "a", "apply", arg = "NAME" },
    { "d", "delete", arg = "NAME" },
    { "f", "format", arg = "FMT" },
    { nil, "image-opts" },
    { "U", "force-share" },
    { "q", "quiet" },
    { nil, "control", arg = "PATH" },
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
  local ok, img = true, nil
  if not o.control then ok, img = pcall(imageopts.open, rest[1], opts, o["image-opts"]) end
  if (not ok and handoff.is_lock_error(img) and not o.apply) or o.control then
    if o.apply then cli.fail("--control works with -l, -c and -d (apply reverts "
                             .. "the disk under the server's clients)") end
    local what = listing and "list" or o.create and "create" or "delete"
    local lock_error = img and ("Could not open '" .. rest[1] .. "': " .. tostring(img))
    local hok, err = pcall(through_server, rest[1], lock_error, o.control, what,
                           o.create or o.delete)
    if not hok then
      -- A refusal carries the lock error already; a server's answer says
      -- what failed there.
      if listing or not o.control and tostring(err):find("Could not open", 1, true) == 1 then
        cli.fail(tostring(err))
      end
      cli.fail(string.format("Could not %s snapshot '%s': %s", what,
                             o.create or o.delete, tostring(err)))
    end
    return 0
  end
  if not ok then cli.fail("Could not open '" .. rest[1] .. "': " .. tostring(img)) end

  local what, name, fn
  if listing then
    local lok, err = pcall(function() list(img:snapshots()) end)
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
