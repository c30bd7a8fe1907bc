/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What this process serves: every export made through a frontend handle
 * (frontend.c tells this file) and the clients connected to each
 * frontend, for bh.exports(), the control socket's query-exports and
 * query-clients, and the refusal of snapshot_apply/loadvm under
 * connected clients (snapshot.c).
 *
 *   bh.exports() -> { {server=, node=, name=, description=, readonly=,
 *                      clients = { {id=, peer=, export=, ...}, ... }}, ... }
 *
 * Kept in a registry table keyed by the frontend's address (a light
 * userdata): {server = handle (weak), exports = {...}, clients = {id ->
 * details}}.  An export holds its node, so the node pointer kept here
 * is valid until the frontend is closed, which drops the entry.
 */
#include <string.h>

#include "bh-lua.h"

#define SERVED_KEY "blkhost.served"
#define SERVED_HANDLES_KEY "blkhost.served.handles"

/* Push the registry table at key, creating it (weak values if weak). */
static void served_table(lua_State *L, const char *key, bool weak)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, key) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        if (weak) {
            lua_createtable(L, 0, 1);
            lua_pushliteral(L, "v");
            lua_setfield(L, -2, "__mode");
            lua_setmetatable(L, -2);
        }
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, key);
    }
}

/* Push the entry of frontend fe, creating it. */
static void served_entry(lua_State *L, const void *fe)
{
    served_table(L, SERVED_KEY, false);
    if (lua_rawgetp(L, -1, fe) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 2);
        lua_newtable(L);
        lua_setfield(L, -2, "exports");
        lua_newtable(L);
        lua_setfield(L, -2, "clients");
        lua_pushvalue(L, -1);
        lua_rawsetp(L, -3, fe);
    }
    lua_remove(L, -2);
}

void bh_lua_served_export(lua_State *L, int handle_idx, const void *fe,
                          BhNode *bs, const char *name,
                          const char *description, bool readonly)
{
    handle_idx = lua_absindex(L, handle_idx);
    served_table(L, SERVED_HANDLES_KEY, true);
    lua_pushvalue(L, handle_idx);
    lua_rawsetp(L, -2, fe);
    lua_pop(L, 1);

    served_entry(L, fe);
    lua_getfield(L, -1, "exports");
    lua_createtable(L, 0, 4);
    lua_pushlightuserdata(L, bs);
    lua_setfield(L, -2, "node");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    if (description) {
        lua_pushstring(L, description);
        lua_setfield(L, -2, "description");
    }
    lua_pushboolean(L, readonly);
    lua_setfield(L, -2, "readonly");
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 2);
}

void bh_lua_served_event(lua_State *L, const void *fe, const char *event,
                         int details_idx)
{
    bool connect = strcmp(event, "connect") == 0;
    if (!connect && strcmp(event, "disconnect") != 0)
        return;
    details_idx = lua_absindex(L, details_idx);
    served_entry(L, fe);
    lua_getfield(L, -1, "clients");
    lua_getfield(L, details_idx, "id");
    if (connect)
        lua_pushvalue(L, details_idx);
    else
        lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 2);
}

void bh_lua_served_unexport(lua_State *L, const void *fe, const char *name)
{
    served_entry(L, fe);
    lua_getfield(L, -1, "exports");
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "name");
        bool hit = g_strcmp0(lua_tostring(L, -1), name) == 0;
        lua_pop(L, 2);
        if (hit) {
            /* table.remove: shift the rest down. */
            for (lua_Integer j = i; j < n; j++) {
                lua_rawgeti(L, -1, j + 1);
                lua_rawseti(L, -2, j);
            }
            lua_pushnil(L);
            lua_rawseti(L, -2, n);
            break;
        }
    }
    lua_pop(L, 2);
}

void bh_lua_served_forget(lua_State *L, const void *fe)
{
    served_table(L, SERVED_KEY, false);
    lua_pushnil(L);
    lua_rawsetp(L, -2, fe);
    lua_pop(L, 1);
}

/* Call fn(L, bs, entry_idx, export_idx, data) for each export; stops at
 * a true return.  Returns whether one did. */
static bool served_each(lua_State *L,
                        bool (*fn)(lua_State *L, BhNode *bs, int entry,
                                   int exp, void *data),
                        void *data)
{
    bool stop = false;
    served_table(L, SERVED_KEY, false);
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (!stop && lua_next(L, t)) {
        int entry = lua_gettop(L);
        lua_getfield(L, entry, "exports");
        for (lua_Integer i = 1; !stop && lua_rawgeti(L, -1, i) == LUA_TTABLE;
             i++) {
            lua_getfield(L, -1, "node");
            BhNode *bs = lua_touserdata(L, -1);
            lua_pop(L, 1);
            stop = fn(L, bs, entry, lua_gettop(L), data);
            lua_pop(L, 1);
        }
        lua_settop(L, entry - 1);  /* keep the key for lua_next */
        if (stop)
            break;
    }
    lua_settop(L, t - 1);
    return stop;
}

