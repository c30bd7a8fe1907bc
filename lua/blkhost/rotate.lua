-- SPDX-License-Identifier: BSD-3-Clause
-- The image side of snapshot rotation (blkhost/policy.lua has the
-- decision): lock the group, take the new snapshot on every image, plan,
-- delete; and the monitoring check.  Reached as policy.rotate() and
-- policy.check().
--
-- Safety, in the order things happen:
--   * the spec is checked before anything is opened;
--   * a lock file per image (flock, next to the image: .NAME.rotate-lock,
--     or in spec.lock_dir) keeps two rotations of one image apart;
--   * every image is opened and listed before anything changes, so an
--     image QEMU holds, a raw image or a missing file stops the run with
--     nothing changed;
--   * the new snapshot is taken on every image before anything is deleted,
--     so a crash at any point leaves at worst extra snapshots, which the
--     next run deletes (and a half-taken group, which it recognises);
--   * only snapshots named PREFIX<time> are ever deleted.
--
-- Progress: a rotation of large images can take minutes (savevm writes
-- every image, a deletion frees clusters), so each step -- opening an
-- image, taking the snapshot, deleting one snapshot on one image -- can
-- be named on stderr with qemu-img's "(NN.NN/100%)" figure
-- (blkhost/progress.lua).  spec.progress = true shows it from the start
-- (wherever stderr goes), false never; by default it shows only on a
-- terminal and only once the rotation has run PROGRESS_AFTER seconds, so
-- quick runs and cron mail stay as they were.

local bh = require "blkhost"
local policy = require "blkhost.policy"
local progress = require "blkhost.progress"

local rotate = {}

rotate.PROGRESS_AFTER = 2

local function fail(msg)
  error(msg, 0)
end

local function basename(path)
  return path:match("([^/]*)/*$")
end

local function dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

