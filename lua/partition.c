/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Partition methods on nodes (core/partition.c does the reading):
 *
 *   node:partitions([{sector_size=N}]) -> list, table
 *     list: {number=, scheme=, type=, type_name=, uuid=, label=, offset=,
 *            size=, bootable=, attributes=, logical=} sorted by number;
 *     table: {scheme=, sector_size=, id=, backup_used=}
 *   node:partition(n [, {readonly=, sector_size=}])
 *   node:partition{number=, label=, uuid=, type=, type_name=, readonly=,
 *                  sector_size=}
 *     -> a window node over that partition.  Every selector given must
 *     match; none or several matching is an error listing the partitions.
 *     readonly defaults to the disk's own mode.
 */
#include <errno.h>
#include <string.h>

#include "bh-lua.h"

/* Optional integer field of the table at idx. */
static uint32_t partition_opt_sector_size(lua_State *L, int idx)
{
    uint32_t ss = 0;
    if (lua_isnoneornil(L, idx))
        return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "sector_size");
    if (!lua_isnil(L, -1)) {
        int top = lua_gettop(L);
        uint64_t v = bh_lua_check_u64(L, top, "sector_size");
        if (v > UINT32_MAX)
            luaL_error(L, "sector_size %I is too large", (lua_Integer)v);
        ss = (uint32_t)v;
    }
    lua_pop(L, 1);
    return ss;
}

static void partition_check_keys(lua_State *L, int idx,
                                 const char *const *allowed)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        bool ok = false;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; allowed[i] && !ok; i++)
                ok = strcmp(lua_tostring(L, -1), allowed[i]) == 0;
        if (!ok) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int i = 0; allowed[i]; i++) {
                if (i)
                    luaL_addstring(&b, ", ");
                luaL_addstring(&b, allowed[i]);
            }
            luaL_pushresult(&b);
            luaL_error(L, "unknown partition option '%s' (expected one of: %s)",
                       lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                      : luaL_typename(L, -2),
                       lua_tostring(L, -1));
        }
    }
}

static void partition_push(lua_State *L, const BhPartition *p)
{
    lua_createtable(L, 0, 11);
    lua_pushinteger(L, p->number);
    lua_setfield(L, -2, "number");
    lua_pushstring(L, p->scheme);
    lua_setfield(L, -2, "scheme");
    lua_pushstring(L, p->type);
    lua_setfield(L, -2, "type");
    if (p->type_name) {
        lua_pushstring(L, p->type_name);
        lua_setfield(L, -2, "type_name");
    }
    if (p->uuid) {
        lua_pushstring(L, p->uuid);
        lua_setfield(L, -2, "uuid");
    }
    if (p->label) {
        lua_pushstring(L, p->label);
        lua_setfield(L, -2, "label");
    }
    lua_pushinteger(L, (lua_Integer)p->offset);
    lua_setfield(L, -2, "offset");
    lua_pushinteger(L, (lua_Integer)p->size);
    lua_setfield(L, -2, "size");
    lua_pushboolean(L, p->bootable);
    lua_setfield(L, -2, "bootable");
    lua_pushinteger(L, (lua_Integer)p->attributes);
    lua_setfield(L, -2, "attributes");
    lua_pushboolean(L, p->logical);
    lua_setfield(L, -2, "logical");
}

