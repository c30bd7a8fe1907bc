-- SPDX-License-Identifier: BSD-3-Clause
-- Calendar timers (bh.timer.at, lua/blkhost/calendar.lua and timer.lua):
-- the next instants of each spec against `systemd-analyze calendar`
-- (the reference for the syntax), refused specs, and the schedule over a
-- simulated clock across both DST changes of 2026 in Europe/Berlin and
-- clock jumps: no double runs, no skipped days.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/lua/?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"
local calendar = require "blkhost.calendar"
local timezone = require "blkhost.timezone"
local timer = require "blkhost.timer"

local utc = timezone.zone("UTC")

local function ours(spec, base, n, zone)
  local ev, out, x = calendar.parse(spec), {}, base
  for _ = 1, n do
    x = calendar.next(ev, x, zone)
    if not x then break end
    out[#out + 1] = os.date("!%Y-%m-%d %H:%M:%S", x)
  end
  return out
end

-- systemd's instants, in UTC, for spec from base (exclusive).
local function systemd(spec, base, n, tz)
  local out = t.sh("TZ=" .. tz .. " systemd-analyze calendar --base-time=@" .. base
                   .. " --iterations=" .. n .. " " .. t.shq(spec) .. " 2>&1")
  local got = {}
  local key = tz == "UTC" and "[NI][et][xe][tr][^:]*:" or "%(in UTC%):"
  for line in out:gmatch("[^\n]+") do
    local d = line:match(key .. "%s+%a+ (%d+%-%d+%-%d+ %d+:%d+:%d+) UTC")
    if d then got[#got + 1] = d end
  end
  return got, out
end

local specs = {
  "hourly", "daily", "weekly", "monthly", "yearly", "quarterly", "semiannually",
  "minutely", "*-*-* 03:30:00", "Mon..Fri 02:00", "Mon,Wed *-*-1..7 03:00",
  "*:0/15", "*:00/20:30", "Sat,Sun,Mon 23:59:59", "*-02-29 00:00", "*-*-31 12:00",
  "2027-*-* 08:00", "8..18/2:00", "Fri *-*-13 13:13", "*-1/3-1 0:0",
  "Sunday 04:00", "*-12-25", "0,12:30",
}
local bases = { 1795854390, 1798761599, 1830297600, 1709208000 }

local have = os.execute("systemd-analyze calendar daily >/dev/null 2>&1")
for _, spec in ipairs(specs) do
  if not have then
    t.skip("calendar '" .. spec .. "' against systemd-analyze: not installed")
  else
    local bad
    for _, base in ipairs(bases) do
      local want, raw = systemd(spec, base, 6, "UTC")
      local got = ours(spec, base, 6, utc)
      local never = raw:find("Next elapse: never", 1, true)
      if (#want == 0 and not never) or table.concat(want, ",") ~= table.concat(got, ",") then
        bad = ("from @%d: ours %s, systemd %s"):format(base, table.concat(got, ","),
              #want > 0 and table.concat(want, ",") or raw)
        break
      end
    end
    t.ok(not bad, "calendar '" .. spec .. "': 6 next instants from 4 bases agree with systemd-analyze (UTC)")
    if bad then t.diag(bad) end
  end
end

-- Away from DST changes, a zone's instants agree with systemd too.
local berlin = timezone.zone("Europe/Berlin")
for _, spec in ipairs { "daily", "*-*-* 03:30:00", "Mon..Fri 02:00", "*:0/15" } do
  if not have then
    t.skip("calendar '" .. spec .. "' in Europe/Berlin against systemd-analyze")
  else
    local base = 1783000000  -- 2026-07-02, summer time
    local want = systemd(spec, base, 5, "Europe/Berlin")
    local got = ours(spec, base, 5, berlin)
    t.is(table.concat(got, ","), table.concat(want, ","),
         "calendar '" .. spec .. "' in Europe/Berlin (summer): agrees with systemd-analyze")
  end
end

-- Specs refused, each naming the problem.
for _, c in ipairs {
  { "", "empty" }, { "Funday 02:00", "not a weekday" }, { "*-*-* 25:00", "out of range" },
  { "*-*~1 00:00", "not supported" }, { "*-*-* 02:00 Europe/Berlin", "time zone" },
  { "*:0/0", "step of 0" }, { "Sat..Mon 12:00", "backwards" }, { "*-*-* 1:2:3:4", "bad time" }, { "5..3:00", "backwards" },
  { "*-*-* 02:00:00.5", "fractional" }, { "sometimes", "not a weekday" },
} do
  t.error_like(function() calendar.parse(c[1]) end, c[2],
               "calendar '" .. c[1] .. "' is refused: " .. c[2])
end
t.error_like(function() bh.timer.at("daily", function() end, { zone = "UTC" }) end,
             "unknown option 'zone'", "bh.timer.at: an unknown option is refused")
t.error_like(function() bh.timer.at("daily", function() end, { timezone = "Mars/Olympus" }) end,
             "Mars/Olympus", "bh.timer.at: an unknown time zone is refused")

------------------------------------------------------------------------
-- The schedule over a simulated clock: poll where it asks to be polled.
local function simulate(spec, zone, from, to, jumps)
  local s = timer.schedule(spec, { timezone = zone }, from)
  local runs, now = {}, from
  jumps = jumps or {}
  local polls = 0
  while now < to do
    local run, wait = s:poll(now)
    polls = polls + 1
    if run then runs[#runs + 1] = now end
    if not wait then break end
    now = now + wait
    for _, j in ipairs(jumps) do
      if not j.done and now >= j.at then j.done = true; now = now + j.by end
    end
  end
  return runs, polls
end

-- Daily at 02:30 in Berlin, 1 March to 30 November 2026: one run on each
-- local day, also on 29 March (no 02:30: runs at 03:30 CEST) and on 25
-- October (02:30 twice: runs once).
local from = berlin:mktime { year = 2026, month = 3, day = 1 }
local to = berlin:mktime { year = 2026, month = 12, day = 1 }
local runs = simulate("*-*-* 02:30:00", "Europe/Berlin", from, to)
local days, dup = {}, nil
for _, x in ipairs(runs) do
  local lt = berlin:localtime(x)
  local k = ("%04d-%02d-%02d"):format(lt.year, lt.month, lt.day)
  if days[k] then dup = k end
  days[k] = lt
end
local ndays = timezone.days_from_civil(2026, 12, 1) - timezone.days_from_civil(2026, 3, 1)
t.is(#runs, ndays, "daily 02:30 Europe/Berlin, March to November 2026: one run per day (275)")
t.ok(not dup, "daily 02:30 Europe/Berlin: no local day runs twice" .. (dup and " (" .. dup .. ")" or ""))
t.is(days["2026-03-29"] and ("%02d:%02d"):format(days["2026-03-29"].hour, days["2026-03-29"].min),
     "03:30", "29 March 2026 (no 02:30): runs at 03:30 CEST, the day is not skipped")
t.is(days["2026-10-25"] and days["2026-10-25"].offset, 7200,
     "25 October 2026 (02:30 twice): runs once, at the first (CEST) 02:30")

-- Hourly across the autumn change: 25 runs that day would be two 02:00s;
-- there is no instant run twice and no gap over 2 h.
runs = simulate("hourly", "Europe/Berlin", berlin:mktime { year = 2026, month = 10, day = 24 },
                berlin:mktime { year = 2026, month = 10, day = 27 })
local seen, maxgap, again = {}, 0, false
for i, x in ipairs(runs) do
  if seen[x] then again = true end
  seen[x] = true
  if i > 1 then maxgap = math.max(maxgap, x - runs[i - 1]) end
end
t.ok(not again and maxgap <= 7200, "hourly across 25 October 2026: no instant twice, no gap over 2 h")

-- A clock set back an hour right after the 02:30 run (NTP, a hand)
-- does not run the job again that night.
local d0 = berlin:mktime { year = 2026, month = 6, day = 10 }
runs = simulate("*-*-* 02:30:00", "Europe/Berlin", d0, d0 + 3 * 86400,
                { { at = d0 + 2.5 * 3600 + 1, by = -3600 } })
t.is(#runs, 3, "clock set back an hour after the 02:30 run: 3 runs in 3 days, none twice")

-- A clock that jumps forward 3 days (a suspended machine, at 01:00 on
-- the 10th to 01:00 on the 13th) runs the job once on waking for the
-- three it missed, then keeps to the calendar (02:30 that same day).
runs = simulate("*-*-* 02:30:00", "Europe/Berlin", d0, d0 + 6 * 86400,
                { { at = d0 + 3600, by = 3 * 86400 } })
local woke = runs[1] and berlin:localtime(runs[1])
local next_run = runs[2] and berlin:localtime(runs[2])
t.ok(#runs == 4 and woke and woke.day == 13 and woke.hour == 1
     and next_run.day == 13 and next_run.hour == 2 and next_run.min == 30,
     "clock jumping 3 days forward: one catch-up run on waking (not three), then 02:30 each day")

-- Never sleeps past MAX_SLEEP, so a wall-clock jump is seen within it.
local s = timer.schedule("monthly", { timezone = "UTC" }, d0)
local _, wait = s:poll(d0)
t.ok(wait <= timer.MAX_SLEEP, "a monthly schedule still polls the wall clock every "
     .. timer.MAX_SLEEP .. " s at most")

------------------------------------------------------------------------
-- The real loop: at() fires, cancel() stops it, a failing callback does
-- not stop its schedule, and the loop ends once no timer is armed.
-- Bounds are generous (seconds), so a busy machine only makes it slower.
do
  local fired, failed_runs, every_runs = 0, 0, 0
  local at, failing, ev
  at = bh.timer.at("*:*:*", function()
    fired = fired + 1
    if fired == 2 then at:cancel() end
  end)
  failing = bh.timer.at("*:*:*", function()
    failed_runs = failed_runs + 1
    if failed_runs == 2 then failing:cancel() end
    error("on purpose")
  end)
  ev = bh.timer.every(0.01, function()
    every_runs = every_runs + 1
    if every_runs == 5 then ev:cancel() end
  end)
  local stop = bh.timer.after(30, function() bh.quit() end)
  -- The loop ends by itself when the three above are done, unless the
  -- 30 s guard has to end it; cancel the guard from the last one.
  bh.timer.every(0.05, function()
    if not at:active() and not failing:active() and not ev:active() then
      stop:cancel()
      bh.quit()
    end
  end)
  local t0 = bh.timer.now()
  bh.loop()
  t.ok(fired == 2 and at:next() == nil, "bh.timer.at('*:*:*') fired, and :cancel() from its callback stopped it after 2")
  t.is(failed_runs, 2, "a bh.timer.at callback that raises keeps its schedule (ran again until cancelled)")
  t.is(every_runs, 5, "bh.timer.every ran until its callback cancelled it")
  t.ok(bh.timer.now() - t0 < 30, "the loop ended when the timers were done, not by the 30 s guard")
end

t.done()
