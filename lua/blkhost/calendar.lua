-- SPDX-License-Identifier: BSD-3-Clause
-- Calendar events, the subset of systemd's OnCalendar= syntax that people
-- write, and when they next happen in a time zone.  Pure Lua over
-- blkhost.timezone; bh.timer.at (blkhost/timer.lua) runs them.
--
--   local calendar = require "blkhost.calendar"
--   local ev = calendar.parse("Mon..Fri 02:00")   -- raises on a bad spec
--   calendar.next(ev, after, zone)    -- first instant > after, or nil
--   calendar.normalize(ev)            -- "Mon..Fri *-*-* 02:00:00"
--
-- Accepted (systemd.time(7)): the shorthands minutely, hourly, daily,
-- weekly, monthly, quarterly, semiannually, yearly, annually; else
-- [WEEKDAYS] [DATE] [TIME] where WEEKDAYS is Mon..Fri or Mon,Wed,Sat
-- (full names too), DATE is [YEAR-]MONTH-DAY and TIME HOUR:MINUTE[:SECOND],
-- each field "*", a value, a list "1,15", a range "1..7" and a step
-- "0/15", "*/2", "8..18/2".  A missing DATE is every day, a missing TIME
-- midnight, missing seconds 0.  Not accepted (refused by name): "~" (last
-- days of the month), fractional seconds, a time zone in the spec (give
-- it as the timezone option).
--
-- Wall times that a DST change skips or repeats: the instant is the one
-- zone:mktime picks (blkhost/timezone.lua), the same rule as the
-- rotation's names: a skipped 02:30 happens at 03:30 of the new time, a
-- repeated one the first time only.  So a daily event happens exactly once
-- on each local day, also on the two nights a year clocks change.

local timezone = require "blkhost.timezone"

local calendar = {}

local function fail(msg) error(msg, 0) end

local WEEKDAYS = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" }
local WEEKDAY_FULL = { "monday", "tuesday", "wednesday", "thursday",
                       "friday", "saturday", "sunday" }
local WEEKDAY_NAME = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" }

local SHORTHANDS = {
  minutely = "*-*-* *:*:00",
  hourly = "*-*-* *:00:00",
  daily = "*-*-* 00:00:00",
  weekly = "Mon *-*-* 00:00:00",
  monthly = "*-*-01 00:00:00",
  quarterly = "*-01,04,07,10-01 00:00:00",
  semiannually = "*-01,07-01 00:00:00",
  yearly = "*-01-01 00:00:00",
  annually = "*-01-01 00:00:00",
}

