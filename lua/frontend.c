/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bh.frontend(name, opts): a running instance of any frontend plugin
 * (nbd-server, nbd-kernel, ...) as a userdata over BhFrontendHandle.
 * Exports hold their own node references, so closing a node in Lua does
 * not pull it from under a client.  Event callbacks (h:on_event(fn)) run
 * on the main thread inside bh.loop().
 */
#include <errno.h>

#include <string.h>

#include "bh-lua.h"

/* One userdata type for every frontend handle.  bh.frontend() makes
 * plain ones; bindings such as bh.nbd.server make theirs with
 * bh_lua_frontend_push(), which can start the frontend at its first
 * export and print itself under another name. */
typedef struct {
    BhFrontendHandle *h; /* NULL once closed */
    lua_State *L;        /* the main thread, for event callbacks */
    int cb_ref;          /* on_event: fn(event, details), or LUA_NOREF */
    int named_ref;       /* {event = fn(details)}, or LUA_NOREF */
    bool auto_start;     /* start at the first export */
    bool started;
    const char *label;   /* static: "blkhost.frontend", "blkhost.nbd.server" */
} LuaFrontend;

static LuaFrontend *frontend_ud(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, BH_LUA_FRONTEND_MT);
}

static BhFrontendHandle *frontend_check(lua_State *L, int idx)
{
    LuaFrontend *f = frontend_ud(L, idx);
    if (!f->h)
        luaL_argerror(L, idx, "frontend is closed");
    return f->h;
}

static void frontend_event(void *data, const char *event,
                           const BhInfo *details);

/* Route the frontend's events to Lua, always: besides the script's
 * callbacks, served.c counts the clients from them. */
static void frontend_update_events(LuaFrontend *f)
{
    bh_frontend_set_event_cb(f->h, frontend_event, f);
}

void bh_lua_frontend_push(lua_State *L, const char *name, int opts_idx,
                          const char *label, bool auto_start)
{
    BhError *err = NULL;
    opts_idx = lua_absindex(L, opts_idx);
    LuaFrontend *f = lua_newuserdatauv(L, sizeof(*f), 0);
    memset(f, 0, sizeof(*f));
    f->cb_ref = f->named_ref = LUA_NOREF;
    f->label = label;
    f->auto_start = auto_start;
    luaL_setmetatable(L, BH_LUA_FRONTEND_MT);

    BhOpts *opts = bh_lua_opts_from_table(L, opts_idx, &err);
    if (!opts)
        bh_lua_error(L, err);
    f->h = bh_frontend_new(name, opts, &err);
    bh_opts_free(opts);
    if (!f->h)
        bh_lua_error(L, err);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    f->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    frontend_update_events(f);
}

void bh_lua_frontend_on(lua_State *L, int ud_idx, const char *event,
                        int fn_idx)
{
    LuaFrontend *f = frontend_ud(L, ud_idx);
    frontend_check(L, ud_idx);
    fn_idx = lua_absindex(L, fn_idx);
    if (f->named_ref == LUA_NOREF) {
        lua_newtable(L);
        f->named_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, f->named_ref);
    lua_pushvalue(L, fn_idx);
    lua_setfield(L, -2, event);
    lua_pop(L, 1);
    frontend_update_events(f);
}

/* Start once; raises on failure. */
static void frontend_start_once(lua_State *L, LuaFrontend *f)
{
    BhError *err = NULL;
    if (f->started)
        return;
    if (bh_frontend_start(f->h, &err) < 0)
        bh_lua_error(L, err);
    f->started = true;
}

/* bh.frontend(name, opts) -> handle */
static int frontend_new(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    bh_lua_frontend_push(L, name, 2, "blkhost.frontend", false);
    return 1;
}

/* h:export(node, {name=, readonly=, description=}) */

/* The (node, {name=, description=, readonly=}) arguments every export
 * method takes, at node_idx and opts_idx, as a new BhExport. */
