/*
 * SPDX-License-Identifier: BSD-3-Clause
 *
 * bh.fuse: the Lua face of the fuse frontend plugin.
 *
 *   local exp <close> = bh.fuse.export(node, "/tmp/disk.raw",
 *                                      {readonly=false, allow_other=false})
 *   bh.loop()                  -- serve until SIGINT/SIGTERM
 *   exp:stop()                 -- unmount (also on close and collection)
 *
 * The mount point is an existing regular file (covered by the export,
 * as with qemu-storage-daemon) or a directory (the export appears in it
 * as one file, called name=, default "disk"; exp:uri() gives its path).
 * threads= sets the request threads of a parallel node.  The handle is
 * a frontend handle (frontend.c): stop, status, uri, close.
 */
#include <string.h>

#include "bh-lua.h"

static const char *const fuse_lua_options[] = {
    "readonly", "allow_other", "name", "threads", NULL
};

/* bh.fuse.export(node, mountpoint [, opts]) -> handle, mounted */
static int fuse_lua_export(lua_State *L)
{
    bh_lua_checknode(L, 1);
    const char *mountpoint = luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);

    /* Everything but readonly (the export's) goes to the frontend. */
    lua_newtable(L);                                          /* 4 */
    lua_pushstring(L, mountpoint);
    lua_setfield(L, 4, "mountpoint");
    if (!lua_isnil(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            const char *k = lua_type(L, -2) == LUA_TSTRING
                ? lua_tostring(L, -2) : NULL;
            bool known = false;
            for (int i = 0; k && fuse_lua_options[i]; i++)
                known |= strcmp(k, fuse_lua_options[i]) == 0;
            if (!known)
                return luaL_error(L, "bh.fuse.export: unknown option '%s' "
                                  "(expected readonly, allow_other, name, "
                                  "threads)", k ? k : "?");
            if (strcmp(k, "readonly") == 0) {
                lua_pop(L, 1);
                continue;
            }
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, 4);
        }
    }
    bh_lua_frontend_push(L, "fuse", 4, "blkhost.fuse", false); /* 5 */

    lua_getfield(L, 5, "export");
    lua_pushvalue(L, 5);
    lua_pushvalue(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushboolean(L, bh_lua_opt_flag(L, 3, "readonly", false));
    lua_setfield(L, -2, "readonly");
    lua_call(L, 3, 0);

    lua_getfield(L, 5, "start");
    lua_pushvalue(L, 5);
    lua_call(L, 1, 0);
    lua_settop(L, 5);
    return 1;
}

void bh_lua_open_fuse(lua_State *L, int module_index)
{
    bh_lua_subtable(L, module_index, "fuse");
    lua_pushcfunction(L, fuse_lua_export);
    lua_setfield(L, -2, "export");
    lua_pop(L, 1);
}
