/*
 * bh.nbd: the Lua face of the nbd-server frontend.
 *
 *   local srv <close> = bh.nbd.server{listen={"unix:/tmp/s"}, max_clients=4,
 *                                     persistent=true,
 *                                     on_connect=function(info) end,
 *                                     on_disconnect=function(info) end}
 *   srv:export(node, {name="", readonly=false, description="..."})
 *   print(srv:uri(""))          -- nbd+unix:///?socket=/tmp/s
 *   bh.loop()
 *
 * The server starts listening at its first export(), so a client that
 * sees the socket always finds an export; later exports join a running
 * server.  server:start() starts one with no export yet.  Callbacks run on
 * the main thread inside bh.loop() with a table {id=, peer=, export=}.
 */
#include <errno.h>
#include <string.h>

#include "bh-lua.h"

#define NBD_SERVER_MT "blkhost.nbd.server"

typedef struct {
    BhFrontendHandle *h;   /* NULL once closed */
    lua_State *L;          /* main thread, for callbacks */
    int on_connect;        /* registry refs or LUA_NOREF */
    int on_disconnect;
    bool started;
} LuaNbdServer;

static LuaNbdServer *server_ud(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, NBD_SERVER_MT);
}

static LuaNbdServer *server_check(lua_State *L, int idx)
{
    LuaNbdServer *s = server_ud(L, idx);
    if (!s->h)
        luaL_argerror(L, idx, "the NBD server is closed");
    return s;
}

static void server_event(void *data, const char *event, const BhInfo *details)
{
    LuaNbdServer *s = data;
    int ref = strcmp(event, "connect") == 0      ? s->on_connect
              : strcmp(event, "disconnect") == 0 ? s->on_disconnect
                                                 : LUA_NOREF;
    if (!s->L || ref == LUA_NOREF)
        return;
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, ref);
    bh_lua_push_info(s->L, details);
    bh_lua_loop_call(s->L, 1);
}

static int take_callback(lua_State *L, int tidx, const char *field)
{
    int ref = LUA_NOREF;
    lua_getfield(L, tidx, field);
    if (lua_isfunction(L, -1)) {
        ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return ref;
    }
    if (!lua_isnil(L, -1))
        luaL_error(L, "bh.nbd.server: %s must be a function, not a %s",
                   field, luaL_typename(L, -1));
    lua_pop(L, 1);
    return ref;
}

/* bh.nbd.server{...} -> server */
static int nbd_server_new(lua_State *L)
{
    GError *err = NULL;
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);

    LuaNbdServer *s = lua_newuserdatauv(L, sizeof(*s), 0);   /* 2 */
    memset(s, 0, sizeof(*s));
    s->on_connect = s->on_disconnect = LUA_NOREF;
    luaL_setmetatable(L, NBD_SERVER_MT);

    s->on_connect = take_callback(L, 1, "on_connect");
    s->on_disconnect = take_callback(L, 1, "on_disconnect");

    /* Everything but the callbacks goes to the frontend as options; a
     * string listen is one address, an array several. */
    lua_newtable(L);                                          /* 3 */
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                       : NULL;
        if (k && (strcmp(k, "on_connect") == 0 ||
                  strcmp(k, "on_disconnect") == 0)) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, 3);
    }
    BhOpts *opts = bh_lua_opts_from_table(L, 3, &err);
    lua_pop(L, 1);
    if (!opts)
        return bh_lua_error(L, err);
    s->h = bh_frontend_new("nbd-server", opts, &err);
    bh_opts_free(opts);
    if (!s->h)
        return bh_lua_error(L, err);

    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    s->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    if (s->on_connect != LUA_NOREF || s->on_disconnect != LUA_NOREF)
        bh_frontend_set_event_cb(s->h, server_event, s);
    return 1;
}

static void server_start_or_raise(lua_State *L, LuaNbdServer *s)
{
    GError *err = NULL;
    if (s->started)
        return;
    if (bh_frontend_start(s->h, &err) < 0)
        bh_lua_error(L, err);
    s->started = true;
}