-- "/a/b c" -> "%2Fa%2Fb c": a lock file name for a path, reversible.
local function escape_path(path)
  return (path:gsub("[%%/]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function lock_path(real, lock_dir)
  if lock_dir then
    return lock_dir .. "/blkhost-rotate-" .. escape_path(real) .. ".lock"
  end
  return dirname(real) .. "/." .. basename(real) .. ".rotate-lock"
end

-- One image of the group: {label=, path=, real=, node=, owned=}.
local function describe(img)
  if type(img) == "string" then
    if img == "" then fail("an image path is empty") end
    return { label = img, path = img }
  end
  if type(img) == "userdata" and img.filename then
    if img:closed() then fail("an image node is already closed") end
    local path = img:filename()
    return { label = path ~= "" and path or tostring(img), path = path,
             node = img }
  end
  fail("images must be paths or nodes, not " .. type(img))
end

local function group_of(images)
  if type(images) == "string" or type(images) == "userdata" then
    images = { images }
  end
  if type(images) ~= "table" or #images == 0 then
    fail("no images given: a rotation needs one or more images")
  end
  local group, seen = {}, {}
  for _, img in ipairs(images) do
    local g = describe(img)
    local ok, real = pcall(bh.process.realpath, g.path)
    g.real = ok and real or g.path
    if seen[g.real] then
      fail(g.label .. " is given twice (as " .. seen[g.real] .. " and "
           .. g.label .. ")")
    end
    seen[g.real] = g.label
    group[#group + 1] = g
  end
  return group
end

-- The progress meter of one rotation: meter:step(fraction, what) names a
-- step and sets the figure (0..1 of the whole run).
local function new_meter(want)
  if want ~= nil and want ~= true and want ~= false and want ~= "auto" then
    fail("progress must be true, false or \"auto\", not " .. tostring(want))
  end
  local m = { want = want == nil and "auto" or want, start = bh.timer.now() }
  function m:step(fraction, what)
    if self.want == false then return end
    if not self.p then
      if self.want == "auto" then
        if bh.timer.now() - self.start < rotate.PROGRESS_AFTER then return end
        -- Decided once, by the shell's view of the stderr it inherits.
        local tty = os.execute("test -t 2")
        self.want = tty and true or false
        if not tty then return end
      end
    end
    -- The step's name first; the figure after it is what a terminal
    -- keeps showing ("\r") until the next step's name replaces it.
    io.stderr:write("blkhost rotate: ", what, "\n")
    local pct = math.floor(fraction * 10000 + 0.5) / 100
    if not self.p then
      self.p = progress.new { out = io.stderr, min_skip = 0 }  -- shows 0
      if pct > 0 then self.p:set(pct) end
    else
      self.p:set(pct)
    end
  end
  function m:finish()
    if self.p then self.p:set(100); self.p:finish() end
  end
  return m
end

local function close_group(group)
  for _, g in ipairs(group) do
    if g.owned and g.node then g.node:close() end
  end
end

-- Take every image's rotation lock, in path order (the same order in
-- every process, so two overlapping groups cannot deadlock; the locks are
-- not waited for anyway).
local function lock_group(group, lock_dir)
  local order = {}
  for _, g in ipairs(group) do
    -- A node with no file behind it (memory, null) is this process's own.
    if g.real ~= "" then order[#order + 1] = g end
  end
  table.sort(order, function(a, b) return a.real < b.real end)
  local locks = {}
  local function release()
    for _, l in ipairs(locks) do l:close() end
  end
  for _, g in ipairs(order) do
    local path = lock_path(g.real, lock_dir)
    local ok, lk, msg, pid = pcall(bh.process.lock_file, path)
    if not ok and not lock_dir then
      -- The image's directory may not be ours to write (a read-only
      -- mount, another owner): use the system's lock directory.
      local sys = pcall(bh.process.realpath, "/run/lock") and "/run/lock"
                  or os.getenv("TMPDIR") or "/tmp"
      path = lock_path(g.real, sys)
      ok, lk, msg, pid = pcall(bh.process.lock_file, path)
    end
    if not ok then
      release()
      fail("cannot take the rotation lock for " .. g.label .. ": "
           .. tostring(lk) .. "; nothing was changed")
    end
    if not lk then
      release()
      fail("another rotation of " .. g.label .. " is running"
           .. ((pid and pid > 0) and (" (process " .. pid .. ")") or "")
           .. ", holding " .. path .. "; nothing was changed")
    end
    locks[#locks + 1] = lk
  end
  return release
end

-- Open the images the caller gave as paths; check every one can hold
-- internal snapshots.
local function open_group(group, how, meter)
  for gi, g in ipairs(group) do
    if meter then meter:step(0.1 * (gi - 1) / #group, "opening " .. g.label) end
    if not g.node then
      local ok, node = pcall(bh.open, g.path,
                             { readonly = how.readonly, locking = how.locking })
      if not ok then
        close_group(group)
        local msg = tostring(node)
        local holder = msg:match("is locked: (.-) holds")
                       or msg:match("is locked: (.-) does not share")
        if holder then
          fail(g.label .. " is in use by " .. holder .. "; nothing was changed")
        end
        fail("cannot open " .. g.label .. ": " .. msg .. "; nothing was changed")
      end
      g.node, g.owned = node, true
    elseif not how.readonly and g.node:readonly() then
      close_group(group)
      fail(g.label .. " is open read-only; a rotation needs it writable; "
           .. "nothing was changed")
    end
    local fmt = g.node:format()
    if not g.node.snapshots then
      close_group(group)
      fail("this blkhost has no snapshot support, so " .. g.label
           .. " cannot be rotated; nothing was changed")
    end
    local ok, list = pcall(g.node.snapshots, g.node)
    if not ok then
      close_group(group)
      if fmt ~= "qcow2" then
        fail(g.label .. " is a " .. fmt .. " image: " .. fmt .. " cannot hold "
             .. "internal snapshots (qcow2 can: qemu-img convert -O qcow2); "
             .. "nothing was changed")
      end
      fail("cannot list the snapshots of " .. g.label .. ": " .. tostring(list)
           .. "; nothing was changed")
    end
    g.list = list
  end
end

local function relist(group)
  for _, g in ipairs(group) do g.list = g.node:snapshots() end
end

-- The union of the group's snapshots by name, with the images each lacks
-- and the ids each image has under that name (a name may repeat).
local function union(group)
  local by, out = {}, {}
  for gi, g in ipairs(group) do
    for _, s in ipairs(g.list) do
      local u = by[s.name]
      if not u then
        u = { name = s.name, on = {}, ids = {} }
        by[s.name] = u
        out[#out + 1] = u
      end
      u.on[gi] = true
      u.ids[gi] = u.ids[gi] or {}
      table.insert(u.ids[gi], s.id)
    end
  end
  for _, u in ipairs(out) do
    u.missing = {}
    for gi, g in ipairs(group) do
      if not u.on[gi] then u.missing[#u.missing + 1] = g.label end
    end
  end
  return out, by
end

local function labels(group, which)
  local l = {}
  for gi, g in ipairs(group) do
    if not which or which[gi] then l[#l + 1] = g.label end
  end
  return table.concat(l, ", ")
end

local function emit(p, lines)
  if p.print == false then return end
  for _, line in ipairs(lines) do
    if p.print then
      p.print(line)
    elseif line:match("^warning: ") then
      io.stderr:write("blkhost: ", line, "\n")
    else
      io.stdout:write(line, "\n")
    end
  end
  if not p.print then io.stdout:flush() end
end

-- The state table (spec.state) goes into the snapshot as one savevm
-- section, "blkhost-policy" version 1: the policy's prefix, the snapshot
-- name, the rotation's clock and the table as JSON (sorted keys).  To
-- read it back, register the same section (rotate.STATE_FIELDS) with a
-- set() and loadvm the snapshot, on a copy of the image if the disk must
-- stay as it is.  The section is registered only while the snapshot is
-- taken, so a script's own savevm calls do not carry it.
rotate.STATE_SECTION = "blkhost-policy"
rotate.STATE_VERSION = 1
rotate.STATE_FIELDS = {
  { "prefix", "string" }, { "name", "string" }, { "taken", "i64" },
  { "json", "string" },
}

local state_entry = {}

function state_entry.encode(state)
  local json = require "blkhost.json"
  local ok, text = pcall(json.encode, state)
  if not ok then fail("state cannot be stored: " .. tostring(text)) end
  return text
end

function state_entry.check_group(p)
  if not (bh.vmstate and bh.vmstate.register and bh.savevm) then
    fail("storing state needs bh.vmstate and bh.savevm, which this blkhost "
         .. "lacks; nothing was changed")
  end
  p._state_json = state_entry.encode(p.state)
end

-- Take the snapshot on the images of the group that lack it, as one
-- savevm over exactly those images, dated by the rotation's clock: all or
-- nothing (savevm takes back what it made if one image fails).  With
-- state, the section is registered for the duration of the call, so it
-- lands in the first image's vmstate area.
local function take(group, name, p, now, lacking)
  local nodes, labels = {}, {}
  for gi, g in ipairs(group) do
    if lacking[gi] then
      nodes[#nodes + 1] = g.node
      labels[#labels + 1] = g.label
    end
  end
  if p.state ~= nil then
    local record = { prefix = p.prefix, name = name, taken = now,
                     json = p._state_json or state_entry.encode(p.state) }
    pcall(bh.vmstate.unregister, rotate.STATE_SECTION)
    bh.vmstate.register {
      name = rotate.STATE_SECTION, version = rotate.STATE_VERSION,
      fields = rotate.STATE_FIELDS,
      get = function() return record end,
      set = function() end,
    }
  end
  local ok, err = pcall(bh.savevm, name, { nodes = nodes, date = now })
  if p.state ~= nil then pcall(bh.vmstate.unregister, rotate.STATE_SECTION) end
  if not ok then
    fail("cannot take " .. name .. " on " .. table.concat(labels, ", ") .. ": "
         .. tostring(err) .. "; nothing was deleted")
  end
end

-- policy.rotate(images, spec) -> lines, plan
function rotate.rotate(images, spec)
  local p = policy.normalize(spec)
  local meter = new_meter(spec.progress)
  local now = p.now or os.time()
  local group = group_of(images)
  local release = function() end
  if not p.dry_run then release = lock_group(group, p.lock_dir) end
  if p.hooks.locked then
    local ok, err = pcall(p.hooks.locked)
    if not ok then release(); error(err, 0) end
  end

  local ok, lines, plan = pcall(function()
    open_group(group, { readonly = p.dry_run }, meter)
    if p.state ~= nil and not p.dry_run then
      state_entry.check_group(p)
    end
    local name = policy.name(p, now)
    local snaps, by = union(group)
    local lacking, nlacking = {}, 0
    for gi in ipairs(group) do
      if not (by[name] and by[name].on[gi]) then
        lacking[gi] = true
        nlacking = nlacking + 1
      end
    end
    local head
    if nlacking == 0 then
      head = "exists " .. name .. " on " .. labels(group)
             .. " (a rotation in the same second)"
    elseif p.state ~= nil then
      -- savevm replaces the name everywhere, so it is taken on all.
      head = "create " .. name .. " on " .. labels(group)
      for gi in ipairs(group) do lacking[gi] = true end
    else
      head = "create " .. name .. " on " .. labels(group, lacking)
    end

    if p.dry_run then
      if nlacking > 0 then
        if not by[name] then
          snaps[#snaps + 1] = { name = name, missing = {} }
        else
          by[name].missing = {}
        end
      end
    else
      if nlacking > 0 then
        meter:step(0.1, "taking " .. name .. " on " .. labels(group, lacking))
        take(group, name, p, now, lacking)
      end
      if p.hooks.after_create then p.hooks.after_create(name) end
      relist(group)
      snaps, by = union(group)
    end

    plan = policy.plan(snaps, p, now)
    lines = { head }
    for _, l in ipairs(policy.plan_lines(plan, p.prefix)) do
      lines[#lines + 1] = l
    end
    if p.dry_run then
      lines[#lines + 1] = "dry run: nothing was changed"
      plan.failures = {}
      return lines, plan
    end

    local failures = {}
    local ndelete, done = 0, 0
    for _, e in ipairs(plan) do
      if not e.keep then
        for gi in ipairs(group) do ndelete = ndelete + #((by[e.name].ids[gi]) or {}) end
      end
    end
    for _, e in ipairs(plan) do
      if not e.keep then
        for gi, g in ipairs(group) do
          for _, id in ipairs((by[e.name].ids[gi]) or {}) do
            meter:step(0.4 + 0.6 * done / ndelete, "deleting " .. e.name .. " on " .. g.label)
            done = done + 1
            local dok, derr = pcall(g.node.snapshot_delete, g.node, id)
            if not dok then
              failures[#failures + 1] = "cannot delete " .. e.name .. " (id "
                                        .. id .. ") on " .. g.label .. ": "
                                        .. tostring(derr)
            end
          end
        end
        if p.hooks.after_delete then p.hooks.after_delete(e.name) end
      end
    end
    for _, f in ipairs(failures) do lines[#lines + 1] = "error: " .. f end
    plan.failures = failures
    return lines, plan
  end)

  close_group(group)
  release()
  if ok then meter:finish() end
  if not ok then error(lines, 0) end
  emit(p, lines)
  if #plan.failures > 0 then
    fail(#plan.failures .. " deletion(s) failed; the next run retries them: "
         .. plan.failures[1])
  end
  return lines, plan
end

local NAGIOS = { [0] = "OK", "WARNING", "CRITICAL", "UNKNOWN" }

-- policy.check(images, spec, {warn=, crit=, now=}) -> code, message
-- Nagios style: 0 OK, 1 WARNING, 2 CRITICAL by the age of the newest
-- policy snapshot every image has; 3 UNKNOWN when the images cannot be
-- read.  Images are opened read-only and without locks (as qemu-img -U),
-- so the check works while QEMU runs the VM.
function rotate.check(images, spec, limits)
  limits = limits or {}
  local ok, res = pcall(function()
    local p = policy.normalize(spec, { check = true })
    local warn = policy.parse_duration(limits.warn or "26h", "warn")
    local crit = policy.parse_duration(limits.crit or "50h", "crit")
    if crit < warn then
      fail("crit (" .. policy.format_duration(crit) .. ") is shorter than warn ("
           .. policy.format_duration(warn) .. ")")
    end
    local function text(v, secs)
      return type(v) == "string" and v or policy.format_duration(secs)
    end
    return { p = p, warn = warn, crit = crit,
             warn_text = text(limits.warn or "26h", warn),
             crit_text = text(limits.crit or "50h", crit),
             now = math.tointeger(limits.now or p.now) or os.time() }
  end)
  if not ok then return 3, "UNKNOWN - " .. tostring(res) end
  local p, warn, crit, now = res.p, res.warn, res.crit, res.now
  local warn_text, crit_text = res.warn_text, res.crit_text

  local group
  ok, res = pcall(function()
    group = group_of(images)
    open_group(group, { readonly = true, locking = false })
    local snaps = union(group)
    close_group(group)
    return snaps
  end)
  if not ok then
    if group then close_group(group) end
    return 3, "UNKNOWN - " .. tostring(res):gsub("; nothing was changed$", "")
  end
  local newest, count, future = nil, 0, 0
  for _, s in ipairs(res) do
    local t = policy.parse_name(p.prefix, s.name)
    if t and #s.missing == 0 then
      if t > now then
        future = future + 1
      else
        count = count + 1
        if not newest or t > newest.date then newest = { name = s.name, date = t } end
      end
    end
  end
  local perf = function(age)
    return string.format("|age=%ss;%d;%d;0 snapshots=%d", age or "", warn, crit, count)
  end
  local where = #group == 1 and group[1].label or (#group .. " images")
  if not newest then
    return 2, "CRITICAL - no " .. p.prefix .. " snapshot on " .. where
              .. (future > 0 and (" (only " .. future .. " dated in the future)") or "")
              .. perf(nil)
  end
  local age = now - newest.date
  local code = age >= crit and 2 or age >= warn and 1 or 0
  local msg = NAGIOS[code] .. " - newest snapshot " .. newest.name .. " is "
              .. policy.format_duration(age) .. " old (warn " .. warn_text
              .. ", crit " .. crit_text .. ") on " .. where
  if future > 0 then
    msg = msg .. "; " .. future .. " snapshot(s) dated in the future"
    if code == 0 then code, msg = 1, "WARNING" .. msg:sub(3) end
  end
  return code, msg .. perf(age)
end

return rotate
