/* SPDX-License-Identifier: BSD-3-Clause */
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
 * A server is a frontend handle (frontend.c: export, start, stop, uri,
 * status, on_event, close) that starts listening at its first export(),
 * so a client that sees the socket always finds an export; later exports
 * join a running server.  server:start() starts one with no export yet.
 * Callbacks run on the main thread inside bh.loop() with a table
 * {id=, peer=, export=, tls=, tls_identity=}.
 *
 * Limits (seconds; README "Slow and hostile clients"): max_clients
 * counts served clients, beyond it clients wait un-greeted; also
 * max_handshakes=, handshake_timeout=, send_timeout=, stop_timeout=.
 *
 * TLS: tls = {mode="off"|"on"|"require", x509_dir=DIR, psk_file=FILE,
 * verify_peer=BOOL, allow={DN or PSK identity, ...}} (or tls="require"
 * with the credentials elsewhere: then the server refuses to start).
 */
#include <string.h>

#include "bh-lua.h"

static const char *const nbd_callbacks[] = { "connect", "disconnect", NULL };

/* The fields of the tls table and the frontend options they become. */
static const char *const nbd_tls_fields[][2] = {
    { "mode", "tls" },
    { "x509_dir", "tls_x509_dir" },
    { "psk_file", "tls_psk_file" },
    { "verify_peer", "tls_verify_peer" },
    { "allow", "tls_allow" },
};

/* Flatten tls={...} (at the top of the stack) into options in opts_idx. */
static void nbd_tls_flatten(lua_State *L, int opts_idx)
{
    if (lua_type(L, -1) == LUA_TSTRING) {
        lua_setfield(L, opts_idx, "tls");
        return;
    }
    if (!lua_istable(L, -1))
        luaL_error(L, "bh.nbd.server: tls must be a table {mode=, x509_dir=, "
                   "psk_file=, verify_peer=, allow=}, not a %s",
                   luaL_typename(L, -1));
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                       : "?";
        const char *opt = NULL;
        for (size_t i = 0; i < G_N_ELEMENTS(nbd_tls_fields); i++)
            if (strcmp(k, nbd_tls_fields[i][0]) == 0)
                opt = nbd_tls_fields[i][1];
        if (!opt)
            luaL_error(L, "bh.nbd.server: unknown tls field '%s' (known: "
                       "mode, x509_dir, psk_file, verify_peer, allow)", k);
        lua_setfield(L, opts_idx, opt);
    }
    lua_pop(L, 1);
}

/* bh.nbd.server{...} -> server */
static int nbd_server_new(lua_State *L)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);

    /* Everything but the callbacks goes to the frontend as options; a
     * string listen is one address, an array several. */
    lua_newtable(L);                                          /* 2 */
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                       : NULL;
        if (k && strncmp(k, "on_", 3) == 0) {
            bool known = false;
            for (int i = 0; nbd_callbacks[i]; i++)
                known |= strcmp(k + 3, nbd_callbacks[i]) == 0;
            if (known && !lua_isfunction(L, -1))
                return luaL_error(L, "bh.nbd.server: %s must be a function, "
                                  "not a %s", k, luaL_typename(L, -1));
            if (known) {
                lua_pop(L, 1);
                continue;
            }
        }
        if (k && strcmp(k, "tls") == 0) {
            nbd_tls_flatten(L, 2);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, 2);
    }
    bh_lua_frontend_push(L, "nbd-server", 2, "blkhost.nbd.server", true);
    for (int i = 0; nbd_callbacks[i]; i++) {                  /* 3 */
        char field[32];
        g_snprintf(field, sizeof(field), "on_%s", nbd_callbacks[i]);
        if (lua_getfield(L, 1, field) == LUA_TFUNCTION)
            bh_lua_frontend_on(L, 3, nbd_callbacks[i], -1);
        lua_pop(L, 1);
    }
    return 1;
}

void bh_lua_open_nbd(lua_State *L, int module_index)
{
    /* Share bh.nbd with other bindings (the kernel client adds to it). */
    bh_lua_subtable(L, module_index, "nbd");
    lua_pushcfunction(L, nbd_server_new);
    lua_setfield(L, -2, "server");
    lua_pop(L, 1);
}
