-- SPDX-License-Identifier: BSD-3-Clause
-- Snapshot retention: which of a rotation's snapshots to keep, and the
-- rotation itself (take a snapshot of a group of images, then delete what
-- the policy no longer keeps), as nightly jobs need it.
--
--   local policy = require "blkhost.policy"
--   local spec = { prefix = "nightly-",
--                  keep = { daily = 7, weekly = 4, monthly = 12 },
--                  within = "36h", min_age = "1h", timezone = "UTC",
--                  pin = "nightly-2026-01-01T*", state = { job = "x" } }
--   local lines, plan = policy.rotate({ "disk1.qcow2", "disk2.qcow2" }, spec)
--   local code, msg = policy.check({ "disk1.qcow2" }, spec,
--                                  { warn = "26h", crit = "50h" })
--
-- Also in spec: dry_run = true (plan and print only), now = unix seconds
-- (instead of the clock), print = false or function(line), lock_dir =
-- where the lock files go, hooks = {locked=, after_create=,
-- after_delete=} (functions called at those points; the tests use them
-- to stop a rotation there), progress = true/false/"auto" (per-image
-- steps on stderr; blkhost/rotate.lua).
--
-- The decision is a pure function, policy.plan(snapshots, spec, now),
-- so it can be tried over years of simulated nights without an image;
-- rotate() and check() (blkhost/rotate.lua) only add the images.
--
-- The rules, ORed: keep.last = N keeps the N newest; keep.hourly/daily/
-- weekly/monthly/yearly = N keeps the newest snapshot of each of the N
-- most recent hours/days/ISO weeks/months/years that have one (in
-- spec.timezone); within = "36h" keeps everything younger than that.
-- Whatever the rules say, the newest snapshot, snapshots younger than
-- min_age, pinned ones and ones dated in the future are never deleted.
--
-- A policy owns exactly the snapshots named PREFIX + an ISO 8601 time
-- with its UTC offset (nightly-2026-03-29T02:30:00+0200); the offset
-- keeps the two 02:30s of a night when clocks go back apart.  Any other
-- snapshot, including hand-made ones that merely start with the prefix,
-- is never touched.

local timezone = require "blkhost.timezone"

local policy = {}

policy.PERIODS = { "hourly", "daily", "weekly", "monthly", "yearly" }
local KEEP_KEYS = { "last", "hourly", "daily", "weekly", "monthly", "yearly" }
local SPEC_KEYS = {
  "prefix", "keep", "within", "min_age", "timezone", "pin", "state",
  "dry_run", "now", "print", "lock_dir", "hooks", "progress",
}

local function fail(msg)
  error(msg, 0)
end

