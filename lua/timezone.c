/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bh.timezone: civil time in a named zone through GLib's GTimeZone and
 * GDateTime, for lua/blkhost/timezone.lua (the snapshot retention policy's
 * days, ISO weeks, months and UTC offsets).  GLib reads the tzdata files,
 * the POSIX rule in their footer and the TZ variable; this file only
 * turns its answers into Lua values.
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
 * Instants are seconds since 1970 (Lua integers); GDateTime covers the
 * years 1 to 9999, and anything outside raises an error saying so.
 */
#include <stdbool.h>

#include "bh-lua.h"

#define TIMEZONE_MT "blkhost.timezone"

/* The day GDate numbers 1970-01-01 (its day 1 is 0001-01-01). */
#define TIMEZONE_EPOCH_JULIAN 719163

static GTimeZone *timezone_check(lua_State *L, int idx)
{
    return *(GTimeZone **)luaL_checkudata(L, idx, TIMEZONE_MT);
}

static void timezone_push(lua_State *L, GTimeZone *tz)
{
    GTimeZone **ud = lua_newuserdatauv(L, sizeof(*ud), 0);
    *ud = tz;
    luaL_setmetatable(L, TIMEZONE_MT);
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

/* The instant at argument idx as a UTC GDateTime; raises outside GLib's
 * years 1 to 9999. */
static GDateTime *timezone_check_instant(lua_State *L, int idx)
{
    lua_Integer t = luaL_checkinteger(L, idx);
    GDateTime *dt = g_date_time_new_from_unix_utc(t);
    if (!dt)
        luaL_error(L, "instant %I is outside the years 1 to 9999", t);
    return dt;
}

/* Checked date: raises unless y-m-d is a real day of the years 1 to 9999. */
static void timezone_check_date(lua_State *L, lua_Integer y, lua_Integer m,
                                lua_Integer d, GDate *date)
{
    if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1 ||
        d > g_date_get_days_in_month((GDateMonth)m, (GDateYear)y))
        luaL_error(L, "%I-%I-%I is not a date of the years 1 to 9999",
                   y, m, d);
    g_date_clear(date, 1);
    g_date_set_dmy(date, (GDateDay)d, (GDateMonth)m, (GDateYear)y);
}

/* bh.timezone.open(identifier): a tzdata name or a TZif file's path.
 * timezone.lua decides which names may reach here. */
static int timezone_open(lua_State *L)
{
    GTimeZone *tz = g_time_zone_new_identifier(luaL_checkstring(L, 1));
    if (!tz) {
        lua_pushnil(L);
        return 1;
    }
    timezone_push(L, tz);
    return 1;
}

static int timezone_open_utc(lua_State *L)
{
    timezone_push(L, g_time_zone_new_utc());
    return 1;
}

static int timezone_open_local(lua_State *L)
{
    timezone_push(L, g_time_zone_new_local());
    return 1;
}

static int timezone_offset(lua_State *L)
{
    GTimeZone *tz = timezone_check(L, 1);
    lua_Integer t = luaL_checkinteger(L, 2);
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

static int timezone_localtime(lua_State *L)
{
    GTimeZone *tz = timezone_check(L, 1);
    GDateTime *utc = timezone_check_instant(L, 2);
    GDateTime *dt = g_date_time_to_timezone(utc, tz);
    g_date_time_unref(utc);
    if (!dt)
        return luaL_error(L, "instant %I is outside the years 1 to 9999 "
                          "in this time zone", lua_tointeger(L, 2));
    lua_createtable(L, 0, 10);
    timezone_setint(L, "year", g_date_time_get_year(dt));
    timezone_setint(L, "month", g_date_time_get_month(dt));
    timezone_setint(L, "day", g_date_time_get_day_of_month(dt));
    timezone_setint(L, "hour", g_date_time_get_hour(dt));
    timezone_setint(L, "min", g_date_time_get_minute(dt));
    timezone_setint(L, "sec", g_date_time_get_second(dt));
    timezone_setint(L, "wday", g_date_time_get_day_of_week(dt));
    timezone_setint(L, "yday", g_date_time_get_day_of_year(dt));
    timezone_setint(L, "offset",
                    g_date_time_get_utc_offset(dt) / G_TIME_SPAN_SECOND);
    lua_pushboolean(L, g_date_time_is_daylight_savings(dt));
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
    lua_Integer wall = luaL_checkinteger(L, 2);
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
    timezone_check_date(L, luaL_checkinteger(L, 1), luaL_checkinteger(L, 2),
                        luaL_checkinteger(L, 3), &date);
    GDateTime *dt = g_date_time_new_utc(g_date_get_year(&date),
                                        g_date_get_month(&date),
                                        g_date_get_day(&date), 0, 0, 0);
    lua_pushinteger(L, g_date_time_get_week_numbering_year(dt));
    lua_pushinteger(L, g_date_time_get_week_of_year(dt));
    g_date_time_unref(dt);
    return 2;
}

/* bh.timezone.days_from_civil(y, m, d) -> days since 1970-01-01. */
static int timezone_days_from_civil(lua_State *L)
{
    GDate date;
    timezone_check_date(L, luaL_checkinteger(L, 1), luaL_checkinteger(L, 2),
                        luaL_checkinteger(L, 3), &date);
    lua_pushinteger(L, (lua_Integer)g_date_get_julian(&date) -
                       TIMEZONE_EPOCH_JULIAN);
    return 1;
}

/* bh.timezone.civil_from_days(days) -> y, m, d. */
static int timezone_civil_from_days(lua_State *L)
{
    lua_Integer days = luaL_checkinteger(L, 1);
    lua_Integer julian = days + TIMEZONE_EPOCH_JULIAN;
    GDate date;

    g_date_clear(&date, 1);
    if (julian < 1 || !g_date_valid_julian((guint32)julian) ||
        julian > 3652059)                       /* 9999-12-31 */
        return luaL_error(L, "day %I is outside the years 1 to 9999", days);
    g_date_set_julian(&date, (guint32)julian);
    lua_pushinteger(L, g_date_get_year(&date));
    lua_pushinteger(L, g_date_get_month(&date));
    lua_pushinteger(L, g_date_get_day(&date));
    return 3;
}

static int timezone_days_in_month(lua_State *L)
{
    lua_Integer y = luaL_checkinteger(L, 1), m = luaL_checkinteger(L, 2);
    if (y < 1 || y > 9999 || m < 1 || m > 12)
        return luaL_error(L, "%I-%I is not a month of the years 1 to 9999",
                          y, m);
    lua_pushinteger(L, g_date_get_days_in_month((GDateMonth)m, (GDateYear)y));
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