/* server:export(node, {name=, readonly=, description=}) -> server */
static int nbd_server_export(lua_State *L)
{
    LuaNbdServer *s = server_check(L, 1);
    BhExport *exp = bh_lua_check_export(L, 2, 3);
    GError *err = NULL;

    if (bh_frontend_add_export(s->h, exp, &err) < 0)
        return bh_lua_error(L, err);
    server_start_or_raise(L, s);
    lua_settop(L, 1);
    return 1;
}

static int nbd_server_start(lua_State *L)
{
    server_start_or_raise(L, server_check(L, 1));
    lua_settop(L, 1);
    return 1;
}

/* server:uri([name]) -> "nbd+unix:///name?socket=..." */
static int nbd_server_uri(lua_State *L)
{
    LuaNbdServer *s = server_check(L, 1);
    if (!s->started)
        return luaL_error(L, "the NBD server is not listening yet: export "
                          "something first (or call server:start())");
    char *uri = bh_frontend_uri(s->h, luaL_optstring(L, 2, ""));
    if (uri)
        lua_pushstring(L, uri);
    else
        lua_pushnil(L);
    g_free(uri);
    return 1;
}

static int nbd_server_status(lua_State *L)
{
    LuaNbdServer *s = server_check(L, 1);
    BhInfo *info = bh_info_new();
    bh_frontend_status(s->h, info);
    bh_lua_push_info(L, info);
    bh_info_free(info);
    return 1;
}

/* Graceful: in-flight requests finish, exports are flushed, sockets go. */
static int nbd_server_stop(lua_State *L)
{
    bh_frontend_stop(server_check(L, 1)->h);
    return 0;
}

static int nbd_server_close(lua_State *L)
{
    LuaNbdServer *s = server_ud(L, 1);
    BhFrontendHandle *h = s->h;
    s->h = NULL;
    if (h) {
        bh_frontend_set_event_cb(h, NULL, NULL);
        bh_frontend_free(h);
    }
    luaL_unref(L, LUA_REGISTRYINDEX, s->on_connect);
    luaL_unref(L, LUA_REGISTRYINDEX, s->on_disconnect);
    s->on_connect = s->on_disconnect = LUA_NOREF;
    return 0;
}

static int nbd_server_tostring(lua_State *L)
{
    LuaNbdServer *s = server_ud(L, 1);
    char *uri = s->h && s->started ? bh_frontend_uri(s->h, "") : NULL;
    if (!s->h)
        lua_pushliteral(L, "blkhost.nbd.server(closed)");
    else if (uri)
        lua_pushfstring(L, "blkhost.nbd.server(%s)", uri);
    else
        lua_pushliteral(L, "blkhost.nbd.server(not started)");
    g_free(uri);
    return 1;
}

static const luaL_Reg server_methods[] = {
    { "export", nbd_server_export },
    { "start", nbd_server_start },
    { "uri", nbd_server_uri },
    { "status", nbd_server_status },
    { "stop", nbd_server_stop },
    { "close", nbd_server_close },
    { NULL, NULL },
};

static const luaL_Reg server_meta[] = {
    { "__gc", nbd_server_close },
    { "__close", nbd_server_close },
    { "__tostring", nbd_server_tostring },
    { NULL, NULL },
};

void bh_lua_open_nbd(lua_State *L, int module_index)
{
    module_index = lua_absindex(L, module_index);
    if (luaL_newmetatable(L, NBD_SERVER_MT)) {
        luaL_setfuncs(L, server_meta, 0);
        luaL_newlib(L, server_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    /* Share bh.nbd with other bindings (the kernel client adds to it). */
    bh_lua_subtable(L, module_index, "nbd");
    lua_pushcfunction(L, nbd_server_new);
    lua_setfield(L, -2, "server");
    lua_pop(L, 1);
}
