-- SPDX-License-Identifier: BSD-3-Clause
-- bh.timer.at(spec, fn [, {timezone=}]): run fn at the instants of a
-- calendar spec (blkhost/calendar.lua), from the main loop.  Loaded the
-- first time bh.timer.at is read (lua/timer.c); bh.timer.every/after/now
-- are C.
--
--   local h = bh.timer.at("*-*-* 03:30:00", function() ... end,
--                         { timezone = "Europe/Berlin" })
--   h:next()     -- the instant it runs next (unix seconds), nil if never
--   h:cancel()
--
-- The decision of when to run is a pure object, timer.schedule(spec,
-- opts, now), stepped by schedule:poll(now) -> run?, seconds to wait, so
-- the tests drive it over a simulated clock:
--   * it runs at most once per calendar instant, and never for an
--     instant at or before its last run: a clock set back (by hand, NTP,
--     the night DST ends) does not run a job twice;
--   * a clock that jumps forward over one or more instants (a suspended
--     machine, a clock set forward) runs the job once on waking, then
--     keeps to the calendar from the new time, as systemd's Persistent=
--     timers do;
--   * it never sleeps more than MAX_SLEEP seconds on the monotonic clock,
--     so a wall-clock jump is noticed within that time.
-- DST itself is the calendar's business: every local day has its run.

local bh = require "blkhost"
local calendar = require "blkhost.calendar"
local timezone = require "blkhost.timezone"

local timer = {}

timer.MAX_SLEEP = 60

local Schedule = {}
Schedule.__index = Schedule

-- A schedule of spec in opts.timezone (default "local", as systemd),
-- starting at now.
function timer.schedule(spec, opts, now)
  opts = opts or {}
  if type(opts) ~= "table" then error("bh.timer.at: options must be a table {timezone=}", 0) end
  for k in pairs(opts) do
    if k ~= "timezone" then
      error(("bh.timer.at: unknown option '%s' (known: timezone)"):format(tostring(k)), 0)
    end
  end
  local ev = calendar.parse(spec)
  local zone = timezone.zone(opts.timezone or "local")
  local s = setmetatable({ ev = ev, zone = zone, last = nil }, Schedule)
  s.due = calendar.next(ev, now, zone)
  return s
end

-- At wall-clock time now: whether to run the job now, and how many
-- seconds to wait before polling again (nil: never again).
function Schedule:poll(now)
  if not self.due then return false, nil end
  local run = false
  if now >= self.due then
    run = true
    self.last = self.due
    -- The next instant after both the one just run and now: a forward
    -- jump over several instants runs once, not once for each.
    self.due = calendar.next(self.ev, math.max(now, self.due), self.zone)
    if not self.due then return true, nil end
  end
  local wait = math.min(self.due - now, timer.MAX_SLEEP)
  return run, math.max(wait, 0)
end

function Schedule:next() return self.due end

-- bh.timer.at(spec, fn [, opts]) -> handle with :cancel(), :next()
function timer.at(spec, fn, opts)
  if type(fn) ~= "function" then
    error("bh.timer.at(spec, fn [, {timezone=}]): fn must be a function", 2)
  end
  local sched = timer.schedule(spec, opts, bh.timer.now())
  local handle = { schedule = sched, cancelled = false }
  local function arm(wait)
    -- A little past the instant: the monotonic timeout and the wall
    -- clock are read apart, and waking early only costs one more poll.
    handle.source = bh.timer.after(wait + 0.001, function()
      handle.source = nil
      if handle.cancelled then return end
      local run, again = sched:poll(bh.timer.now())
      -- Re-armed before fn runs, so a failing fn keeps its schedule.
      if again then arm(again) end
      if run then fn() end
    end)
  end
  local _, wait = sched:poll(bh.timer.now())
  if wait then arm(wait) end
  function handle.cancel()
    handle.cancelled = true
    if handle.source then handle.source:cancel(); handle.source = nil end
  end
  function handle.next() return not handle.cancelled and sched:next() or nil end
  function handle.active() return not handle.cancelled and handle.source ~= nil end
  return setmetatable(handle, { __tostring = function()
    return "blkhost.timer.at(" .. calendar.normalize(sched.ev) .. ")"
  end })
end

bh.timer.at = timer.at
bh.timer.schedule = timer.schedule

return timer
