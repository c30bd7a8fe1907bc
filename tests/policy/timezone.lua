-- SPDX-License-Identifier: BSD-3-Clause
-- Where blkhost.timezone adds to GLib (lua/timezone.c): "slim" tzdata
-- files, whose yearly rule lives in the footer from the 1990s on, compiled
-- here with zic and compared with the C library; Europe/Dublin's zero DST
-- offset, which GLib misreads, through a name and through "local"; the
-- wall-time rule in Dublin's rule years; and instants and snapshot names
-- outside GLib's years 1 to 9999.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/lua/?.lua;" .. package.path
local t = require "tap"
local policy = require "blkhost.policy"
local timezone = require "blkhost.timezone"

-- The C library's view of instants (one `date` process), and ours.
local function libc_view(zone, times, env)
  local dir = t.tmpdir()
  local f = assert(io.open(dir .. "/times", "w"))
  for _, x in ipairs(times) do f:write("@", x, "\n") end
  f:close()
  local out = t.sh((env or "") .. " TZ=" .. t.shq(zone) .. " date -f "
                   .. t.shq(dir .. "/times") .. " '+%Y-%m-%d %H:%M:%S %z %G-W%V'")
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

local function agree(zone, zname, times, env)
  local want = libc_view(zname, times, env)
  local bad, first = 0, nil
  for i, x in ipairs(times) do
    local got = our_view(zone, x)
    if got ~= want[i] then
      bad = bad + 1
      first = first or (x .. ": ours " .. got .. ", libc " .. tostring(want[i]))
    end
  end
  if first then t.diag(first) end
  return #want == #times and bad == 0
end

-- 1990 to 2100 through every hour, and the 2026 and 2040 changes.
local times = {}
for x = 631152000, 4102444800, 1999993 do times[#times + 1] = x end
for x = 1774742400, 1774828800, 900 do times[#times + 1] = x end     -- 2026-03-29
for x = 1792792800, 1792879200, 900 do times[#times + 1] = x end     -- 2026-10-25
for x = 2216160000, 2216246400, 900 do times[#times + 1] = x end     -- 2040-03-24
for x = 2234908800, 2234995200, 900 do times[#times + 1] = x end     -- 2040-10-28

-- Slim files: zic -b slim writes each zone's rule once, in the footer.
local slim = t.tmpdir()
local _, zic = t.sh("zic -b slim -d " .. t.shq(slim) .. " /usr/share/zoneinfo/tzdata.zi 2>&1")
local slim_zones = { "Europe/Dublin", "Europe/Berlin", "America/New_York", "Australia/Sydney" }
if zic ~= 0 then
  for _, z in ipairs(slim_zones) do t.skip("zic or tzdata.zi is missing: no slim " .. z) end
else
  for _, zname in ipairs(slim_zones) do
    -- The module reads $TZDIR first; a fresh process sees this one.
    local snippet = "local tz = require 'blkhost.timezone'; local z = tz.zone("
      .. string.format("%q", zname) .. "); for l in io.lines() do "
      .. "local lt = z:localtime(tonumber(l)); local iy, iw = tz.iso_week(lt); "
      .. "print(string.format('%04d-%02d-%02d %02d:%02d:%02d %s %04d-W%02d', lt.year, "
      .. "lt.month, lt.day, lt.hour, lt.min, lt.sec, tz.format_offset(lt.offset), iy, iw)) end"
    local dir = t.tmpdir()
    local f = assert(io.open(dir .. "/times", "w"))
    for _, x in ipairs(times) do f:write(x, "\n") end
    f:close()
    local sf = assert(io.open(dir .. "/s.lua", "w"))
    sf:write(snippet)
    sf:close()
    local out = t.sh("TZDIR=" .. t.shq(slim) .. " " .. t.shq(os.getenv("BLKHOST"))
                     .. " run " .. t.shq(dir .. "/s.lua") .. " < " .. t.shq(dir .. "/times"))
    local want = libc_view(zname, times, "TZDIR=" .. t.shq(slim))
    local bad, first, i = 0, nil, 0
    for l in out:gmatch("[^\n]+") do
      i = i + 1
      if l ~= want[i] then
        bad = bad + 1
        first = first or (times[i] .. ": ours " .. l .. ", libc " .. tostring(want[i]))
      end
    end
    t.ok(i == #times and bad == 0, string.format(
      "slim %s (rule in the footer): local time, offset and ISO week agree with the C library at %d instants",
      zname, #times))
    if first then t.diag(first) end
  end
end

-- "local" with TZ=Europe/Dublin goes through the same footer fix.
do
  local snippet = "local tz = require 'blkhost.timezone'; local z = tz.zone('local'); "
    .. "print(tz.format_offset(z:offset(2209032000)), tz.format_offset(z:offset(2224670400)))"
  local out = t.sh("echo " .. t.shq(snippet) .. " | TZ=Europe/Dublin "
                   .. t.shq(os.getenv("BLKHOST")) .. " run -")
  t.is(out, "+0000\t+0100\n", "timezone \"local\" with TZ=Europe/Dublin: +0000 in January 2040, +0100 in July")
end

-- Dublin's wall-time rule where only the footer rule speaks (2040).
local dublin = timezone.zone("Europe/Dublin")
t.is(policy.name({ prefix = "n-", timezone = "Europe/Dublin" },
                 dublin:mktime { year = 2040, month = 3, day = 25, hour = 1, min = 30 }),
     "n-2040-03-25T02:30:00+0100", "Dublin, 25 March 2040: a 01:30 that does not exist runs at 02:30 IST")
t.is(policy.name({ prefix = "n-", timezone = "Europe/Dublin" },
                 dublin:mktime { year = 2040, month = 10, day = 28, hour = 1, min = 30 }),
     "n-2040-10-28T01:30:00+0100", "Dublin, 28 October 2040: a 01:30 that happens twice is first the IST one")

-- Outside GLib's years 1 to 9999: UTC from the year -2000 to 12000.
do
  local far = {}
  for x = -125000000000, 316000000000, 997000003 do far[#far + 1] = x end
  t.ok(agree(timezone.zone("UTC"), "UTC", far),
       string.format("UTC from the year -2000 to 12000: date and ISO week agree with the C library at %d instants", #far))
  t.is(table.concat({ timezone.civil_from_days(timezone.days_from_civil(0, 2, 29)) }, "-"), "0-2-29",
       "0000-02-29 exists (400-year cycle) and round-trips through days_from_civil")
  t.is(timezone.days_in_month(-100, 2), 28, "days_in_month(-100, 2) is 28 (not a leap year)")
end

-- A snapshot named in the year 0000 is read, bucketed and kept, as before.
do
  local spec = { prefix = "p-", keep = { daily = 3, weekly = 3 }, timezone = "Europe/Berlin" }
  local ok, plan = pcall(policy.plan, { { name = "p-0000-01-01T00:00:00+0000" },
                                        { name = "p-2026-01-01T00:00:00+0000" } }, spec, 1800000000)
  local old = ok and plan[#plan] or {}
  t.ok(ok and old.name == "p-0000-01-01T00:00:00+0000" and old.buckets.weekly == "-001-W52",
       "plan: a snapshot named 0000-01-01 is read (ISO week -001-W52), not an error")
  if not ok then t.diag(plan) end
end

t.error_like(function() dublin:localtime(1 << 60) end, "too far from 1970",
             "localtime of an instant 2^60 s away refused, saying why")
t.error_like(function() timezone.days_from_civil(2026, 2, 30) end, "2026%-2%-30 is not a date",
             "days_from_civil(2026, 2, 30) refused")

t.done()
