/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bh.timezone: civil time in a named zone through GLib's GTimeZone and
 * GDateTime, for lua/blkhost/timezone.lua (the snapshot retention policy's
 * days, ISO weeks, months and UTC offsets).  GLib reads the tzdata files,
 * the POSIX rule in their footer and the TZ variable; this file turns
 * its answers into Lua values and adds only what the policy promises and
 * GLib does not do: the wall-time rule of zone:mktime and years outside
 * 1 to 9999 (below).
 *
 *   bh.timezone.open(identifier)   -> zone, or nil when GLib cannot load it
 *   bh.timezone.open_utc(), open_local() -> UTC, the process's zone (TZ,
 *                                           /etc/localtime)
 *   zone:offset(t)                 -> seconds east of UTC, isdst
 *   zone:localtime(t)              -> {year, month, day, hour, min, sec,
 *                                      wday (1 = Monday), yday, offset, isdst}
 *   zone:mktime(wall)              -> the instant the wall clock reads wall
 *                                     (wall: that reading as seconds, as if UTC)
 *   bh.timezone.iso_week(y, m, d)  -> ISO year, ISO week
 *   bh.timezone.days_from_civil(y, m, d), civil_from_days(days),
 *   bh.timezone.days_in_month(y, m)
 *
 * Instants are seconds since 1970 (Lua integers).  GDate and GDateTime
 * stop at the years 1 and 9999, but a snapshot name may say 0000 or
 * earlier, and the policy must still read it: dates outside are moved by
 * whole 400-year Gregorian cycles (146097 days, a whole number of weeks,
 * so weekdays and ISO weeks repeat with them), asked of GLib, and moved
 * back.
 */
#include <stdbool.h>

#include "bh-lua.h"

#define TIMEZONE_MT "blkhost.timezone"

/* The day GDate numbers 1970-01-01 (its day 1 is 0001-01-01). */
#define TIMEZONE_EPOCH_JULIAN 719163

static GTimeZone *timezone_check(lua_State *L, int idx)
{
    GTimeZone *tz = *(GTimeZone **)luaL_checkudata(L, idx, TIMEZONE_MT);
    luaL_argcheck(L, tz != NULL, idx, "time zone not opened");
    return tz;
}

/* A new zone userdata, empty until the caller stores a GTimeZone in it
 * (made first, so that running out of memory here leaks nothing). */
static GTimeZone **timezone_new(lua_State *L)
{
    GTimeZone **ud = lua_newuserdatauv(L, sizeof(*ud), 0);
    *ud = NULL;
    luaL_setmetatable(L, TIMEZONE_MT);
    return ud;
}

static int timezone_gc(lua_State *L)
{
    GTimeZone **ud = luaL_checkudata(L, 1, TIMEZONE_MT);
    if (*ud) {
        g_time_zone_unref(*ud);
        *ud = NULL;
    }
    return 0;
}

#define TIMEZONE_CYCLE_YEARS 400
#define TIMEZONE_CYCLE_DAYS 146097
/* 2000-01-01 in days since 1970: the cycles are moved into 2000-2399. */
#define TIMEZONE_CYCLE_BASE 10957
/* Beyond this many seconds from 1970 (about 140 million years) the
 * arithmetic below could overflow; no snapshot is that old. */
#define TIMEZONE_MAX_SECONDS ((lua_Integer)1 << 52)
/* The same in years of 31556952 s, the Gregorian average. */
#define TIMEZONE_MAX_YEARS (TIMEZONE_MAX_SECONDS / 31556952)