-- "a-b-c" -> {"a", "b", "c"}, empty parts kept.
local function split(text, sep)
  local parts = {}
  for p in (text .. sep):gmatch("([^" .. sep .. "]*)" .. sep) do parts[#parts + 1] = p end
  return parts
end

local function weekday_number(word, spec)
  local w = word:lower()
  for i = 1, 7 do
    if w == WEEKDAYS[i] or w == WEEKDAY_FULL[i] then return i end
  end
  fail(("calendar spec '%s': '%s' is not a weekday (Mon..Sun)"):format(spec, word))
end

-- "Mon..Fri,Sun" -> set {[1]=true, ..., [5]=true, [7]=true}
local function parse_weekdays(tok, spec)
  local set = {}
  for _, part in ipairs(split(tok, ",")) do
    local a, b = part:match("^(%a+)%.%.(%a+)$")
    if a then
      a, b = weekday_number(a, spec), weekday_number(b, spec)
      if b < a then
        fail(("calendar spec '%s': weekday range '%s' goes backwards (systemd "
              .. "refuses it too; write Sat,Sun,Mon)"):format(spec, part))
      end
      for d = a, b do set[d] = true end
    elseif part:match("^%a+$") then
      set[weekday_number(part, spec)] = true
    else
      fail(("calendar spec '%s': bad weekday list '%s' (e.g. Mon..Fri or Mon,Wed)")
           :format(spec, tok))
    end
  end
  return set
end

-- One field ("*", "5", "1,15", "1..7", "0/15", "*/2", "8..18/2") over
-- lo..hi -> sorted list of values, or nil for "every value".
local function parse_field(text, lo, hi, what, spec)
  local function bad(why)
    fail(("calendar spec '%s': bad %s '%s'%s"):format(spec, what, text,
         why and ": " .. why or ""))
  end
  if text == "*" then return nil end
  if text:find("~", 1, true) then bad("'~' (days from the end of the month) is not supported") end
  if text:find(".", 1, true) and text:match("%d%.%d") and not text:find("..", 1, true) then
    bad("fractional values are not supported")
  end
  local seen = {}
  for _, part in ipairs(split(text, ",")) do
    local range, step = part:match("^([^/]+)/(%d+)$")
    range = range or part
    step = step and tonumber(step)
    if step == 0 then bad("a step of 0") end
    local a, b
    if range == "*" then
      a, b = lo, hi
    elseif range:match("^%d+$") then
      a = tonumber(range)
      b = step and hi or a
    else
      local x, y = range:match("^(%d+)%.%.(%d+)$")
      if not x then bad() end
      a, b = tonumber(x), tonumber(y)
      if b < a then bad("the range goes backwards") end
    end
    if a < lo or b > hi then bad(("out of range %d..%d"):format(lo, hi)) end
    for v = a, b, step or 1 do seen[v] = true end
  end
  local list = {}
  for v = lo, hi do if seen[v] then list[#list + 1] = v end end
  return list
end

-- Parse a spec into an event {weekdays=set|nil, year=, month=, day=,
-- hour=, min=, sec= (lists or nil), text=}.  Raises on anything else.
function calendar.parse(spec)
  if type(spec) ~= "string" then
    fail("a calendar spec must be a string such as 'daily' or '*-*-* 03:30:00'")
  end
  local text = spec:match("^%s*(.-)%s*$")
  local expanded = SHORTHANDS[text:lower()] or text
  local toks = {}
  for tok in expanded:gmatch("%S+") do toks[#toks + 1] = tok end
  if #toks == 0 then fail("empty calendar spec") end

  local ev = { text = spec }
  local i = 1
  if toks[i] and toks[i]:match("^%a") then
    ev.weekdays = parse_weekdays(toks[i], spec)
    i = i + 1
  end
  local date, time
  if toks[i] and toks[i]:find("-", 1, true) and not toks[i]:find(":", 1, true) then
    date = toks[i]; i = i + 1
  end
  if toks[i] and toks[i]:find(":", 1, true) then
    time = toks[i]; i = i + 1
  end
  if toks[i] then
    fail(("calendar spec '%s': unexpected '%s' (a time zone goes in the "
          .. "timezone option; expected [WEEKDAYS] [YEAR-]MONTH-DAY HH:MM[:SS])")
         :format(spec, toks[i]))
  end
  if not ev.weekdays and not date and not time then
    fail(("calendar spec '%s': expected a shorthand (hourly, daily, weekly, "
          .. "monthly, ...) or [WEEKDAYS] [YEAR-]MONTH-DAY HH:MM[:SS]"):format(spec))
  end

  local parts = split(date or "*-*-*", "-")
  if #parts == 2 then table.insert(parts, 1, "*") end
  if #parts ~= 3 or parts[1] == "" then
    fail(("calendar spec '%s': bad date '%s' (expected [YEAR-]MONTH-DAY)")
         :format(spec, date))
  end
  ev.year = parse_field(parts[1], 1970, 2199, "year", spec)
  ev.month = parse_field(parts[2], 1, 12, "month", spec)
  ev.day = parse_field(parts[3], 1, 31, "day", spec)

  local tp = split(time or "00:00:00", ":")
  if #tp == 2 then tp[3] = "00" end
  if #tp ~= 3 then
    fail(("calendar spec '%s': bad time '%s' (expected HH:MM or HH:MM:SS)")
         :format(spec, time))
  end
  ev.hour = parse_field(tp[1], 0, 23, "hour", spec)
  ev.min = parse_field(tp[2], 0, 59, "minute", spec)
  ev.sec = parse_field(tp[3], 0, 59, "second", spec)
  return ev
end

local function values(list, lo, hi)
  if list then return list end
  local all = {}
  for v = lo, hi do all[#all + 1] = v end
  return all
end

local function has(list, v)
  if not list then return true end
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

-- The first instant after `after` (exclusive) at which the event happens
-- in zone (a blkhost.timezone zone), or nil if it never does again
-- (before 2200).
function calendar.next(ev, after, zone)
  after = math.floor(after)
  local lt = zone:localtime(after)
  local hours, mins, secs = values(ev.hour, 0, 23), values(ev.min, 0, 59),
                            values(ev.sec, 0, 59)
  local function at(y, m, d, h, mi, s)
    return zone:mktime { year = y, month = m, day = d, hour = h, min = mi, sec = s }
  end
  -- Start a day early: around a DST change the local date of `after`
  -- may be ahead of the wall times that map past it.
  local day = timezone.days_from_civil(lt.year, lt.month, lt.day) - 1
  local last_day = timezone.days_from_civil(2199, 12, 31)
  while day <= last_day do
    local y, m, d = timezone.civil_from_days(day)
    if ev.year and not has(ev.year, y) then
      -- Jump to the next listed year.
      local ny
      for _, v in ipairs(ev.year) do if v > y then ny = v; break end end
      if not ny then return nil end
      day = timezone.days_from_civil(ny, 1, 1)
    elseif not has(ev.month, m) then
      day = day + timezone.days_in_month(y, m) - d + 1
    else
      -- 1970-01-01 was a Thursday (4).
      local wday = (day + 3) % 7 + 1
      if has(ev.day, d) and (not ev.weekdays or ev.weekdays[wday])
         and at(y, m, d, 23, 59, 59) + 7200 > after then
        -- Candidates in wall-clock order; around a DST change mktime may
        -- map an earlier wall time later, so look two more wall hours on
        -- from the first hit and keep the earliest instant.
        local best, limit
        for _, h in ipairs(hours) do
          if limit and h * 3600 > limit then break end
          if at(y, m, d, h, 59, 59) + 7200 > after then
            for _, mi in ipairs(mins) do
              if limit and h * 3600 + mi * 60 > limit then break end
              for _, s in ipairs(secs) do
                local wall = h * 3600 + mi * 60 + s
                if limit and wall > limit then break end
                local t = at(y, m, d, h, mi, s)
                if t > after and (not best or t < best) then
                  best = best and math.min(best, t) or t
                  limit = limit or wall + 7200
                end
              end
            end
          end
        end
        if best then return best end
      end
      day = day + 1
    end
  end
  return nil
end

local function field_text(list, width)
  if not list then return "*" end
  local out = {}
  for _, v in ipairs(list) do out[#out + 1] = ("%0" .. width .. "d"):format(v) end
  return table.concat(out, ",")
end

-- The event in systemd's normalized form (lists are spelled out).
function calendar.normalize(ev)
  local wd = ""
  if ev.weekdays then
    local names = {}
    for i = 1, 7 do if ev.weekdays[i] then names[#names + 1] = WEEKDAY_NAME[i] end end
    wd = table.concat(names, ",") .. " "
  end
  return ("%s%s-%s-%s %s:%s:%s"):format(wd, field_text(ev.year, 4),
    field_text(ev.month, 2), field_text(ev.day, 2), field_text(ev.hour, 2),
    field_text(ev.min, 2), field_text(ev.sec, 2))
end

return calendar