/* node:partitions([{sector_size=}]) -> list, table */
static int partition_list(lua_State *L)
{
    static const char *const allowed[] = { "sector_size", NULL };
    BhNode *bs = bh_lua_checknode(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        partition_check_keys(L, 2, allowed);
    }
    uint32_t ss = partition_opt_sector_size(L, 2);
    BhError *err = NULL;

    BhPartitionTable *t = bh_partition_table_read(bs, ss, &err);
    if (!t)
        return bh_lua_error(L, err);
    lua_createtable(L, (int)t->partitions->len, 0);
    for (guint i = 0; i < t->partitions->len; i++) {
        partition_push(L, t->partitions->pdata[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_createtable(L, 0, 4);
    lua_pushstring(L, t->scheme);
    lua_setfield(L, -2, "scheme");
    lua_pushinteger(L, t->sector_size);
    lua_setfield(L, -2, "sector_size");
    lua_pushstring(L, t->id);
    lua_setfield(L, -2, "id");
    lua_pushboolean(L, t->backup_used);
    lua_setfield(L, -2, "backup_used");
    bh_partition_table_free(t);
    return 2;
}

/* A string selector from the table at idx, or NULL.  The string stays
 * valid while the table is on the stack. */
static const char *partition_opt_string(lua_State *L, int idx,
                                        const char *field)
{
    lua_getfield(L, idx, field);
    const char *s = NULL;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "partition %s must be a string, not a %s", field,
                       luaL_typename(L, -1));
        s = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    return s;
}

/* node:partition(n [, opts]) or node:partition{selectors and opts} */
static int partition_open(lua_State *L)
{
    static const char *const by_number[] = { "readonly", "sector_size", NULL };
    static const char *const by_table[] = { "number", "label", "uuid", "type",
                                            "type_name", "readonly",
                                            "sector_size", NULL };
    BhNode *bs = bh_lua_checknode(L, 1);
    BhPartitionMatch m = { 0 };
    int opt_idx;

    if (lua_type(L, 2) == LUA_TNUMBER) {
        uint64_t n = bh_lua_check_u64(L, 2, "partition number");
        if (n < 1 || n > INT32_MAX)
            return luaL_argerror(L, 2, "partition numbers start at 1");
        m.number = (int)n;
        opt_idx = 3;
        if (!lua_isnoneornil(L, 3)) {
            luaL_checktype(L, 3, LUA_TTABLE);
            partition_check_keys(L, 3, by_number);
        }
    } else if (lua_type(L, 2) == LUA_TTABLE) {
        partition_check_keys(L, 2, by_table);
        opt_idx = 2;
        lua_getfield(L, 2, "number");
        if (!lua_isnil(L, -1)) {
            uint64_t n = bh_lua_check_u64(L, lua_gettop(L), "number");
            if (n < 1 || n > INT32_MAX)
                return luaL_error(L, "partition numbers start at 1");
            m.number = (int)n;
        }
        lua_pop(L, 1);
        m.label = partition_opt_string(L, 2, "label");
        m.uuid = partition_opt_string(L, 2, "uuid");
        m.type = partition_opt_string(L, 2, "type");
        m.type_name = partition_opt_string(L, 2, "type_name");
        if (!m.number && !m.label && !m.uuid && !m.type && !m.type_name)
            return luaL_argerror(L, 2, "say which partition: number, label, "
                                 "uuid, type or type_name");
    } else {
        return luaL_argerror(L, 2, "expected a partition number or a table "
                             "{label=, uuid=, type_name=, ...}");
    }
    bool readonly = bh_lua_opt_flag(L, opt_idx, "readonly",
                                    bh_node_is_readonly(bs));
    uint32_t ss = partition_opt_sector_size(L, opt_idx);

    BhError *err = NULL;
    GPtrArray *parts = bh_partitions_read(bs, ss, &err);
    if (!parts)
        return bh_lua_error(L, err);
    const BhPartition *p = bh_partitions_find(parts, &m, &err);
    BhNode *win = p ? bh_partition_open(bs, p, readonly, &err) : NULL;
    g_ptr_array_unref(parts);
    if (!win)
        return bh_lua_error(L, err);
    bh_lua_pushnode(L, win);
    return 1;
}

static const luaL_Reg partition_methods[] = {
    { "partitions", partition_list },
    { "partition", partition_open },
    { NULL, NULL },
};

void bh_lua_open_partition(lua_State *L, int module_index)
{
    bh_lua_node_methods(L);
    luaL_setfuncs(L, partition_methods, 0);
    lua_pop(L, 1);
}