static lua_Integer timezone_floordiv(lua_Integer a, lua_Integer b)
{
    lua_Integer q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* How many 400-year cycles year y lies past the years 2000-2399. */
static lua_Integer timezone_year_cycles(lua_Integer y)
{
    return timezone_floordiv(y - 2000, TIMEZONE_CYCLE_YEARS);
}

/* Checked date: raises unless y-m-d is a real day; sets date to the same
 * day moved into 2000-2399 and *cycles to how many cycles it moved. */
static void timezone_check_date(lua_State *L, lua_Integer y, lua_Integer m,
                                lua_Integer d, GDate *date,
                                lua_Integer *cycles)
{
    if (y < -TIMEZONE_MAX_YEARS || y > TIMEZONE_MAX_YEARS)
        luaL_error(L, "year %I is too far from 1970", y);
    *cycles = timezone_year_cycles(y);
    GDateYear gy = (GDateYear)(y - *cycles * TIMEZONE_CYCLE_YEARS);
    if (m < 1 || m > 12 || d < 1 ||
        d > g_date_get_days_in_month((GDateMonth)m, gy))
        luaL_error(L, "%I-%I-%I is not a date", y, m, d);
    g_date_clear(date, 1);
    g_date_set_dmy(date, (GDateDay)d, (GDateMonth)m, gy);
}

/* y-m-d of days since 1970, any day within TIMEZONE_MAX_SECONDS. */
static void timezone_civil(lua_Integer days, lua_Integer *y, int *m, int *d)
{
    lua_Integer cycles = timezone_floordiv(days - TIMEZONE_CYCLE_BASE,
                                           TIMEZONE_CYCLE_DAYS);
    GDate date;
    g_date_clear(&date, 1);
    g_date_set_julian(&date, (guint32)(days - cycles * TIMEZONE_CYCLE_DAYS +
                                       TIMEZONE_EPOCH_JULIAN));
    *y = g_date_get_year(&date) + cycles * TIMEZONE_CYCLE_YEARS;
    *m = g_date_get_month(&date);
    *d = g_date_get_day(&date);
}

static lua_Integer timezone_check_seconds(lua_State *L, int idx)
{
    lua_Integer t = luaL_checkinteger(L, idx);
    luaL_argcheck(L, t > -TIMEZONE_MAX_SECONDS && t < TIMEZONE_MAX_SECONDS,
                  idx, "instant too far from 1970");
    return t;
}

/* bh.timezone.open(identifier): a tzdata name or a TZif file's path.
 * timezone.lua decides which names may reach here. */
static int timezone_open(lua_State *L)
{
    const char *identifier = luaL_checkstring(L, 1);
    GTimeZone **ud = timezone_new(L);
    *ud = g_time_zone_new_identifier(identifier);
    if (!*ud)
        lua_pushnil(L);
    return 1;
}

static int timezone_open_utc(lua_State *L)
{
    *timezone_new(L) = g_time_zone_new_utc();
    return 1;
}

static int timezone_open_local(lua_State *L)
{
    *timezone_new(L) = g_time_zone_new_local();
    return 1;
}

static int timezone_offset(lua_State *L)
{
    GTimeZone *tz = timezone_check(L, 1);
    lua_Integer t = timezone_check_seconds(L, 2);
    int i = g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, t);
    lua_pushinteger(L, g_time_zone_get_offset(tz, i));
    lua_pushboolean(L, g_time_zone_is_dst(tz, i));
    return 2;
}

static void timezone_setint(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* The zone's interval gives the offset (as g_date_time_to_timezone()
 * does); the wall clock is that instant plus the offset, read in UTC. */
static int timezone_localtime(lua_State *L)
{
    GTimeZone *tz = timezone_check(L, 1);
    lua_Integer t = timezone_check_seconds(L, 2);
    int i = g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, t);
    lua_Integer offset = g_time_zone_get_offset(tz, i);
    lua_Integer wall = t + offset;
    lua_Integer cycles = timezone_floordiv(
        timezone_floordiv(wall, 86400) - TIMEZONE_CYCLE_BASE,
        TIMEZONE_CYCLE_DAYS);
    GDateTime *dt = g_date_time_new_from_unix_utc(
        wall - cycles * TIMEZONE_CYCLE_DAYS * 86400);

    lua_createtable(L, 0, 10);
    timezone_setint(L, "year", g_date_time_get_year(dt) +
                               cycles * TIMEZONE_CYCLE_YEARS);
    timezone_setint(L, "month", g_date_time_get_month(dt));
    timezone_setint(L, "day", g_date_time_get_day_of_month(dt));
    timezone_setint(L, "hour", g_date_time_get_hour(dt));
    timezone_setint(L, "min", g_date_time_get_minute(dt));
    timezone_setint(L, "sec", g_date_time_get_second(dt));
    timezone_setint(L, "wday", g_date_time_get_day_of_week(dt));
    timezone_setint(L, "yday", g_date_time_get_day_of_year(dt));
    timezone_setint(L, "offset", offset);
    lua_pushboolean(L, g_time_zone_is_dst(tz, i));
    lua_setfield(L, -2, "isdst");
    g_date_time_unref(dt);
    return 1;
}

/*
 * zone:mktime(wall): the instant at which this zone's clocks read wall.
 * The policy promises two things GLib's g_date_time_new() decides
 * otherwise, so they are chosen here from GLib's intervals:
 *  - a reading that happens twice (clocks going back) is the earlier
 *    instant, whichever of the two is the DST one (g_date_time_new takes
 *    the DST one);
 *  - a reading that never happens (clocks going forward) is read with the
 *    offset from before the change: 02:30 on a spring-forward night is
 *    03:30 summer time, as systemd and cron run such jobs late rather
 *    than never.  g_time_zone_adjust_time() would move it to 03:00, the
 *    first instant after the gap, and name a different time.
 */