local function set_of(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end
local spec_key_set, keep_key_set = set_of(SPEC_KEYS), set_of(KEEP_KEYS)

------------------------------------------------------------------------
-- Durations: "36h", "7d", "2w", "1h30m", "90s", or a number of seconds.

local UNIT = { s = 1, m = 60, h = 3600, d = 86400, w = 7 * 86400 }

function policy.parse_duration(v, what)
  what = what or "duration"
  if math.type(v) == "integer" and v >= 0 then return v end
  if type(v) == "number" and v >= 0 and v == math.floor(v) then
    return math.tointeger(v)
  end
  local function bad()
    fail(what .. " '" .. tostring(v) .. "' is not a duration (expected a "
         .. "whole number and a unit s, m, h, d or w, e.g. 36h, 7d, 2w or 1h30m)")
  end
  if type(v) ~= "string" or v == "" then bad() end
  local total, pos = 0, 1
  while pos <= #v do
    local n, u = v:match("^(%d+)([smhdw])", pos)
    if not n or #n > 12 then bad() end
    total = total + tonumber(n) * UNIT[u]
    pos = pos + #n + 1
  end
  return total
end

-- 93784 -> "1d2h3m4s"; the shortest exact form.
function policy.format_duration(secs)
  if secs == 0 then return "0s" end
  local out = {}
  if secs < 0 then out[1] = "-"; secs = -secs end
  for _, u in ipairs { { "w", 7 * 86400 }, { "d", 86400 }, { "h", 3600 },
                       { "m", 60 }, { "s", 1 } } do
    if secs >= u[2] then
      out[#out + 1] = (secs // u[2]) .. u[1]
      secs = secs % u[2]
    end
  end
  return table.concat(out)
end

------------------------------------------------------------------------
-- Pins: shell-style globs (* ? [...]) over the whole name.

local function glob_to_pattern(glob)
  local out, i = { "^" }, 1
  while i <= #glob do
    local c = glob:sub(i, i)
    if c == "*" then
      out[#out + 1] = ".*"
    elseif c == "?" then
      out[#out + 1] = "."
    elseif c == "[" and glob:find("]", i + 2, true) then
      local close = glob:find("]", i + 2, true)
      local body = glob:sub(i + 1, close - 1)
      local neg = body:sub(1, 1) == "!" or body:sub(1, 1) == "^"
      if neg then body = body:sub(2) end
      body = body:gsub("[%%%]%^]", "%%%0")
      out[#out + 1] = "[" .. (neg and "^" or "") .. body .. "]"
      i = close
    else
      out[#out + 1] = c:gsub("%p", "%%%0")
    end
    i = i + 1
  end
  out[#out + 1] = "$"
  return table.concat(out)
end
policy.glob_to_pattern = glob_to_pattern

------------------------------------------------------------------------
-- The spec.

-- policy.normalize(spec [, {check=true}]) -> a checked copy with
-- durations in seconds, the zone loaded and every count filled in.
-- Errors name the field and say what was expected.  {check=true} is for
-- monitoring, which needs the prefix and zone but no keep rules.
function policy.normalize(spec, how)
  if type(spec) ~= "table" then
    fail("the policy must be a table (prefix=, keep=, ...)")
  end
  if spec._normalized then return spec end
  how = how or {}
  for k in pairs(spec) do
    if not spec_key_set[k] then
      fail("unknown policy field '" .. tostring(k) .. "' (known: "
           .. table.concat(SPEC_KEYS, ", ") .. ")")
    end
  end
  local p = { _normalized = true }

  local prefix = spec.prefix
  if type(prefix) ~= "string" or prefix == "" then
    fail("the prefix must be a non-empty string (it marks the snapshots this "
         .. "policy owns), e.g. \"nightly-\"")
  end
  if prefix:find("/", 1, true) then
    fail("the prefix '" .. prefix .. "' must not contain '/'")
  end
  if prefix:find("[%c]") then
    fail("the prefix must not contain control characters")
  end
  if #prefix > 200 then fail("the prefix is longer than 200 bytes") end
  p.prefix = prefix

  local keep = spec.keep
  if keep ~= nil and type(keep) ~= "table" then
    fail("keep must be a table such as {daily = 7, weekly = 4}")
  end
  p.keep = {}
  local any = false
  for k, v in pairs(keep or {}) do
    if not keep_key_set[k] then
      fail("unknown keep rule '" .. tostring(k) .. "' (known: "
           .. table.concat(KEEP_KEYS, ", ") .. ")")
    end
    local n = math.tointeger(type(v) == "string" and tonumber(v) or v)
    if not n or n < 0 then
      fail("keep." .. k .. " is " .. tostring(v) .. ": a count must be a "
           .. "whole number, 0 or more")
    end
    p.keep[k] = n
    if n > 0 then any = true end
  end
  for _, k in ipairs(KEEP_KEYS) do p.keep[k] = p.keep[k] or 0 end

  if spec.within ~= nil then
    p.within = policy.parse_duration(spec.within, "within")
    if p.within > 0 then any = true end
  end
  if spec.min_age ~= nil then
    p.min_age = policy.parse_duration(spec.min_age, "min_age")
  end
  if not any and not how.check then
    fail("empty policy: keep needs at least one of last, hourly, daily, "
         .. "weekly, monthly or yearly above 0 (or set within); a policy "
         .. "that keeps nothing would delete every snapshot but the newest")
  end

  local tzname = spec.timezone or "UTC"
  p.timezone = tzname
  p.zone = timezone.zone(tzname)   -- raises for unknown zones

  p.pins = {}
  local pins = spec.pin
  if type(pins) == "string" or type(pins) == "function" then pins = { pins } end
  if pins ~= nil and type(pins) ~= "table" then
    fail("pin must be a glob such as \"nightly-2026-01-*\", a list of globs "
         .. "or a function(name)")
  end
  for _, g in ipairs(pins or {}) do
    if type(g) == "string" then
      if g == "" then fail("an empty pin pattern matches nothing") end
      p.pins[#p.pins + 1] = { text = g, pattern = glob_to_pattern(g) }
    elseif type(g) == "function" then
      p.pins[#p.pins + 1] = { text = "function", fn = g }
    else
      fail("pin entries must be globs (strings) or functions")
    end
  end

  if spec.state ~= nil and type(spec.state) ~= "table" then
    fail("state must be a table (stored with the snapshot)")
  end
  p.state = spec.state
  p.dry_run = spec.dry_run and true or false
  if spec.now ~= nil then
    p.now = math.tointeger(spec.now)
    if not p.now then fail("now must be a whole number of seconds since 1970") end
  end
  if spec.print ~= nil and spec.print ~= false and type(spec.print) ~= "function" then
    fail("print must be a function(line) or false")
  end
  p.print = spec.print
  if spec.lock_dir ~= nil and type(spec.lock_dir) ~= "string" then
    fail("lock_dir must be a directory path")
  end
  p.lock_dir = spec.lock_dir
  if spec.hooks ~= nil and type(spec.hooks) ~= "table" then
    fail("hooks must be a table of functions")
  end
  p.hooks = spec.hooks or {}
  return p
end

------------------------------------------------------------------------
-- Names.

-- The name a snapshot taken at instant t gets: prefix, wall time in the
-- policy's zone, UTC offset.
function policy.name(spec, t)
  local p = policy.normalize(spec, { check = true })
  local lt = p.zone:localtime(t)
  return string.format("%s%04d-%02d-%02dT%02d:%02d:%02d%s", p.prefix,
                       lt.year, lt.month, lt.day, lt.hour, lt.min, lt.sec,
                       timezone.format_offset(lt.offset))
end

-- The instant a policy name stands for, or nil when name is not
-- PREFIX + a well-formed timestamp (then the snapshot is not ours).
function policy.parse_name(prefix, name)
  if type(name) ~= "string" or name:sub(1, #prefix) ~= prefix then return nil end
  local y, mo, d, h, mi, s, sign, oh, om = name:sub(#prefix + 1):match(
    "^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)([%+%-])(%d%d)(%d%d)$")
  if not y then return nil end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h),
                       tonumber(mi), tonumber(s)
  oh, om = tonumber(oh), tonumber(om)
  if mo < 1 or mo > 12 or d < 1 or d > timezone.days_in_month(y, mo)
     or h > 23 or mi > 59 or s > 60 or oh > 23 or om > 59 then
    return nil
  end
  local off = (oh * 3600 + om * 60) * (sign == "-" and -1 or 1)
  return timezone.civil_seconds { year = y, month = mo, day = d, hour = h,
                                  min = mi, sec = s } - off
end

------------------------------------------------------------------------
-- The plan.

-- Bucket labels of instant t for each period.
local function buckets(zone, t)
  local lt = zone:localtime(t)
  local iy, iw = timezone.iso_week(lt)
  return {
    hourly = string.format("%04d-%02d-%02dT%02d%s", lt.year, lt.month, lt.day,
                           lt.hour, timezone.format_offset(lt.offset)),
    daily = string.format("%04d-%02d-%02d", lt.year, lt.month, lt.day),
    weekly = string.format("%04d-W%02d", iy, iw),
    monthly = string.format("%04d-%02d", lt.year, lt.month),
    yearly = string.format("%04d", lt.year),
  }
end
policy.buckets = function(spec, t)
  return buckets(policy.normalize(spec, { check = true }).zone, t)
end

-- policy.plan(snapshots, spec [, now]) -> plan
--
-- snapshots: list of {name=, missing={image, ...}?} (extra fields are
-- ignored; `missing` lists the images of the group that lack it).
-- plan: a list of entries for the policy's own snapshots, newest first,
-- each {name=, date=, keep=bool, rules={...}, reason=, buckets={...}},
-- and plan.foreign (names of other snapshots), plan.warnings,
-- plan.newest (entry or nil), plan.now.
--
-- Rules in an entry: "newest", "last", the periods, "within", "min_age",
-- "pin", "future".  A snapshot that some images of the group lack and
-- that is newer than the oldest complete one is left over from an
-- interrupted rotation: no keep rule counts it, so it goes unless pinned,
-- younger than min_age or in the future.  (Older incomplete ones predate
-- an image joining the group and are judged like the rest.)
function policy.plan(snapshots, spec, now)
  local p = policy.normalize(spec)
  now = math.tointeger(now or p.now or os.time())
  if not now then fail("now must be a whole number of seconds") end
  local plan = { foreign = {}, warnings = {}, now = now }

  for _, s in ipairs(snapshots) do
    local t = policy.parse_name(p.prefix, s.name)
    if t then
      plan[#plan + 1] = { name = s.name, date = t, rules = {}, notes = {},
                          missing = s.missing, buckets = buckets(p.zone, t) }
    else
      plan.foreign[#plan.foreign + 1] = s.name
    end
  end
  table.sort(plan, function(a, b)
    if a.date ~= b.date then return a.date > b.date end
    return a.name > b.name
  end)

  local oldest_complete
  for _, e in ipairs(plan) do
    if not (e.missing and #e.missing > 0) then oldest_complete = e.date end
  end

  local function add(e, rule, note)
    e.rules[#e.rules + 1] = rule
    e.notes[#e.notes + 1] = note or rule
  end

  -- Candidates for the keep rules, newest first.
  local cand = {}
  for _, e in ipairs(plan) do
    if e.date > now then
      add(e, "future", "dated " .. policy.format_duration(e.date - now)
                       .. " in the future")
      plan.warnings[#plan.warnings + 1] = e.name .. " is dated "
        .. policy.format_duration(e.date - now) .. " in the future; it is "
        .. "kept and not counted (is the clock right?)"
    elseif e.missing and #e.missing > 0 and oldest_complete
           and e.date > oldest_complete then
      e.interrupted = true
    else
      cand[#cand + 1] = e
    end
  end

  if cand[1] then
    plan.newest = cand[1]
    add(cand[1], "newest")
  end
  for i = 1, math.min(p.keep.last, #cand) do
    add(cand[i], "last", "last " .. i .. "/" .. p.keep.last)
  end
  for _, period in ipairs(policy.PERIODS) do
    local n = p.keep[period]
    if n > 0 then
      local seen, count = {}, 0
      for _, e in ipairs(cand) do
        local key = e.buckets[period]
        if not seen[key] then
          seen[key] = true
          count = count + 1
          if count > n then break end
          add(e, period, period .. " " .. key)
        end
      end
    end
  end
  for _, e in ipairs(plan) do
    local age = now - e.date
    if p.within and not e.interrupted and age >= 0 and age < p.within then
      add(e, "within", "within " .. policy.format_duration(p.within))
    end
    if p.min_age and age >= 0 and age < p.min_age then
      add(e, "min_age", "younger than min_age " .. policy.format_duration(p.min_age))
    end
    for _, pin in ipairs(p.pins) do
      local hit
      if pin.fn then hit = pin.fn(e.name) else hit = e.name:match(pin.pattern) end
      if hit then
        add(e, "pin", "pinned (" .. pin.text .. ")")
        break
      end
    end
    e.keep = #e.rules > 0
    if e.keep then
      e.reason = table.concat(e.notes, ", ")
    elseif e.interrupted then
      e.reason = "left by an interrupted rotation (missing on "
                 .. table.concat(e.missing, ", ") .. ")"
    else
      e.reason = "no rule keeps it"
    end
    if e.keep and e.missing and #e.missing > 0 then
      e.reason = e.reason .. "; missing on " .. table.concat(e.missing, ", ")
    end
    e.notes = nil
  end
  return plan
end

-- The lines a plan prints: one per snapshot, newest first, then the
-- snapshots the policy does not own, then warnings.
function policy.plan_lines(plan, prefix)
  local lines, width = {}, 0
  for _, e in ipairs(plan) do width = math.max(width, #e.name) end
  for _, n in ipairs(plan.foreign) do width = math.max(width, #n) end
  local fmt = "%-6s %-" .. width .. "s  %s"
  for _, e in ipairs(plan) do
    lines[#lines + 1] = string.format(fmt, e.keep and "keep" or "delete",
                                      e.name, e.reason)
  end
  for _, n in ipairs(plan.foreign) do
    lines[#lines + 1] = string.format(fmt, "ignore", n,
      "not this policy's (not named " .. (prefix or "PREFIX") .. "<time>)")
  end
  for _, w in ipairs(plan.warnings) do
    lines[#lines + 1] = "warning: " .. w
  end
  return lines
end

-- The image side lives in blkhost/rotate.lua, loaded on first use, so
-- the planner stays usable without the bindings.
function policy.rotate(images, spec)
  return require("blkhost.rotate").rotate(images, spec)
end

function policy.check(images, spec, limits)
  return require("blkhost.rotate").check(images, spec, limits)
end

return policy
