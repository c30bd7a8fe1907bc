/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers every binding file uses: turning GErrors into Lua errors, Lua
 * option tables into BhOpts, BhInfo into tables, checking offsets and
 * lengths that come from scripts, and printing sizes the way qemu-img does.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bh-lua.h"

int bh_lua_error(lua_State *L, BhError *err)
{
    /* Copy the message onto the Lua stack first: lua_error never returns,
     * so err must be freed before it. */
    if (err) {
        lua_pushstring(L, bh_error_message(err));
        bh_error_free(err);
    } else {
        lua_pushliteral(L, "unknown error");
    }
    return lua_error(L);
}

uint64_t bh_lua_check_u64(lua_State *L, int idx, const char *what)
{
    int isnum = 0;
    lua_Integer v = 0;

    if (lua_type(L, idx) == LUA_TNUMBER) {
        v = lua_tointegerx(L, idx, &isnum);
        if (!isnum) {
            const char *msg = lua_pushfstring(
                L, "%s must be an integer, got %f", what, lua_tonumber(L, idx));
            luaL_argerror(L, idx, msg);
        }
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        /* Lua converts numeric strings itself elsewhere; be as strict as
         * luaL_checkinteger but with a message that names the argument. */
        v = lua_tointegerx(L, idx, &isnum);
    }
    if (!isnum) {
        const char *msg = lua_pushfstring(L, "%s must be a non-negative integer, got %s",
                                          what, luaL_typename(L, idx));
        luaL_argerror(L, idx, msg);
    }
    if (v < 0) {
        const char *msg = lua_pushfstring(
            L, "%s must be a non-negative integer, got %I", what, (LUAI_UACINT)v);
        luaL_argerror(L, idx, msg);
    }
    return (uint64_t)v;
}

bool bh_lua_opt_flag(lua_State *L, int idx, const char *field, bool def)
{
    if (lua_isnoneornil(L, idx))
        return def;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, field);
    bool r = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
}

char *bh_lua_human_size(uint64_t bytes)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB",
                                         "PiB", "EiB" };
    double v = (double)bytes;
    int u = 0;

    /* Switch unit once the number would need four digits, so 1000 bytes
     * prints as "0.977 KiB" like qemu-img rather than "1e+03 B". */
    while (v >= 1000.0 && u < 6) {
        v /= 1024.0;
        u++;
    }
    return g_strdup_printf("%.3g %s", v, units[u]);
}

/* ---- Lua table -> BhOpts ---- */

static int opts_key_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool opts_value_string(lua_State *L, int idx, const char *key,
                              char **out, BhError **errp)
{
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        *out = g_strdup(lua_toboolean(L, idx) ? "on" : "off");
        return true;
    case LUA_TSTRING:
        *out = g_strdup(lua_tostring(L, idx));
        return true;
    case LUA_TNUMBER: {
        int isint = 0;
        lua_Integer i = lua_tointegerx(L, idx, &isint);
        if (!isint) {
            bh_error_set(errp, EINVAL,
                         "option '%s' must be an integer, not %.14g", key,
                         (double)lua_tonumber(L, idx));
            return false;
        }
        *out = g_strdup_printf("%" PRId64, (int64_t)i);
        return true;
    }
    default:
        bh_error_set(errp, EINVAL,
                     "option '%s' must be a string, number or boolean, not a %s",
                     key, luaL_typename(L, idx));
        return false;
    }
}

static bool opts_add_table(lua_State *L, int idx, const char *prefix,
                           BhOpts *opts, int depth, BhError **errp);

/* One key of the table at idx, whose value is on top of the stack. */
static bool opts_add_value(lua_State *L, const char *key, BhOpts *opts,
                           int depth, BhError **errp)
{
    int v = lua_gettop(L);

    if (lua_type(L, v) != LUA_TTABLE) {
        char *s = NULL;
        if (!opts_value_string(L, v, key, &s, errp))
            return false;
        bh_opts_add(opts, key, s);
        g_free(s);
        return true;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, v);
    if (n > 0) {
        /* An array: the key repeats, in array order. */
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, v, i);
            char *s = NULL;
            bool ok = lua_type(L, -1) != LUA_TTABLE &&
                      opts_value_string(L, -1, key, &s, errp);
            if (!ok && lua_type(L, -1) == LUA_TTABLE)
                bh_error_set(errp, EINVAL,
                             "option '%s': an array may hold only strings, "
                             "numbers and booleans", key);
            lua_pop(L, 1);
            if (!ok)
                return false;
            bh_opts_add(opts, key, s);
            g_free(s);
        }
        return true;
    }
    if (depth >= 8) {
        bh_error_set(errp, EINVAL, "option '%s' is nested too deeply", key);
        return false;
    }
    char *sub = g_strconcat(key, ".", NULL);
    bool ok = opts_add_table(L, v, sub, opts, depth + 1, errp);
    g_free(sub);
    return ok;
}

static bool opts_add_table(lua_State *L, int idx, const char *prefix,
                           BhOpts *opts, int depth, BhError **errp)
{
    GPtrArray *keys = g_ptr_array_new_with_free_func(g_free);
    bool ok = true;

    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            /* Numbers are never coerced here: lua_tostring would change
             * the key in place and break lua_next. */
            if (ok)
                bh_error_set(errp, EINVAL,
                             "option names must be strings, got a %s key%s%s",
                             luaL_typename(L, -1), *prefix ? " in " : "",
                             prefix);
            ok = false;
            continue;
        }
        g_ptr_array_add(keys, g_strdup(lua_tostring(L, -1)));
    }
    if (ok) {
        /* Sorted so that the option order, and hence the first unknown
         * key reported, does not depend on hash order. */
        g_ptr_array_sort(keys, opts_key_cmp);   /* qsort(NULL, 0) is UB */
        for (guint i = 0; ok && i < keys->len; i++) {
            char *full = g_strconcat(prefix, keys->pdata[i], NULL);
            lua_getfield(L, idx, keys->pdata[i]);
            ok = opts_add_value(L, full, opts, depth, errp);
            lua_pop(L, 1);
            g_free(full);
        }
    }
    g_ptr_array_free(keys, TRUE);
    return ok;
}

BhOpts *bh_lua_opts_from_table(lua_State *L, int idx, BhError **errp)
{
    BhOpts *opts = bh_opts_new();

    if (lua_isnoneornil(L, idx))
        return opts;
    if (lua_type(L, idx) != LUA_TTABLE) {
        bh_error_set(errp, EINVAL, "options must be a table, not a %s",
                     luaL_typename(L, idx));
        bh_opts_free(opts);
        return NULL;
    }
    if (!opts_add_table(L, idx, "", opts, 0, errp)) {
        bh_opts_free(opts);
        return NULL;
    }
    return opts;
}

void bh_lua_push_info(lua_State *L, const BhInfo *info)
{
    size_t n = info ? bh_info_count(info) : 0;

    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        const BhInfoItem *it = bh_info_item(info, i);
        switch (it->type) {
        case BH_INFO_INT:
            lua_pushinteger(L, (lua_Integer)it->i);
            break;
        case BH_INFO_BOOL:
            lua_pushboolean(L, it->b);
            break;
        default:
            if (it->s)
                lua_pushstring(L, it->s);
            else
                lua_pushnil(L);
            break;
        }
        lua_setfield(L, -2, it->key);
    }
}

void bh_lua_subtable(lua_State *L, int index, const char *name)
{
    index = lua_absindex(L, index);
    lua_getfield(L, index, name);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, index, name);
    }
}
