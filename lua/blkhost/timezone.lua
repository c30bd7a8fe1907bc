-- Civil time in a chosen time zone, in pure Lua, for the snapshot
-- retention policy (blkhost/policy.lua): which day, ISO week, month and
-- year a snapshot belongs to, and the UTC offset its name carries.
--
--   local timezone = require "blkhost.timezone"
--   local zone = timezone.zone("Europe/Berlin")   -- or "UTC", "local"
--   local lt = zone:localtime(t)  -- {year, month, day, hour, min, sec,
--                                 --  wday (1 = Monday), yday, offset, isdst}
--   zone:offset(t)                -- seconds east of UTC at instant t
--   zone:mktime{year=, month=, day=, hour=, min=, sec=}  -- wall time -> t
--   timezone.iso_week(lt)         -- ISO year, ISO week
--   timezone.format_offset(7200)  -- "+0200"
--
-- os.date can only show the process's own zone (the C library reads TZ
-- once), so named zones are read here from the compiled tzdata files
-- (TZif, RFC 8536) in $TZDIR or /usr/share/zoneinfo.  Distributions ship
-- "slim" files that stop listing transitions once a rule takes over, so
-- the POSIX TZ rule in the file's footer is evaluated too.  "local" is the
-- C library's own idea of local time (TZ, /etc/localtime), through os.date.

local timezone = {}

local floor = math.floor

-- Days since 1970-01-01 of a proleptic Gregorian date, and back
-- (era-based arithmetic: exact for any year, no tables).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end
timezone.days_from_civil = days_from_civil