static int timezone_mktime(lua_State *L)
{
    GTimeZone *tz = timezone_check(L, 1);
    lua_Integer wall = timezone_check_seconds(L, 2);
    gint64 moved = wall;
    int i = g_time_zone_adjust_time(tz, G_TIME_TYPE_DAYLIGHT, &moved);

    if (moved != wall) {
        /* In a gap: i is the interval after it, so i - 1 runs before it. */
        lua_pushinteger(L, wall - g_time_zone_get_offset(tz, i > 0 ? i - 1 : i));
        return 1;
    }
    /* In an overlap the standard and the DST reading differ. */
    int j = g_time_zone_find_interval(tz, G_TIME_TYPE_STANDARD, wall);
    lua_Integer t = wall - g_time_zone_get_offset(tz, i);
    if (j >= 0)
        t = MIN(t, wall - (lua_Integer)g_time_zone_get_offset(tz, j));
    lua_pushinteger(L, t);
    return 1;
}

static int timezone_tostring(lua_State *L)
{
    GTimeZone *tz = timezone_check(L, 1);
    lua_pushfstring(L, TIMEZONE_MT "(%s)", g_time_zone_get_identifier(tz));
    return 1;
}

/* bh.timezone.iso_week(y, m, d) -> ISO 8601 week-numbering year, week. */
static int timezone_iso_week(lua_State *L)
{
    GDate date;
    lua_Integer cycles;
    timezone_check_date(L, luaL_checkinteger(L, 1), luaL_checkinteger(L, 2),
                        luaL_checkinteger(L, 3), &date, &cycles);
    GDateTime *dt = g_date_time_new_utc(g_date_get_year(&date),
                                        g_date_get_month(&date),
                                        g_date_get_day(&date), 0, 0, 0);
    lua_pushinteger(L, g_date_time_get_week_numbering_year(dt) +
                       cycles * TIMEZONE_CYCLE_YEARS);
    lua_pushinteger(L, g_date_time_get_week_of_year(dt));
    g_date_time_unref(dt);
    return 2;
}

/* bh.timezone.days_from_civil(y, m, d) -> days since 1970-01-01. */
static int timezone_days_from_civil(lua_State *L)
{
    GDate date;
    lua_Integer cycles;
    timezone_check_date(L, luaL_checkinteger(L, 1), luaL_checkinteger(L, 2),
                        luaL_checkinteger(L, 3), &date, &cycles);
    lua_pushinteger(L, (lua_Integer)g_date_get_julian(&date) -
                       TIMEZONE_EPOCH_JULIAN + cycles * TIMEZONE_CYCLE_DAYS);
    return 1;
}

/* bh.timezone.civil_from_days(days) -> y, m, d. */
static int timezone_civil_from_days(lua_State *L)
{
    lua_Integer days = luaL_checkinteger(L, 1), y;
    int m, d;
    luaL_argcheck(L, days > -TIMEZONE_MAX_SECONDS / 86400 &&
                     days < TIMEZONE_MAX_SECONDS / 86400, 1,
                  "day too far from 1970");
    timezone_civil(days, &y, &m, &d);
    lua_pushinteger(L, y);
    lua_pushinteger(L, m);
    lua_pushinteger(L, d);
    return 3;
}

static int timezone_days_in_month(lua_State *L)
{
    lua_Integer y = luaL_checkinteger(L, 1), m = luaL_checkinteger(L, 2);
    luaL_argcheck(L, m >= 1 && m <= 12, 2, "month must be 1 to 12");
    lua_pushinteger(L, g_date_get_days_in_month((GDateMonth)m,
        (GDateYear)(y - timezone_year_cycles(y) * TIMEZONE_CYCLE_YEARS)));
    return 1;
}

static const luaL_Reg timezone_methods[] = {
    { "offset", timezone_offset },
    { "localtime", timezone_localtime },
    { "mktime", timezone_mktime },
    { NULL, NULL },
};

static const luaL_Reg timezone_funcs[] = {
    { "open", timezone_open },
    { "open_utc", timezone_open_utc },
    { "open_local", timezone_open_local },
    { "iso_week", timezone_iso_week },
    { "days_from_civil", timezone_days_from_civil },
    { "civil_from_days", timezone_civil_from_days },
    { "days_in_month", timezone_days_in_month },
    { NULL, NULL },
};

void bh_lua_timezone_register(lua_State *L, int module_index)
{
    luaL_newmetatable(L, TIMEZONE_MT);
    lua_pushcfunction(L, timezone_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, timezone_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, timezone_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    bh_lua_subtable(L, module_index, "timezone");
    luaL_setfuncs(L, timezone_funcs, 0);
    lua_pop(L, 1);
}
