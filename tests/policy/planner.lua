-- SPDX-License-Identifier: BSD-3-Clause
-- The retention planner (blkhost.policy.plan) over simulated years, with
-- no image: each night adds the night's snapshot and keeps what the plan
-- keeps, as a real rotation would.  Small policies are checked against
-- retained sets written out by hand; random larger ones against
-- properties (the count bound, the newest of every counted bucket, and
-- that 400 nightly rotations end where one plan over all of them does).
--
--   blkhost run tests/policy/planner.lua [NIGHTS] [RANDOM_POLICIES]
package.path = os.getenv("SOURCE_ROOT") .. "/tests/lua/?.lua;" .. package.path
local t = require "tap"
local policy = require "blkhost.policy"
local timezone = require "blkhost.timezone"

local NIGHTS = tonumber(arg[1]) or 400
local RANDOM = tonumber(arg[2]) or 60
local UTC = timezone.zone("UTC")
local START = UTC:mktime { year = 2025, month = 1, day = 1, hour = 2, min = 30 }
local DAY = 86400

-- Run rotations at the given instants; returns the names kept at the end
-- (newest first), the names ever taken, and whether every intermediate
-- plan kept the newest and deleted only policy snapshots.
local function simulate(spec, times, extra)
  local snaps = {}
  for _, n in ipairs(extra or {}) do snaps[#snaps + 1] = { name = n } end
  local all, plan, sound = {}, nil, true
  for _, now in ipairs(times) do
    local name = policy.name(spec, now)
    all[#all + 1] = name
    snaps[#snaps + 1] = { name = name }
    plan = policy.plan(snaps, spec, now)
    if not (plan[1] and plan[1].name == name and plan[1].keep) then
      sound = false
    end
    local kept = {}
    for _, f in ipairs(plan.foreign) do kept[#kept + 1] = { name = f } end
    for _, e in ipairs(plan) do
      if e.keep then kept[#kept + 1] = { name = e.name } end
    end
    snaps = kept
  end
  local names = {}
  for _, e in ipairs(plan) do
    if e.keep then names[#names + 1] = e.name end
  end
  return names, all, plan, sound
end

local function nightly(n, start)
  local times = {}
  for i = 0, n - 1 do times[#times + 1] = (start or START) + i * DAY end
  return times
end

local function day_names(prefix, list)
  local out = {}
  for _, d in ipairs(list) do out[#out + 1] = prefix .. d .. "T02:30:00+0000" end
  return out
end

local function same_list(got, want, desc)
  local ok = #got == #want
  for i = 1, math.max(#got, #want) do
    if got[i] ~= want[i] then ok = false end
  end
  t.ok(ok, desc)
  if not ok then
    t.diag("got:  " .. table.concat(got, " "))
    t.diag("want: " .. table.concat(want, " "))
  end
end

------------------------------------------------------------------------
-- Small policies, retained sets written out by hand.  400 nights from
-- 2025-01-01 end on Wednesday 2026-02-04 (ISO week 2026-W06).

local P = "nightly-"
local cases = {
  { "keep.last=3", { last = 3 }, { "2026-02-04", "2026-02-03", "2026-02-02" } },
  { "daily=7 weekly=4 monthly=3 yearly=2",
    { daily = 7, weekly = 4, monthly = 3, yearly = 2 },
    { "2026-02-04", "2026-02-03", "2026-02-02", "2026-02-01", "2026-01-31",
      "2026-01-30", "2026-01-29", "2026-01-25", "2026-01-18", "2025-12-31" } },
  { "weekly=2 monthly=2", { weekly = 2, monthly = 2 },
    { "2026-02-04", "2026-02-01", "2026-01-31" } },
  { "yearly=5", { yearly = 5 }, { "2026-02-04", "2025-12-31" } },
  { "monthly=14 (more months than there are)", { monthly = 14 },
    { "2026-02-04", "2026-01-31", "2025-12-31", "2025-11-30", "2025-10-31",
      "2025-09-30", "2025-08-31", "2025-07-31", "2025-06-30", "2025-05-31",
      "2025-04-30", "2025-03-31", "2025-02-28", "2025-01-31" } },
}
for _, c in ipairs(cases) do
  local spec = { prefix = P, keep = c[2] }
  local names, _, _, sound = simulate(spec, nightly(NIGHTS))
  if NIGHTS == 400 then
    same_list(names, day_names(P, c[3]), "400 nights, " .. c[1] .. ": the hand-written set remains")
  else
    t.skip("hand-written set of " .. c[1] .. " is for 400 nights")
  end
  t.ok(sound, c[1] .. ": every night's new snapshot is the kept newest")
end

-- A checkpoint inside a month: 59 nights end on Friday 2025-02-28.
do
  local names = simulate({ prefix = P, keep = { daily = 7, weekly = 4, monthly = 3, yearly = 2 } },
                         nightly(59))
  same_list(names, day_names(P, { "2025-02-28", "2025-02-27", "2025-02-26",
    "2025-02-25", "2025-02-24", "2025-02-23", "2025-02-22", "2025-02-16",
    "2025-02-09", "2025-01-31" }), "59 nights, daily=7 weekly=4 monthly=3 yearly=2: hand-written set")
end

-- within: exactly the snapshots younger than it, plus the rules.
do
  local names = simulate({ prefix = P, keep = { monthly = 1 }, within = "3d" }, nightly(NIGHTS))
  if NIGHTS == 400 then
    same_list(names, day_names(P, { "2026-02-04", "2026-02-03", "2026-02-02" }),
              "within=3d monthly=1: a snapshot exactly 3d old is not younger than 3d")
  else
    t.skip("within=3d set is for 400 nights")
  end
  names = simulate({ prefix = P, within = "1h30m" }, nightly(30))
  t.is(#names, 1, "within=1h30m alone over nightly snapshots keeps only the newest")
end

-- Pins survive everything; foreign snapshots are not the planner's.
do
  local spec = { prefix = P, keep = { daily = 2 }, pin = "nightly-2025-03-1*" }
  local names = simulate(spec, nightly(NIGHTS), { "before-upgrade", "nightly-manual" })
  local want = day_names(P, { "2026-02-04", "2026-02-03" })
  for d = 19, 10, -1 do want[#want + 1] = P .. "2025-03-" .. d .. "T02:30:00+0000" end
  if NIGHTS == 400 then
    same_list(names, want, "daily=2 pin=nightly-2025-03-1*: the 10 pinned nights stay")
  else
    t.skip("pin set is for 400 nights")
  end
  local plan = policy.plan({ { name = "before-upgrade" }, { name = "nightly-manual" },
                             { name = P .. "2025-03-11T02:30:00+0000" } }, spec, START + 400 * DAY)
  t.ok(#plan == 1 and #plan.foreign == 2,
       "a hand-made name and one that only starts with the prefix are foreign")
  local lines = policy.plan_lines(plan, P)
  t.like(lines[1], "^keep +nightly%-2025%-03%-11T02:30:00%+0000 +newest, daily 2025%-03%-11, pinned %(nightly%-2025%-03%-1%*%)$",
         "plan line: verb, name, every rule that matched")
  t.like(lines[2], "^ignore +before%-upgrade +not this policy's", "foreign snapshots are listed as ignored")
end

-- min_age overrides the rules; future snapshots are kept, warned about,
-- and not counted.
do
  local now = START + 10 * DAY
  local snaps = {}
  for i = 0, 10 do snaps[#snaps + 1] = { name = policy.name({ prefix = P }, START + i * DAY) } end
  snaps[#snaps + 1] = { name = policy.name({ prefix = P }, now + 5 * DAY) }
  local plan = policy.plan(snaps, { prefix = P, keep = { last = 1 }, min_age = "2d" }, now)
  local kept = {}
  for _, e in ipairs(plan) do if e.keep then kept[#kept + 1] = e.name:sub(#P + 1, #P + 10) end end
  same_list(kept, { "2025-01-16", "2025-01-11", "2025-01-10" },
            "min_age=2d keeps 1d- and 0d-old snapshots; the future one is kept")
  t.is(plan.newest and plan.newest.name, policy.name({ prefix = P }, now),
       "the newest is the newest not in the future")
  t.ok(#plan.warnings == 1 and plan.warnings[1]:find("5d in the future", 1, true),
       "a snapshot dated in the future gets a warning")
  t.is(plan[1].reason, "dated 5d in the future", "the future snapshot's reason says so")
end

-- An interrupted group: a name some images lack, newer than the oldest
-- complete one, is not counted; an older one (a disk that joined later)
-- is judged like the rest.
do
  local now = START + 3 * DAY
  local function n(i) return policy.name({ prefix = P }, START + i * DAY) end
  local snaps = {
    { name = n(0), missing = { "b.qcow2" } },
    { name = n(1), missing = {} },
    { name = n(2), missing = { "b.qcow2" } },
    { name = n(3) },
  }
  local plan = policy.plan(snaps, { prefix = P, keep = { daily = 10 } }, now)
  local by = {}
  for _, e in ipairs(plan) do by[e.name] = e end
  t.ok(by[n(2)] and not by[n(2)].keep and by[n(2)].reason:find("interrupted rotation", 1, true),
       "a half-taken group between complete ones is deleted as an interrupted rotation")
  t.ok(by[n(0)].keep and by[n(0)].reason:find("missing on b.qcow2", 1, true),
       "an incomplete snapshot older than every complete one is kept by the rules")
end

------------------------------------------------------------------------
-- Properties over random policies and irregular schedules.

math.randomseed(20260329)
local periods = { "hourly", "daily", "weekly", "monthly", "yearly" }
local bad = {}
local function note(fmt, ...) if #bad < 5 then bad[#bad + 1] = string.format(fmt, ...) end end
local checked = { bound = 0, bucket = 0, oneshot = 0, last = 0 }
for r = 1, RANDOM do
  local keep, total = {}, 0
  for _, k in ipairs { "last", "hourly", "daily", "weekly", "monthly", "yearly" } do
    if math.random() < 0.6 then keep[k] = math.random(0, 12); total = total + keep[k] end
  end
  if total == 0 then keep.daily = 3; total = 3 end
  local zone = ({ "UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney" })[r % 4 + 1]
  local spec = { prefix = P, keep = keep, timezone = zone }
  if r % 3 == 0 then spec.pin = P .. "2025-0" .. math.random(1, 9) .. "-1*" end
  -- Irregular: gaps of 20 minutes to 4 days.
  local times, now = {}, START + math.random(0, DAY)
  for _ = 1, NIGHTS do
    times[#times + 1] = now
    now = now + math.random(1200, 4 * DAY)
  end
  local names, all, plan, sound = simulate(spec, times)
  local kept = {}
  for _, nm in ipairs(names) do kept[nm] = true end
  if not sound then note("policy %d: a new snapshot was not the kept newest", r) end

  local pinned = 0
  for _, e in ipairs(plan) do
    for _, rule in ipairs(e.rules) do if rule == "pin" then pinned = pinned + 1 end end
  end
  if #names > total + pinned + 1 then
    note("policy %d: %d kept > %d rules + %d pins + 1", r, #names, total, pinned)
  end
  checked.bound = checked.bound + 1

  -- History newest first, with bucket labels.
  local hist = {}
  for i = #all, 1, -1 do
    hist[#hist + 1] = { name = all[i], b = policy.buckets(spec, times[i]) }
  end
  for i = 1, math.min(keep.last or 0, #hist) do
    if not kept[hist[i].name] then note("policy %d: last %d dropped %s", r, i, hist[i].name) end
  end
  checked.last = checked.last + 1
  for _, period in ipairs(periods) do
    local n, seen, count = keep[period] or 0, {}, 0
    for _, h in ipairs(hist) do
      local key = h.b[period]
      if not seen[key] and count < n then
        seen[key] = true
        count = count + 1
        if not kept[h.name] then
          note("policy %d: %s bucket %s lost its newest %s", r, period, key, h.name)
        end
        checked.bucket = checked.bucket + 1
      end
    end
  end

  -- One plan over the whole history ends in the same set.
  local every = {}
  for _, nm in ipairs(all) do every[#every + 1] = { name = nm } end
  local once = policy.plan(every, spec, times[#times])
  local same = true
  local n_once = 0
  for _, e in ipairs(once) do
    if e.keep then
      n_once = n_once + 1
      if not kept[e.name] then same = false end
    end
  end
  if not same or n_once ~= #names then note("policy %d: one plan over all differs", r) end
  checked.oneshot = checked.oneshot + 1
end
t.ok(#bad == 0, string.format("%d random policies x %d rotations: never more than rule counts + pins + newest",
                              checked.bound, NIGHTS))
t.ok(#bad == 0, string.format("every counted bucket keeps its newest snapshot (%d buckets checked), keep.last holds",
                              checked.bucket))
t.ok(#bad == 0, "iterated rotations end where one plan over the whole history does")
for _, b in ipairs(bad) do t.diag(b) end

t.done()
