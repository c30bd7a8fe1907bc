-- SPDX-License-Identifier: BSD-3-Clause
-- Time zones for the retention policy: the pure-Lua TZif reader against
-- the C library (date -f, with TZ set), and nightly rotations in
-- Europe/Berlin across both DST changes of 2026 (29 March, clocks go
-- forward at 02:00; 25 October, back at 03:00): no duplicate names, no
-- missing days, the two 02:30s of the autumn night apart.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/lua/?.lua;" .. package.path
local t = require "tap"
local policy = require "blkhost.policy"
local timezone = require "blkhost.timezone"

local DAY = 86400

-- The C library's view of instants in a zone, in one `date` process.
local function libc_view(zone, times)
  local dir = t.tmpdir()
  local f = assert(io.open(dir .. "/times", "w"))
  for _, x in ipairs(times) do f:write("@", x, "\n") end
  f:close()
  local out = t.sh("TZ=" .. t.shq(zone) .. " date -f " .. t.shq(dir .. "/times")
                   .. " '+%Y-%m-%d %H:%M:%S %z %G-W%V'")
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  return lines
end

local function our_view(zone, x)
  local lt = zone:localtime(x)
  local iy, iw = timezone.iso_week(lt)
  return string.format("%04d-%02d-%02d %02d:%02d:%02d %s %04d-W%02d", lt.year,
                       lt.month, lt.day, lt.hour, lt.min, lt.sec,
                       timezone.format_offset(lt.offset), iy, iw)
end

