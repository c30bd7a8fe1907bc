/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * luaopen_blkhost: the "blkhost" module table.  Opening and creating
 * images live here; plugins, frontends and the main loop register their
 * parts from their own files through the one table below, lua_parts.
 */
#include <errno.h>
#include <string.h>

#include <lualib.h>

#include "bh-lua.h"

/* bh.open(path, opts) -> node.  path may be nil or "" for drivers that
 * need no file (null, memory). */
static int module_open(lua_State *L)
{
    const char *path = luaL_optstring(L, 1, NULL);
    BhError *err = NULL;

    if (path && !*path)
        path = NULL;
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    BhOpts *opts = bh_lua_opts_from_table(L, 2, &err);
    if (!opts)
        return bh_lua_error(L, err);
    BhNode *bs = bh_node_open(path, opts, &err);
    bh_opts_free(opts);
    if (!bs)
        return bh_lua_error(L, err);
    bh_lua_pushnode(L, bs);
    return 1;
}

/* bh.create(path, {format=, size=, ...}); format defaults to raw, as in
 * qemu-img create.  bh.create_check(path, {...}) runs only its checks:
 * it raises what bh.create would refuse, and touches nothing. */
static int module_create_common(lua_State *L, bool check_only)
{
    const char *path = luaL_optstring(L, 1, NULL);
    BhError *err = NULL;

    if (path && !*path)
        path = NULL;
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    BhOpts *opts = bh_lua_opts_from_table(L, 2, &err);
    if (!opts)
        return bh_lua_error(L, err);
    char *format = g_strdup(bh_opts_get(opts, "format"));
    bh_opts_remove(opts, "format");
    bool ok = check_only
        ? bh_create_check(path, format ? format : "raw", opts, &err)
        : bh_create(path, format ? format : "raw", opts, &err);
    bh_opts_free(opts);
    g_free(format);
    if (!ok)
        return bh_lua_error(L, err);
    return 0;
}

static int module_create(lua_State *L) { return module_create_common(L, false); }
static int module_create_check(lua_State *L) { return module_create_common(L, true); }

/* Push a driver's option list as { {name=, type=, help=}, ... }; with
 * listed_only, without the entries that have no help (amend_options'
 * creation-only names). */
static void module_push_options(lua_State *L, const BhCreateOption *list,
                                bool listed_only)
{
    int n = 0;

    lua_newtable(L);
    for (int i = 0; list && list[i].name; i++) {
        const BhCreateOption *o = &list[i];
        if (listed_only && !o->help)
            continue;
        lua_createtable(L, 0, 3);
        lua_pushstring(L, o->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, o->type ? o->type : "str");
        lua_setfield(L, -2, "type");
        lua_pushstring(L, o->help ? o->help : "");
        lua_setfield(L, -2, "help");
        lua_rawseti(L, -2, ++n);
    }
}

static const BhDriver *module_find_format(lua_State *L, const char *format)
{
    const BhPluginRecord *rec = bh_plugin_find(format, BH_PLUGIN_DRIVER);
    if (!rec)
        luaL_error(L, "unknown format '%s'", format);
    return rec->desc.driver;
}

/* bh.create_options(format) -> { {name=, type=, help=}, ... }: what
 * `blkhost create -o help` lists.  Formats that create images but list
 * nothing give an empty table. */
static int module_create_options(lua_State *L)
{
    const char *format = luaL_checkstring(L, 1);
    const BhDriver *drv = module_find_format(L, format);
    if (!drv->create)
        return luaL_error(L, "format %s does not support image creation",
                          format);
    module_push_options(L, drv->create_options, false);
    return 1;
}

/* bh.amend_options(format) -> the same for `blkhost amend -o help`, or
 * nil when the format cannot amend. */
static int module_amend_options(lua_State *L)
{
    const BhDriver *drv = module_find_format(L, luaL_checkstring(L, 1));
    if (!drv->amend) {
        lua_pushnil(L);
        return 1;
    }
    module_push_options(L, drv->amend_options, true);
    return 1;
}

/* bh.human_size(bytes) -> "1 GiB" */
static int module_human_size(lua_State *L)
{
    uint64_t n = bh_lua_check_u64(L, 1, "size");
    char *s = bh_lua_human_size(n);
    lua_pushstring(L, s);
    g_free(s);
    return 1;
}

/* bh.parse_size("64M") -> 67108864, with the core's suffix rules. */
static int module_parse_size(lua_State *L)
{
    BhError *err = NULL;
    uint64_t v;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        lua_pushinteger(L, (lua_Integer)bh_lua_check_u64(L, 1, "size"));
        return 1;
    }
    if (!bh_parse_size(luaL_checkstring(L, 1), &v, &err))
        return bh_lua_error(L, err);
    if (v > (uint64_t)INT64_MAX)
        return luaL_error(L, "size %s is too large", lua_tostring(L, 1));
    lua_pushinteger(L, (lua_Integer)v);
    return 1;
}

static const luaL_Reg module_funcs[] = {
    { "open", module_open },
    { "create", module_create },
    { "create_check", module_create_check },
    { "create_options", module_create_options },
    { "amend_options", module_amend_options },
    { "human_size", module_human_size },
    { "parse_size", module_parse_size },
    { NULL, NULL },
};

/* Every binding file that adds to the module, in the order they run (an
 * entry may build on an earlier one: nbd-kernel adds to bh.nbd).  One
 * explicit list, so a missing file fails the link instead of silently
 * dropping a feature. */
static const struct {
    const char *name;
    void (*open)(lua_State *L, int module_index);
} lua_parts[] = {
    { "plugin", bh_lua_plugin_register },
    { "frontend", bh_lua_frontend_register },
    { "loop", bh_lua_loop_register },
    { "window", bh_lua_window_register },
    { "timezone", bh_lua_timezone_register },
    { "nbd", bh_lua_open_nbd },
    { "partition", bh_lua_open_partition },
    { "snapshot", bh_lua_open_snapshot },
    { "nbd-kernel", bh_lua_open_nbd_kernel },
    { "process", bh_lua_open_process },
    { "filter", bh_lua_open_filter },
    { "fuse", bh_lua_open_fuse },
    { "timer", bh_lua_open_timer },
    { "served", bh_lua_open_served },
    { "control", bh_lua_open_control },
    { "driver", bh_lua_open_driver },
    { "copy", bh_lua_open_copy },
    { "bench", bh_lua_open_bench },
};

int luaopen_blkhost(lua_State *L)
{
    bh_lua_node_register(L);

    luaL_newlib(L, module_funcs);
    int idx = lua_gettop(L);
    lua_pushstring(L, bh_version());
    lua_setfield(L, idx, "version");

    for (size_t i = 0; i < G_N_ELEMENTS(lua_parts); i++) {
        lua_parts[i].open(L, idx);
        lua_settop(L, idx);
    }

    lua_settop(L, idx);
    return 1;
}

lua_State *bh_lua_state_new(const char *dir)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return NULL;
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_blkhost);
    lua_setfield(L, -2, "blkhost");
    lua_pop(L, 1);
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s", dir, LUA_PATH_DEFAULT);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    return L;
}