/* Whether bs, or a node under it, is the node of exp. */
static bool served_is_under(BhNode *top, BhNode *bs)
{
    for (BhNode *n = top; n; n = bh_node_child(n, "file")) {
        if (n == bs)
            return true;
    }
    return false;
}

/* Push a list of the clients of the frontend at entry that use exp. */
static void served_push_clients(lua_State *L, int entry, int exp)
{
    lua_newtable(L);
    lua_getfield(L, exp, "name");
    const char *name = lua_tostring(L, -1);
    lua_getfield(L, entry, "clients");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_getfield(L, -1, "export");
        const char *x = lua_tostring(L, -1);
        lua_pop(L, 1);
        if (x && name && strcmp(x, name) == 0)
            lua_rawseti(L, -5, (lua_Integer)lua_rawlen(L, -5) + 1);
        else
            lua_pop(L, 1);
    }
    lua_pop(L, 2);
}

typedef struct {
    BhNode *bs;
    lua_Integer clients;
    bool found;
} ServedCount;

static bool served_count_cb(lua_State *L, BhNode *bs, int entry, int exp,
                            void *data)
{
    ServedCount *c = data;
    if (c->bs && !served_is_under(bs, c->bs) && !served_is_under(c->bs, bs))
        return false;
    c->found = true;
    served_push_clients(L, entry, exp);
    c->clients += (lua_Integer)lua_rawlen(L, -1);
    lua_pop(L, 1);
    return false;
}

bool bh_lua_served_clients(lua_State *L, BhNode *bs, lua_Integer *clients)
{
    ServedCount c = { .bs = bs };
    served_each(L, served_count_cb, &c);
    *clients = c.clients;
    return c.found;
}

typedef struct {
    BhNode *bs;
    int list;       /* {server handle, export name} pairs to disconnect */
} ServedDisconnect;

static bool served_disconnect_cb(lua_State *L, BhNode *bs, int entry, int exp,
                                 void *data)
{
    ServedDisconnect *d = data;
    if (!served_is_under(bs, d->bs) && !served_is_under(d->bs, bs))
        return false;
    served_table(L, SERVED_HANDLES_KEY, true);
    lua_pushvalue(L, entry - 1);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    lua_createtable(L, 2, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    lua_getfield(L, exp, "name");
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, d->list, (lua_Integer)lua_rawlen(L, d->list) + 1);
    return false;
}

lua_Integer bh_lua_served_disconnect(lua_State *L, BhNode *bs)
{
    lua_newtable(L);
    ServedDisconnect d = { .bs = bs, .list = lua_gettop(L) };
    served_each(L, served_disconnect_cb, &d);
    /* Called outside the walk: a disconnect runs the main loop's events
     * only later, but it may raise. */
    lua_Integer total = 0;
    for (lua_Integer i = 1; lua_rawgeti(L, d.list, i) == LUA_TTABLE; i++) {
        lua_rawgeti(L, -1, 1);
        lua_getfield(L, -1, "disconnect");
        lua_insert(L, -2);
        lua_rawgeti(L, -3, 2);
        lua_call(L, 2, 1);
        total += lua_tointeger(L, -1);
        lua_pop(L, 2);
    }
    lua_pop(L, 2);
    return total;
}

static bool served_push_cb(lua_State *L, BhNode *bs, int entry, int exp,
                           void *data)
{
    int list = *(int *)data;
    lua_createtable(L, 0, 6);
    int e = lua_gettop(L);
    lua_getfield(L, exp, "name");
    lua_setfield(L, e, "name");
    lua_getfield(L, exp, "description");
    lua_setfield(L, e, "description");
    lua_getfield(L, exp, "readonly");
    lua_setfield(L, e, "readonly");
    bh_lua_pushnode(L, bh_node_ref(bs));
    lua_setfield(L, e, "node");
    served_table(L, SERVED_HANDLES_KEY, true);
    lua_pushvalue(L, entry - 1);   /* the key: the frontend's address */
    lua_rawget(L, -2);
    lua_setfield(L, e, "server");
    lua_pop(L, 1);
    served_push_clients(L, entry, exp);
    lua_setfield(L, e, "clients");
    lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);
    return false;
}

/* bh.exports() */
static int served_exports(lua_State *L)
{
    lua_newtable(L);
    int list = lua_gettop(L);
    served_each(L, served_push_cb, &list);
    return 1;
}

void bh_lua_open_served(lua_State *L, int module_index)
{
    lua_pushcfunction(L, served_exports);
    lua_setfield(L, module_index, "exports");
}