-- Instants from 1900 to 2100 in steps that wander through every hour,
-- plus the hours around each 2026 transition.
math.randomseed(7)
local times = {}
for x = -2200000000, 4100000000, 1999993 do times[#times + 1] = x end
for i = 1, 2000 do times[#times + 1] = math.random(1700000000, 1900000000) end
for x = 1774742400, 1774828800, 900 do times[#times + 1] = x end   -- 2026-03-29
for x = 1792792800, 1792879200, 900 do times[#times + 1] = x end   -- 2026-10-25

for _, zname in ipairs { "Europe/Berlin", "America/New_York", "Australia/Sydney",
                         "Asia/Kolkata", "Pacific/Chatham", "Europe/Dublin" } do
  local ok, zone = pcall(timezone.zone, zname)
  if not ok then
    t.skip(zname .. " is not installed here: " .. tostring(zone))
  else
    local want = libc_view(zname, times)
    local bad, first = 0, nil
    for i, x in ipairs(times) do
      local got = our_view(zone, x)
      if got ~= want[i] then
        bad = bad + 1
        first = first or (x .. ": ours " .. got .. ", libc " .. tostring(want[i]))
      end
    end
    t.ok(#want == #times and bad == 0, string.format(
      "%s: local time, offset and ISO week agree with the C library at %d instants",
      zname, #times))
    if first then t.diag(first) end
  end
end

local berlin = timezone.zone("Europe/Berlin")

-- mktime: the skipped 02:30 runs at 03:30 summer time; the repeated one
-- is the first (summer time).
t.is(policy.name({ prefix = "n-", timezone = "Europe/Berlin" },
                 berlin:mktime { year = 2026, month = 3, day = 29, hour = 2, min = 30 }),
     "n-2026-03-29T03:30:00+0200", "a 02:30 that does not exist (29 March) runs at 03:30 CEST")
t.is(policy.name({ prefix = "n-", timezone = "Europe/Berlin" },
                 berlin:mktime { year = 2026, month = 10, day = 25, hour = 2, min = 30 }),
     "n-2026-10-25T02:30:00+0200", "a 02:30 that happens twice (25 October) is first the CEST one")

-- Nightly at 02:30 Berlin time from 1 March to 30 November 2026, keeping
-- every day.
local spec = { prefix = "nightly-", keep = { daily = 1000 }, timezone = "Europe/Berlin" }
local snaps, names, dup, plan = {}, {}, false, nil
local first = timezone.days_from_civil(2026, 3, 1)
local last = timezone.days_from_civil(2026, 11, 30)
for d = first, last do
  local y, m, day = timezone.civil_from_days(d)
  local now = berlin:mktime { year = y, month = m, day = day, hour = 2, min = 30 }
  local name = policy.name(spec, now)
  if names[name] then dup = true end
  names[name] = true
  snaps[#snaps + 1] = { name = name }
  plan = policy.plan(snaps, spec, now)
end
t.ok(not dup, "275 Berlin nights across both DST changes: no duplicate names")
local days, missing = {}, {}
for _, e in ipairs(plan) do
  if e.keep then days[e.buckets.daily] = (days[e.buckets.daily] or 0) + 1 end
end
for d = first, last do
  local y, m, day = timezone.civil_from_days(d)
  local key = string.format("%04d-%02d-%02d", y, m, day)
  if days[key] ~= 1 then missing[#missing + 1] = key end
end
t.ok(#plan == last - first + 1 and #missing == 0,
     "every Berlin night is its own day and is kept (daily=1000): no missing days")
if #missing > 0 then t.diag("missing or doubled: " .. table.concat(missing, " ")) end
t.ok(names["nightly-2026-03-28T02:30:00+0100"] and names["nightly-2026-03-29T03:30:00+0200"]
     and names["nightly-2026-03-30T02:30:00+0200"], "the spring night's names carry +0100, then +0200")
t.ok(names["nightly-2026-10-24T02:30:00+0200"] and names["nightly-2026-10-25T02:30:00+0200"]
     and names["nightly-2026-10-26T02:30:00+0100"], "the autumn night's names carry +0200, then +0100")

-- Hourly through the autumn night: 02:00-03:00 happens twice; both
-- hours are distinct names and distinct hourly buckets.
do
  local hs = { prefix = "hourly-", keep = { hourly = 100 }, timezone = "Europe/Berlin" }
  local start = berlin:mktime { year = 2026, month = 10, day = 24, hour = 23, min = 30 }
  local s, seen, dups = {}, {}, 0
  for i = 0, 7 do
    local name = policy.name(hs, start + i * 3600)
    if seen[name] then dups = dups + 1 end
    seen[name] = true
    s[#s + 1] = { name = name }
  end
  local p = policy.plan(s, hs, start + 7 * 3600)
  local kept = 0
  for _, e in ipairs(p) do if e.keep then kept = kept + 1 end end
  t.ok(dups == 0 and seen["hourly-2026-10-25T02:30:00+0200"] and seen["hourly-2026-10-25T02:30:00+0100"],
       "hourly through the autumn change: the two 02:30s get different names")
  t.is(kept, 8, "hourly=100 keeps all 8 hours: the repeated hour is its own bucket")
end

-- Names mean the same instant whatever zone reads them.
t.is(policy.parse_name("n-", "n-2026-10-25T02:30:00+0100") - policy.parse_name("n-", "n-2026-10-25T02:30:00+0200"),
     3600, "the two 02:30s of 25 October are an hour apart")
t.is(policy.parse_name("n-", "n-2026-03-29T03:30:00+0200"), policy.parse_name("n-", "n-2026-03-29T01:30:00+0000"),
     "a name's offset makes it one instant")
t.is(policy.parse_name("n-", "n-2026-02-30T02:30:00+0100"), nil, "30 February is not a timestamp")

-- "local" is the C library's zone, whatever TZ the process started with.
do
  local x = berlin:mktime { year = 2026, month = 7, day = 1, hour = 12 }
  local snippet = "local tz = require 'blkhost.timezone'; "
    .. "print(tz.format_offset(tz.zone('local'):offset(" .. x .. ")))"
  local out = t.sh("echo " .. t.shq(snippet) .. " | TZ=America/New_York "
                   .. t.shq(os.getenv("BLKHOST")) .. " run -")
  t.is(out, "-0400\n", "timezone \"local\" with TZ=America/New_York is -0400 in July")
  out = t.sh("echo " .. t.shq(snippet) .. " | TZ=Asia/Kolkata "
             .. t.shq(os.getenv("BLKHOST")) .. " run -")
  t.is(out, "+0530\n", "timezone \"local\" with TZ=Asia/Kolkata is +0530")
end

t.done()
