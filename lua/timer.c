/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bh.timer: callbacks run by the main loop (bh.loop()) after a delay or
 * every so many seconds.
 *
 *   local h = bh.timer.every(seconds, fn)      -- fn() every seconds
 *   local h = bh.timer.after(seconds, fn)      -- fn() once
 *   local h = bh.timer.at(spec, fn [, {timezone = "Europe/Berlin"}])
 *   h:cancel()
 *   bh.timer.now()                              -- the wall clock, seconds
 *                                                  (with a fraction)
 *
 * `at` (calendar specs, as systemd's OnCalendar=) is Lua:
 * lua/blkhost/timer.lua, loaded the first time bh.timer.at is read; it
 * is built on after() and now() from here.
 *
 * Delays are measured on the monotonic clock (GLib timeouts), so a
 * wall-clock jump does not stretch or shorten them; the calendar side
 * re-reads the wall clock when it wakes.  An armed timer holds the main
 * loop (bh_loop_hold): a script with a timer and no server still runs
 * until its timers are cancelled, a signal or bh.quit().
 *
 * A callback that raises is reported on stderr with its traceback and the
 * loop goes on serving: a failed nightly snapshot must not end the
 * export.  (Frontend event callbacks, bh_lua_loop_call, instead stop the
 * loop: they are part of the script's own flow.)
 */
#include <math.h>

#include "bh-lua.h"

#define TIMER_MT "blkhost.timer"

typedef struct {
    guint source;       /* 0 once it has fired (once) or been cancelled */
    int fn_ref;         /* the callback, LUA_NOREF once released */
    bool repeat;
    lua_State *L;       /* the main thread */
} Timer;

/* Forget the callback and let the loop go; the userdata may live on. */
static void timer_disarm(Timer *t)
{
    if (t->source) {
        g_source_remove(t->source);
        t->source = 0;
    }
    if (t->fn_ref != LUA_NOREF) {
        luaL_unref(t->L, LUA_REGISTRYINDEX, t->fn_ref);
        t->fn_ref = LUA_NOREF;
        bh_loop_release();
    }
}

static gboolean timer_fire(gpointer p)
{
    Timer *t = p;
    lua_State *L = t->L;
    int fn_ref = t->fn_ref;
    bool again = t->repeat;

    /* The handle stays on the stack through the call: the callback may
     * cancel it, which drops the registry's reference to it. */
    lua_rawgetp(L, LUA_REGISTRYINDEX, t);
    if (!again) {
        /* Done before the call, so the callback may arm new timers or
         * cancel this one without meeting a stale source id. */
        t->source = 0;
        t->fn_ref = LUA_NOREF;
        lua_pushnil(L);
        lua_rawsetp(L, LUA_REGISTRYINDEX, t);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
    bh_lua_loop_report(L, 0, "timer callback");
    bool keep = again && t->source;  /* it may have cancelled itself */
    lua_pop(L, 1);
    if (!again) {
        luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
        bh_loop_release();
    }
    return keep ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static int timer_new(lua_State *L, bool repeat)
{
    lua_Number secs = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (!(secs >= 0) || secs > 366.0 * 86400 || (repeat && secs < 0.001))
        return luaL_argerror(L, 1, repeat
            ? "an interval from 0.001 to 31622400 seconds"
            : "a delay from 0 to 31622400 seconds");

    Timer *t = lua_newuserdatauv(L, sizeof(*t), 0);
    t->repeat = repeat;
    t->fn_ref = LUA_NOREF;
    t->source = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    t->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    luaL_setmetatable(L, TIMER_MT);

    lua_pushvalue(L, 2);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* The registry holds an armed timer's handle (keyed by its address):
     * a script that drops the handle still gets its job run, as a
     * scheduled job should, until it is cancelled. */
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, t);
    guint ms = (guint)ceil(secs * 1000.0);
    t->source = g_timeout_add(ms, timer_fire, t);
    bh_loop_hold();
    return 1;
}

static int timer_every(lua_State *L) { return timer_new(L, true); }
static int timer_after(lua_State *L) { return timer_new(L, false); }

static int timer_cancel(lua_State *L)
{
    Timer *t = luaL_checkudata(L, 1, TIMER_MT);
    timer_disarm(t);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, t);
    return 0;
}

/* h:active() -> whether it will still fire */
static int timer_active(lua_State *L)
{
    Timer *t = luaL_checkudata(L, 1, TIMER_MT);
    lua_pushboolean(L, t->fn_ref != LUA_NOREF);
    return 1;
}

static int timer_gc(lua_State *L)
{
    /* Only reached once cancelled or fired (the registry holds armed
     * ones), or at lua_close, when the loop is gone anyway. */
    timer_disarm(luaL_checkudata(L, 1, TIMER_MT));
    return 0;
}

static int timer_tostring(lua_State *L)
{
    Timer *t = luaL_checkudata(L, 1, TIMER_MT);
    lua_pushfstring(L, "blkhost.timer(%s)",
                    t->fn_ref == LUA_NOREF ? "done"
                    : t->repeat ? "every" : "once");
    return 1;
}

/* bh.timer.now() -> seconds since 1970 on the wall clock, with a
 * fraction (what calendar timers compare their instants with). */
static int timer_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)g_get_real_time() / 1e6);
    return 1;
}

/* bh.timer.at and the rest of the calendar side come from
 * blkhost.timer the first time they are read. */
static int timer_index(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "blkhost.timer");
    lua_call(L, 1, 0);
    lua_pushvalue(L, 2);
    lua_rawget(L, 1);
    return 1;
}

static const luaL_Reg timer_methods[] = {
    { "cancel", timer_cancel },
    { "active", timer_active },
    { NULL, NULL },
};

static const luaL_Reg timer_meta[] = {
    { "__gc", timer_gc },
    { "__tostring", timer_tostring },
    { NULL, NULL },
};

static const luaL_Reg timer_funcs[] = {
    { "every", timer_every },
    { "after", timer_after },
    { "now", timer_now },
    { NULL, NULL },
};

void bh_lua_open_timer(lua_State *L, int module_index)
{
    if (luaL_newmetatable(L, TIMER_MT)) {
        luaL_setfuncs(L, timer_meta, 0);
        luaL_newlib(L, timer_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);

    bh_lua_subtable(L, module_index, "timer");
    luaL_setfuncs(L, timer_funcs, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, timer_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
}
