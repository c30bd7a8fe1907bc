/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Filters from Lua (docs/filters.md):
 *
 *   local f = bh.filter("error", node, {rate=0.01, error="EIO"})
 *   local disk = bh.open("disk.qcow2", {filters = {{"log", file="io.log"},
 *                                                  {"delay", rdelay="5ms"}}})
 *
 * bh.filter opens a filter over any node (bh_node_open_filter); filters=
 * in bh.open stacks them over the image's top node, the first one
 * innermost.  bh.open is wrapped here: without filters= it is the
 * module's own open, untouched.
 */
#include <string.h>

#include "bh-lua.h"

/* Filter name over child with the options table at opts_idx (none or
 * nil: no options): the new node, or NULL with *errp set. */
static BhNode *filter_new(lua_State *L, BhNode *child, const char *name,
                          int opts_idx, BhError **errp)
{
    BhOpts *opts = bh_lua_opts_from_table(L, opts_idx, errp);
    if (!opts)
        return NULL;
    BhNode *bs = bh_node_open_filter(child, name, opts, errp);
    bh_opts_free(opts);
    return bs;
}

/* A copy of the table at idx without its array part: a filter spec's
 * options. */
static int filter_spec_opts(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -4);
        } else {
            lua_pop(L, 1);
        }
    }
    return lua_gettop(L);
}

/* bh.filter(name, node [, opts]) -> node */
static int filter_open(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    BhNode *child = bh_lua_checknode(L, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    BhError *err = NULL;
    BhNode *bs = filter_new(L, child, name, 3, &err);
    if (!bs)
        return bh_lua_error(L, err);
    bh_lua_pushnode(L, bs);
    return 1;
}

/* bh.open(path, opts) with opts.filters: the module's open on opts
 * without filters, then each filter over the last. */
static int filter_module_open(lua_State *L)
{
    lua_settop(L, 2);
    if (!lua_istable(L, 2) ||
        lua_getfield(L, 2, "filters") == LUA_TNIL) {
        lua_settop(L, 2);
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_insert(L, 1);
        lua_call(L, 2, 1);
        return 1;
    }
    luaL_argcheck(L, lua_istable(L, 3), 2, "filters must be a list of "
                  "{\"name\", key=value, ...} tables");
    /* 4: opts without filters */
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) == LUA_TSTRING &&
            !strcmp(lua_tostring(L, -2), "filters")) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, 4);
    }
    /* 5: the image node */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 4);
    lua_call(L, 2, 1);
    lua_Integer n = luaL_len(L, 3);
    for (lua_Integer i = 1; i <= n; i++) {
        int top = lua_gettop(L);   /* the node so far */
        if (lua_geti(L, 3, i) != LUA_TTABLE ||
            lua_geti(L, -1, 1) != LUA_TSTRING) {
            /* Close what was opened before raising. */
            lua_getfield(L, top, "close");
            lua_pushvalue(L, top);
            lua_call(L, 1, 0);
            return luaL_error(L, "filters[%d] must be {\"name\", key=value, "
                              "...}", (int)i);
        }
        const char *name = lua_tostring(L, -1);
        int opts = filter_spec_opts(L, top + 1);
        BhNode *child = bh_lua_checknode(L, top);
        BhError *err = NULL;
        BhNode *bs = filter_new(L, child, name, opts, &err);
        /* The filter holds the child now; on error the nodes below are
         * closed here, not left to the garbage collector. */
        lua_getfield(L, top, "close");
        lua_pushvalue(L, top);
        lua_call(L, 1, 0);
        if (!bs)
            return bh_lua_error(L, err);
        lua_settop(L, top - 1);
        bh_lua_pushnode(L, bs);
    }
    return 1;
}

void bh_lua_open_filter(lua_State *L, int module_index)
{
    lua_pushcfunction(L, filter_open);
    lua_setfield(L, module_index, "filter");
    lua_getfield(L, module_index, "open");
    lua_pushcclosure(L, filter_module_open, 1);
    lua_setfield(L, module_index, "open");
}