local function civil_from_days(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end
timezone.civil_from_days = civil_from_days

local function is_leap(y)
  return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
end

local month_days = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
local function days_in_month(y, m)
  if m == 2 and is_leap(y) then return 29 end
  return month_days[m]
end
timezone.days_in_month = days_in_month

-- Broken-down time of t + offset, as if that were UTC.
local function breakdown(t, offset)
  local lt = t + offset
  local days = lt // 86400
  local secs = lt - days * 86400
  local y, m, d = civil_from_days(days)
  return {
    year = y, month = m, day = d,
    hour = secs // 3600, min = secs // 60 % 60, sec = secs % 60,
    wday = (days + 3) % 7 + 1,                  -- 1970-01-01 was a Thursday
    yday = days - days_from_civil(y, 1, 1) + 1,
    offset = offset,
  }
end

-- Seconds since the epoch of a wall-clock reading taken as UTC.
local function civil_seconds(f)
  return days_from_civil(f.year, f.month, f.day) * 86400
         + (f.hour or 0) * 3600 + (f.min or 0) * 60 + (f.sec or 0)
end
timezone.civil_seconds = civil_seconds

local function weeks_in_iso_year(y)
  local function p(x) return (x + x // 4 - x // 100 + x // 400) % 7 end
  return (p(y) == 4 or p(y - 1) == 3) and 53 or 52
end

-- ISO 8601 week-numbering year and week of a broken-down date (weeks
-- start on Monday; week 1 holds the year's first Thursday).
function timezone.iso_week(lt)
  local week = (lt.yday - lt.wday + 10) // 7
  if week < 1 then
    return lt.year - 1, weeks_in_iso_year(lt.year - 1)
  elseif week > weeks_in_iso_year(lt.year) then
    return lt.year + 1, 1
  end
  return lt.year, week
end

-- "+0200", "-0330", "+0000": the basic ISO 8601 offset form.
function timezone.format_offset(off)
  local sign = off < 0 and "-" or "+"
  off = math.abs(off)
  return string.format("%s%02d%02d", sign, off // 3600, off // 60 % 60)
end

------------------------------------------------------------------------
-- POSIX TZ rules ("CET-1CEST,M3.5.0,M10.5.0/3"), as in a TZif footer.

local function parse_posix_tz(s)
  local pos = 1
  local function name()
    local q = s:match("^<([%w%+%-]+)>", pos)
    if q then pos = pos + #q + 2; return q end
    local a = s:match("^%a+", pos)
    if a and #a >= 3 then pos = pos + #a; return a end
    return nil
  end
  -- [+-]hh[:mm[:ss]]; allow_sign for offsets, time fields may be
  -- negative or up to 167 hours (RFC 8536 extension).
  local function hms()
    local sign, h = s:match("^([%+%-]?)(%d+)", pos)
    if not h then return nil end
    pos = pos + #sign + #h
    local v = tonumber(h) * 3600
    local m = s:match("^:(%d+)", pos)
    if m then
      pos = pos + #m + 1
      v = v + tonumber(m) * 60
      local sec = s:match("^:(%d+)", pos)
      if sec then pos = pos + #sec + 1; v = v + tonumber(sec) end
    end
    return sign == "-" and -v or v
  end
  local function date()
    local r = {}
    local m, w, d = s:match("^M(%d+)%.(%d)%.(%d)", pos)
    if m then
      pos = pos + #m + 5
      r.kind, r.month, r.week, r.wday = "M", tonumber(m), tonumber(w), tonumber(d)
      if r.month < 1 or r.month > 12 or r.week < 1 or r.week > 5
         or r.wday > 6 then return nil end
    else
      local j = s:match("^J(%d+)", pos)
      if j then
        pos = pos + #j + 1
        r.kind, r.n = "J", tonumber(j)
        if r.n < 1 or r.n > 365 then return nil end
      else
        local n = s:match("^(%d+)", pos)
        if not n then return nil end
        pos = pos + #n
        r.kind, r.n = "n", tonumber(n)
        if r.n > 365 then return nil end
      end
    end
    r.time = 7200
    if s:sub(pos, pos) == "/" then
      pos = pos + 1
      r.time = hms()
      if not r.time then return nil end
    end
    return r
  end

  local rule = {}
  rule.std_name = name()
  if not rule.std_name then return nil end
  local off = hms()
  if not off then return nil end
  rule.std = -off                 -- POSIX counts west of Greenwich
  if pos > #s then return rule end
  rule.dst_name = name()
  if not rule.dst_name then return nil end
  rule.dst = rule.std + 3600
  if pos <= #s and s:sub(pos, pos) ~= "," then
    off = hms()
    if not off then return nil end
    rule.dst = -off
  end
  if pos > #s then
    -- No dates: POSIX leaves them implementation-defined; glibc uses the
    -- US rules of 2007.
    rule.start = { kind = "M", month = 3, week = 2, wday = 0, time = 7200 }
    rule.finish = { kind = "M", month = 11, week = 1, wday = 0, time = 7200 }
    return rule
  end
  if s:sub(pos, pos) ~= "," then return nil end
  pos = pos + 1
  rule.start = date()
  if not rule.start or s:sub(pos, pos) ~= "," then return nil end
  pos = pos + 1
  rule.finish = date()
  if not rule.finish or pos <= #s then return nil end
  return rule
end
timezone.parse_posix_tz = parse_posix_tz

-- Local midnight (in days since the epoch) of a rule date in year y.
local function rule_day(r, y)
  if r.kind == "J" then
    local n = r.n
    if is_leap(y) and n >= 60 then n = n + 1 end
    return days_from_civil(y, 1, 1) + n - 1
  elseif r.kind == "n" then
    return days_from_civil(y, 1, 1) + r.n
  end
  local first = days_from_civil(y, r.month, 1)
  local wd1 = (first + 4) % 7                   -- 0 = Sunday
  local day = 1 + (r.wday - wd1) % 7 + (r.week - 1) * 7
  local dim = days_in_month(y, r.month)
  while day > dim do day = day - 7 end
  return first + day - 1
end

-- Offset and DST flag of a rule at instant t.
local function posix_offset(rule, t)
  if not rule.dst_name then return rule.std, false end
  local y = civil_from_days((t + rule.std) // 86400)
  -- The start time is given in standard time, the end time in DST.
  local start = rule_day(rule.start, y) * 86400 + rule.start.time - rule.std
  local finish = rule_day(rule.finish, y) * 86400 + rule.finish.time - rule.dst
  local dst
  if start < finish then
    dst = t >= start and t < finish
  else                                          -- southern hemisphere
    dst = not (t >= finish and t < start)
  end
  if dst then return rule.dst, true end
  return rule.std, false
end

------------------------------------------------------------------------
-- TZif files.

local function tzif_error(path, what)
  error("cannot use time zone file " .. path .. ": " .. what, 0)
end

-- Parse a TZif file's contents into {times = {...}, idx = {...},
-- types = {{off=, isdst=}...}, rule = posix rule or nil}.
local function parse_tzif(data, path)
  if data:sub(1, 4) ~= "TZif" then tzif_error(path, "not a TZif file") end
  local version = data:sub(5, 5)
  local function header(at)
    if #data < at + 43 then tzif_error(path, "truncated header") end
    local isut, isstd, leap, timecnt, typecnt, charcnt =
      string.unpack(">I4I4I4I4I4I4", data, at + 20)
    return { isut = isut, isstd = isstd, leap = leap, timecnt = timecnt,
             typecnt = typecnt, charcnt = charcnt }
  end
  local h = header(1)
  local at = 45
  local tsize = 4
  if version >= "2" then
    -- Skip the 32-bit block; the 64-bit one follows with its own header.
    at = at + h.timecnt * 5 + h.typecnt * 6 + h.charcnt + h.leap * 8
         + h.isstd + h.isut
    if data:sub(at, at + 3) ~= "TZif" then
      tzif_error(path, "missing the version 2 header")
    end
    h = header(at)
    at = at + 44
    tsize = 8
  end
  if h.typecnt == 0 then tzif_error(path, "no local time types") end
  if h.leap > 0 then
    tzif_error(path, "it counts leap seconds (a \"right/\" zone); use the "
               .. "zone without the right/ prefix")
  end
  local need = h.timecnt * (tsize + 1) + h.typecnt * 6 + h.charcnt
               + h.leap * (tsize + 4) + h.isstd + h.isut
  if #data < at + need - 1 then tzif_error(path, "truncated data") end
  local z = { times = {}, idx = {}, types = {} }
  local tfmt = tsize == 8 and ">i8" or ">i4"
  for i = 1, h.timecnt do
    z.times[i] = string.unpack(tfmt, data, at + (i - 1) * tsize)
  end
  at = at + h.timecnt * tsize
  for i = 1, h.timecnt do
    z.idx[i] = data:byte(at + i - 1) + 1
    if z.idx[i] > h.typecnt then tzif_error(path, "bad type index") end
  end
  at = at + h.timecnt
  for i = 1, h.typecnt do
    local off, isdst = string.unpack(">i4B", data, at + (i - 1) * 6)
    z.types[i] = { off = off, isdst = isdst ~= 0 }
  end
  at = at + h.typecnt * 6 + h.charcnt + h.leap * (tsize + 4) + h.isstd + h.isut
  if version >= "2" then
    local footer = data:match("^\n([^\n]*)\n", at)
    if footer and footer ~= "" then
      z.rule = parse_posix_tz(footer)
      if not z.rule then tzif_error(path, "bad TZ rule '" .. footer .. "'") end
    end
  end
  return z
end

local Zone = {}
Zone.__index = Zone

function Zone:offset(t)
  if self.fixed then return self.fixed, false end
  if self.os_local then
    local l = os.date("*t", t)
    return civil_seconds(l) - t, l.isdst
  end
  local times = self.times
  local n = #times
  if n == 0 or t < times[1] then
    if n == 0 and self.rule then return posix_offset(self.rule, t) end
    local ty = self.types[1]
    return ty.off, ty.isdst
  end
  if t >= times[n] and self.rule then return posix_offset(self.rule, t) end
  local lo, hi = 1, n                           -- last transition <= t
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if times[mid] <= t then lo = mid else hi = mid - 1 end
  end
  local ty = self.types[self.idx[lo]]
  return ty.off, ty.isdst
end

function Zone:localtime(t)
  local off, isdst = self:offset(t)
  local lt = breakdown(t, off)
  lt.isdst = isdst
  return lt
end

-- The instant a wall clock in this zone reads f.  A reading that happens
-- twice (clocks going back) gives the earlier instant; one that never
-- happens (clocks going forward) is read with the offset from before the
-- change, so 02:30 on a spring-forward night is 03:30 summer time, as
-- systemd and cron run such jobs late rather than never.
function Zone:mktime(f)
  local wall = civil_seconds(f)
  local best
  local tried = {}
  for _, probe in ipairs { wall - 2 * 86400, wall, wall + 2 * 86400 } do
    local o = self:offset(probe)
    if not tried[o] then
      tried[o] = true
      local t = wall - o
      if self:offset(t) == o and (not best or t < best) then best = t end
    end
  end
  if best then return best end
  return wall - self:offset(wall - 2 * 86400)
end

function Zone:__tostring()
  return "timezone(" .. self.name .. ")"
end

local function zoneinfo_dirs()
  local dirs = {}
  local env = os.getenv("TZDIR")
  if env and env ~= "" then dirs[#dirs + 1] = env end
  for _, d in ipairs { "/usr/share/zoneinfo", "/usr/lib/zoneinfo",
                       "/usr/share/lib/zoneinfo" } do
    dirs[#dirs + 1] = d
  end
  return dirs
end

local cache = {}

local function unknown(name, why)
  error("unknown time zone '" .. tostring(name) .. "'" .. (why or "")
        .. " (expected \"UTC\", \"local\" or a tzdata name such as "
        .. "\"Europe/Berlin\")", 0)
end

-- timezone.zone(name) -> zone; "UTC" (also "utc", "Z"), "local", or a
-- tzdata name.  Anything else raises an error naming it.
function timezone.zone(name)
  if name == nil then name = "UTC" end
  if type(name) ~= "string" then unknown(name, ": not a string") end
  if cache[name] then return cache[name] end
  local z
  if name == "UTC" or name == "utc" or name == "Z" then
    z = setmetatable({ name = "UTC", fixed = 0 }, Zone)
  elseif name == "local" then
    z = setmetatable({ name = "local", os_local = true }, Zone)
  else
    -- A tzdata name is relative and made of plain components: nothing
    -- that could walk out of the zoneinfo directory.
    if name == "" or name:sub(1, 1) == "/" or name:find("%.%.")
       or not name:match("^[%w_%+%-/%.]+$") then
      unknown(name)
    end
    local data, path
    for _, dir in ipairs(zoneinfo_dirs()) do
      path = dir .. "/" .. name
      local f = io.open(path, "rb")
      if f then
        data = f:read(4 * 1024 * 1024)
        f:close()
        if data then break end
      end
    end
    if not data then
      unknown(name, ": no such file in " .. table.concat(zoneinfo_dirs(), ", "))
    end
    if data:sub(1, 4) ~= "TZif" then unknown(name, ": " .. path .. " is not a TZif file") end
    z = parse_tzif(data, path)
    z.name = name
    setmetatable(z, Zone)
  end
  cache[name] = z
  return z
end

return timezone
