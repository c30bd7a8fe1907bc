-- SPDX-License-Identifier: BSD-3-Clause
-- Civil time in a chosen time zone, for the snapshot retention policy
-- (blkhost/policy.lua): which day, ISO week, month and year a snapshot
-- belongs to, and the UTC offset its name carries.
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
-- GLib's GTimeZone and GDateTime do the work (lua/timezone.c, bh.timezone):
-- they read the tzdata files (TZif, with the POSIX rule of their footer)
-- and, for "local", TZ or /etc/localtime as the C library does.  What
-- stays here is which names are accepted and the errors for the others.
-- GLib 2.74 applies a zone's yearly rule up to the year 2998; instants
-- after that keep the zone's last offset, where the C library would
-- still change the clocks twice a year.

local bh = require "blkhost"
local c = bh.timezone

local timezone = {}

timezone.days_from_civil = c.days_from_civil   -- (y, m, d) -> days since 1970
timezone.civil_from_days = c.civil_from_days   -- days since 1970 -> y, m, d
timezone.days_in_month = c.days_in_month       -- (y, m) -> 28..31

-- Seconds since the epoch of a wall-clock reading taken as UTC.
local function civil_seconds(f)
  return c.days_from_civil(f.year, f.month, f.day) * 86400
         + (f.hour or 0) * 3600 + (f.min or 0) * 60 + (f.sec or 0)
end
timezone.civil_seconds = civil_seconds

-- ISO 8601 week-numbering year and week of a broken-down date.
function timezone.iso_week(lt)
  return c.iso_week(lt.year, lt.month, lt.day)
end

-- "+0200", "-0330", "+0000": the basic ISO 8601 offset form.
function timezone.format_offset(off)
  local sign = off < 0 and "-" or "+"
  off = math.abs(off)
  return string.format("%s%02d%02d", sign, off // 3600, off // 60 % 60)
end

local Zone = {}
Zone.__index = Zone

function Zone:offset(t) return self.tz:offset(t) end
function Zone:localtime(t) return self.tz:localtime(t) end

-- The instant a wall clock in this zone reads f: the earlier one when
-- the reading happens twice, and one read with the offset from before
-- the change when it never happens (see timezone_mktime in timezone.c).
function Zone:mktime(f) return self.tz:mktime(civil_seconds(f)) end

function Zone:__tostring()
  return "timezone(" .. self.name .. ")"
end

-- Where tzdata names are looked up, in order; GLib itself reads only
-- $TZDIR or /usr/share/zoneinfo, so the file found is handed over by path.
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

-- GLib (2.74, and its main branch as of 2026) reads a footer rule whose
-- DST offset is an explicit zero as if no offset were given, and makes
-- it the standard offset plus an hour: Europe/Dublin's negative DST
-- ("IST-1GMT0,M10.5.0,M3.5.0/1", winter is GMT) comes out as +0200 in
-- winter wherever the rule applies (after 2037 in "fat" files, after the
-- 1990s in "slim" ones).  The same rule with the standard and DST parts
-- swapped ("GMT0IST-1,M3.5.0/1,M10.5.0") names the same instants and
-- offsets, and GLib reads it right; such a file is handed over as a copy
-- with that footer.  The footer is the file's last line (RFC 8536), so no
-- TZif parsing is needed.  Returns nil when the footer is fine.
local function glib_safe_footer(data)
  local footer = data:match("\n([^\n]+)\n$")
  if not footer then return nil end
  for _, n1 in ipairs { "%a+", "<[^>]+>" } do
    for _, n2 in ipairs { "%a+", "<[^>]+>" } do
      local std, soff, dst, doff, start, finish = footer:match("^(" .. n1
        .. ")([%+%-]?[%d:]+)(" .. n2 .. ")([%+%-]?[%d:]+),([^,]+),([^,]+)$")
      if std and not doff:find("[1-9]") then
        return data:sub(1, #data - #footer - 1)
               .. dst .. doff .. std .. soff .. "," .. finish .. "," .. start .. "\n"
      end
    end
  end
  return nil
end

-- A GTimeZone from the TZif file at path whose contents are data, or nil.
local function open_tzif(path, data)
  local fixed = glib_safe_footer(data)
  if not fixed then return c.open(path) end
  local tmp = os.tmpname()
  local f = io.open(tmp, "wb")
  local ok = f and f:write(fixed) and f:close()
  local tz = ok and c.open(tmp) or nil
  os.remove(tmp)
  return tz
end

-- The contents of the file at path, or nil when it is missing, empty or
-- not a file.
local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read(4 * 1024 * 1024)
  f:close()
  return data
end

-- "local": GLib's own reading of TZ and /etc/localtime, unless the file
-- it names is one GLib would misread (glib_safe_footer).
local function open_local()
  local env = os.getenv("TZ")
  local path = env == nil and "/etc/localtime" or env:match("^:?(/.+)$")
  if not path and env and env:match("^:?[%w_%+%-/]+$") and not env:find("%.%.") then
    path = (os.getenv("TZDIR") or "/usr/share/zoneinfo") .. "/" .. env:gsub("^:", "")
  end
  local data = path and slurp(path)
  if data and data:sub(1, 4) == "TZif" and glib_safe_footer(data) then
    local tz = open_tzif(path, data)
    if tz then return tz end
  end
  return c.open_local()
end

-- timezone.zone(name) -> zone; "UTC" (also "utc", "Z"), "local", or a
-- tzdata name.  Anything else raises an error naming it: GLib would also
-- take POSIX TZ strings and offsets such as "+05:30", which a policy
-- should not be able to mistype into.
function timezone.zone(name)
  if name == nil then name = "UTC" end
  if type(name) ~= "string" then unknown(name, ": not a string") end
  if cache[name] then return cache[name] end
  local key, tz = name, nil
  if name == "UTC" or name == "utc" or name == "Z" then
    name = "UTC"
    tz = c.open_utc()
  elseif name == "local" then
    tz = open_local()
  else
    -- A tzdata name is relative and made of plain components: nothing
    -- that could walk out of the zoneinfo directory.
    if name == "" or name:sub(1, 1) == "/" or name:find("%.%.")
       or not name:match("^[%w_%+%-/%.]+$") then
      unknown(name)
    end
    -- "right/" zones count leap seconds in their instants, which neither
    -- GLib nor the C library's usual zones do.
    if name:match("^right/") then
      unknown(name, ": it counts leap seconds; use the zone without the "
              .. "right/ prefix")
    end
    local data, path
    for _, dir in ipairs(zoneinfo_dirs()) do
      path = dir .. "/" .. name
      data = slurp(path)
      if data then break end
    end
    if not data then
      unknown(name, ": no such file in " .. table.concat(zoneinfo_dirs(), ", "))
    end
    if data:sub(1, 4) ~= "TZif" then unknown(name, ": " .. path .. " is not a TZif file") end
    tz = open_tzif(path, data)
    if not tz then unknown(name, ": GLib cannot read " .. path) end
  end
  local z = setmetatable({ name = name, tz = tz }, Zone)
  cache[key] = z
  return z
end

return timezone
