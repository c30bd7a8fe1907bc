/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bh.plugins() and the bh.plugin table: what the loader found, refused
 * files included, and loading a plugin by path.
 */
#include <errno.h>

#include "bh-lua.h"

static void plugin_push_record(lua_State *L, const BhPluginRecord *rec)
{
    lua_createtable(L, 0, 8);
    if (rec->name) {
        lua_pushstring(L, rec->name);
        lua_setfield(L, -2, "name");
    }
    if (rec->kind == BH_PLUGIN_DRIVER || rec->kind == BH_PLUGIN_FRONTEND) {
        lua_pushstring(L, rec->kind == BH_PLUGIN_DRIVER ? "driver" : "frontend");
        lua_setfield(L, -2, "kind");
    }
    if (rec->version) {
        lua_pushstring(L, rec->version);
        lua_setfield(L, -2, "version");
    }
    if (rec->path) {
        lua_pushstring(L, rec->path);
        lua_setfield(L, -2, "path");
    }
    if (rec->description) {
        lua_pushstring(L, rec->description);
        lua_setfield(L, -2, "description");
    }
    if (rec->abi_version) {
        lua_pushinteger(L, rec->abi_version);
        lua_setfield(L, -2, "abi");
    }
    /* compress: the driver takes compressed writes (convert -c asks
     * before it creates anything). */
    if (!rec->error && rec->kind == BH_PLUGIN_DRIVER && rec->desc.driver) {
        lua_pushboolean(L, (rec->desc.driver->request_flags &
                            BH_IO_COMPRESSED) != 0);
        lua_setfield(L, -2, "compress");
    }
    if (!rec->error) {
        lua_pushstring(L, rec->thread_model == BH_THREAD_PARALLEL ? "parallel"
                                                                  : "serialize");
        lua_setfield(L, -2, "thread_model");
    } else {
        lua_pushstring(L, rec->error);
        lua_setfield(L, -2, "error");
    }
}

/* bh.plugins() -> list of records, in the loader's order. */
static int plugin_list(lua_State *L)
{
    bh_plugins_scan();
    size_t n = bh_plugin_count();
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        const BhPluginRecord *rec = bh_plugin_get(i);
        if (!rec)
            continue;
        plugin_push_record(L, rec);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* bh.plugin.load(path) -> record, or a Lua error saying why it was
 * refused. */
static int plugin_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    BhError *err = NULL;
    const BhPluginRecord *rec = g_str_has_suffix(path, ".lua")
        ? bh_lua_driver_load_file(path, &err) : bh_plugin_load(path, &err);
    if (!rec || err || rec->error) {
        if (!err)
            err = bh_error_new(EINVAL, "%s: %s", path,
                              rec && rec->error ? rec->error : "refused");
        return bh_lua_error(L, err);
    }
    plugin_push_record(L, rec);
    return 1;
}

/* bh.plugin.search_path() -> list of directories, in search order. */
static int plugin_search_path(lua_State *L)
{
    char **dirs = bh_plugin_search_path();
    lua_newtable(L);
    for (int i = 0; dirs && dirs[i]; i++) {
        lua_pushstring(L, dirs[i]);
        lua_rawseti(L, -2, i + 1);
    }
    g_strfreev(dirs);
    return 1;
}

static const luaL_Reg plugin_funcs[] = {
    { "load", plugin_load },
    { "list", plugin_list },
    { "search_path", plugin_search_path },
    { NULL, NULL },
};

void bh_lua_plugin_register(lua_State *L, int module_index)
{
    lua_pushcfunction(L, plugin_list);
    lua_setfield(L, module_index, "plugins");
    luaL_newlib(L, plugin_funcs);
    lua_setfield(L, module_index, "plugin");
}