BhExport *bh_lua_check_export(lua_State *L, int node_idx, int opts_idx)
{
    BhNode *bs = bh_lua_checknode(L, node_idx);
    const char *name = "";
    const char *desc = NULL;
    bool ro = false;

    if (!lua_isnoneornil(L, opts_idx)) {
        luaL_checktype(L, opts_idx, LUA_TTABLE);
        lua_getfield(L, opts_idx, "name");
        if (!lua_isnil(L, -1) && !(name = lua_tostring(L, -1)))
            luaL_error(L, "export name must be a string, not a %s",
                       luaL_typename(L, -1));
        lua_getfield(L, opts_idx, "description");
        if (!lua_isnil(L, -1) && !(desc = lua_tostring(L, -1)))
            luaL_error(L, "export description must be a string, not a %s",
                       luaL_typename(L, -1));
        ro = bh_lua_opt_flag(L, opts_idx, "readonly", false);
    }
    /* name and desc are still on the stack; bh_export_new copies them. */
    BhExport *exp = bh_export_new(bs, name, desc, ro);
    if (!lua_isnoneornil(L, opts_idx))
        lua_pop(L, 2);
    return exp;
}

static int frontend_export(lua_State *L)
{
    BhFrontendHandle *h = frontend_check(L, 1);
    LuaFrontend *f = frontend_ud(L, 1);
    BhExport *exp = bh_lua_check_export(L, 2, 3);
    BhError *err = NULL;
    BhNode *bs = bh_export_node(exp);
    char *name = g_strdup(bh_export_name(exp));
    char *desc = g_strdup(bh_export_description(exp));
    bool ro = bh_export_readonly(exp);

    if (bh_frontend_add_export(h, exp, &err) < 0) {
        g_free(name);
        g_free(desc);
        return bh_lua_error(L, err);
    }
    /* exp is the frontend's now, and holds bs for as long as it lives. */
    bh_lua_served_export(L, 1, f, bs, name, desc, ro);
    g_free(name);
    g_free(desc);
    /* A server that starts at its first export never listens with
     * nothing to serve, so a client that sees the socket finds one. */
    if (f->auto_start)
        frontend_start_once(L, f);
    lua_settop(L, 1);
    return 1;
}

/* h:unexport(name [, {hard=true}]): stop serving an export; without
 * hard, refused while it has clients; with hard they are disconnected. */
static int frontend_unexport(lua_State *L)
{
    BhFrontendHandle *h = frontend_check(L, 1);
    const char *name = luaL_checkstring(L, 2);
    bool hard = bh_lua_opt_flag(L, 3, "hard", false);
    BhError *err = NULL;
    if (bh_frontend_remove_export(h, name, hard, &err) < 0)
        return bh_lua_error(L, err);
    bh_lua_served_unexport(L, frontend_ud(L, 1), name);
    return 0;
}

/* h:disconnect([export_name]) -> how many clients were disconnected,
 * once they are gone */
static int frontend_disconnect(lua_State *L)
{
    BhFrontendHandle *h = frontend_check(L, 1);
    BhError *err = NULL;
    int n = bh_frontend_disconnect(h, luaL_optstring(L, 2, NULL), &err);
    if (n < 0)
        return bh_lua_error(L, err);
    lua_pushinteger(L, n);
    return 1;
}

static int frontend_start(lua_State *L)
{
    frontend_check(L, 1);
    frontend_start_once(L, frontend_ud(L, 1));
    lua_settop(L, 1);
    return 1;
}

/* Stopping waits for requests in flight, which may be waiting to call a
 * driver the script registered: let them (driver.c). */
static int frontend_stop(lua_State *L)
{
    BhFrontendHandle *h = frontend_check(L, 1);
    bh_lua_driver_release();
    bh_frontend_stop(h);
    bh_lua_driver_reacquire();
    return 0;
}

/* h:uri([export_name]) -> string or nil */
static int frontend_uri(lua_State *L)
{
    BhFrontendHandle *h = frontend_check(L, 1);
    LuaFrontend *f = frontend_ud(L, 1);
    if (f->auto_start && !f->started)
        return luaL_error(L, "%s is not listening yet: export something "
                          "first (or call :start())", f->label);
    char *uri = bh_frontend_uri(h, luaL_optstring(L, 2, NULL));
    if (uri)
        lua_pushstring(L, uri);
    else
        lua_pushnil(L);
    g_free(uri);
    return 1;
}

