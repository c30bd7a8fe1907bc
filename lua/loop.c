/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bh.loop() and bh.quit(): the script hands the main thread to the core's
 * main loop until a signal, bh.quit() or the last holder lets go.  Lua
 * callbacks that run inside the loop (frontend events) cannot raise
 * through it, so an error there is parked in the registry, the loop quits,
 * and bh.loop() raises it once the loop has returned.
 */
#include <signal.h>

#include "bh-lua.h"

#define LOOP_ERROR_KEY "blkhost.loop_error"

int bh_lua_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = luaL_tolstring(L, 1, NULL);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

void bh_lua_loop_call(lua_State *L, int nargs)
{
    int fn = lua_gettop(L) - nargs;
    bh_lua_driver_reacquire();
    lua_pushcfunction(L, bh_lua_traceback);
    lua_insert(L, fn);
    if (lua_pcall(L, nargs, 0, fn) != LUA_OK) {
        /* Keep only the first error: later ones are usually its echoes. */
        lua_getfield(L, LUA_REGISTRYINDEX, LOOP_ERROR_KEY);
        bool have = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (!have)
            lua_setfield(L, LUA_REGISTRYINDEX, LOOP_ERROR_KEY);
        else
            lua_pop(L, 1);
        bh_loop_quit();
    }
    lua_remove(L, fn);
    bh_lua_driver_release();
}

void bh_lua_loop_report(lua_State *L, int nargs, const char *what)
{
    int fn = lua_gettop(L) - nargs;
    bh_lua_driver_reacquire();
    lua_pushcfunction(L, bh_lua_traceback);
    lua_insert(L, fn);
    if (lua_pcall(L, nargs, 0, fn) != LUA_OK) {
        g_printerr("blkhost: %s failed (serving goes on): %s\n", what,
                   lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_remove(L, fn);
    bh_lua_driver_release();
}

/* bh.loop() -> signal number that ended it, or 0 */
static int loop_run(lua_State *L)
{
    /* The server's threads may call the script's Lua drivers now. */
    bh_lua_driver_release();
    int sig = bh_loop_run();
    bh_lua_driver_reacquire();

    lua_getfield(L, LUA_REGISTRYINDEX, LOOP_ERROR_KEY);
    if (!lua_isnil(L, -1)) {
        lua_pushnil(L);
        lua_setfield(L, LUA_REGISTRYINDEX, LOOP_ERROR_KEY);
        return lua_error(L);
    }
    lua_pop(L, 1);
    lua_pushinteger(L, sig);
    return 1;
}

static int loop_quit(lua_State *L)
{
    bh_loop_quit();
    return 0;
}

void bh_lua_loop_register(lua_State *L, int module_index)
{
    lua_pushcfunction(L, loop_run);
    lua_setfield(L, module_index, "loop");
    lua_pushcfunction(L, loop_quit);
    lua_setfield(L, module_index, "quit");

    /* Signal numbers a script compares bh.loop()'s result with. */
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, SIGINT);
    lua_setfield(L, -2, "SIGINT");
    lua_pushinteger(L, SIGTERM);
    lua_setfield(L, -2, "SIGTERM");
    lua_pushinteger(L, SIGHUP);
    lua_setfield(L, -2, "SIGHUP");
    lua_setfield(L, module_index, "signals");
}