static int frontend_status(lua_State *L)
{
    BhFrontendHandle *h = frontend_check(L, 1);
    BhInfo *info = bh_info_new();
    bh_frontend_status(h, info);
    bh_lua_push_info(L, info);
    bh_info_free(info);
    return 1;
}

static int frontend_name(lua_State *L)
{
    lua_pushstring(L, bh_frontend_name(frontend_check(L, 1)));
    return 1;
}

/* On the main thread: the callback named for the event gets
 * fn(details), then the on_event one gets fn(event, details). */
static void frontend_event(void *data, const char *event,
                           const BhInfo *details)
{
    LuaFrontend *f = data;
    lua_State *L = f->L;

    if (!L)
        return;
    bh_lua_push_info(L, details);
    bh_lua_served_event(L, f, event, -1);
    lua_pop(L, 1);
    if (f->named_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, f->named_ref);
        lua_getfield(L, -1, event);
        lua_remove(L, -2);
        if (lua_isfunction(L, -1)) {
            bh_lua_push_info(L, details);
            bh_lua_loop_call(L, 1);
        } else {
            lua_pop(L, 1);
        }
    }
    if (f->cb_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, f->cb_ref);
        lua_pushstring(L, event);
        bh_lua_push_info(L, details);
        bh_lua_loop_call(L, 2);
    }
}

/* h:on_event(fn) -- fn(event, details) on the main thread; nil removes. */
static int frontend_on_event(lua_State *L)
{
    LuaFrontend *f = frontend_ud(L, 1);
    BhFrontendHandle *h = frontend_check(L, 1);

    if (!lua_isnil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    (void)h;
    luaL_unref(L, LUA_REGISTRYINDEX, f->cb_ref);
    f->cb_ref = LUA_NOREF;
    if (!lua_isnil(L, 2)) {
        lua_pushvalue(L, 2);
        f->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    frontend_update_events(f);
    return 0;
}

/* h:close(), __close, __gc: stop, free, drop the callback. */
static int frontend_close(lua_State *L)
{
    LuaFrontend *f = frontend_ud(L, 1);
    BhFrontendHandle *h = f->h;

    f->h = NULL;
    if (h) {
        bh_frontend_set_event_cb(h, NULL, NULL);
        bh_lua_driver_release();  /* as in frontend_stop */
        bh_frontend_free(h);
        bh_lua_driver_reacquire();
        bh_lua_served_forget(L, f);
    }
    luaL_unref(L, LUA_REGISTRYINDEX, f->cb_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, f->named_ref);
    f->cb_ref = f->named_ref = LUA_NOREF;
    return 0;
}

static int frontend_tostring(lua_State *L)
{
    LuaFrontend *f = frontend_ud(L, 1);
    char *uri = f->h && f->started ? bh_frontend_uri(f->h, NULL) : NULL;
    if (!f->h)
        lua_pushfstring(L, "%s(closed)", f->label);
    else if (uri)
        lua_pushfstring(L, "%s(%s)", f->label, uri);
    else if (f->auto_start && !f->started)
        lua_pushfstring(L, "%s(not started)", f->label);
    else
        lua_pushfstring(L, "%s(%s)", f->label, bh_frontend_name(f->h));
    g_free(uri);
    return 1;
}

static const luaL_Reg frontend_methods[] = {
    { "export", frontend_export },
    { "unexport", frontend_unexport },
    { "disconnect", frontend_disconnect },
    { "start", frontend_start },
    { "stop", frontend_stop },
    { "uri", frontend_uri },
    { "status", frontend_status },
    { "name", frontend_name },
    { "on_event", frontend_on_event },
    { "close", frontend_close },
    { NULL, NULL },
};

static const luaL_Reg frontend_meta[] = {
    { "__gc", frontend_close },
    { "__close", frontend_close },
    { "__tostring", frontend_tostring },
    { NULL, NULL },
};

void bh_lua_frontend_register(lua_State *L, int module_index)
{
    if (luaL_newmetatable(L, BH_LUA_FRONTEND_MT)) {
        luaL_setfuncs(L, frontend_meta, 0);
        luaL_newlib(L, frontend_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, frontend_new);
    lua_setfield(L, module_index, "frontend");
}
