/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * node:window{offset=, size=, readonly=}: a node showing a byte range of
 * another node, whatever its format (qemu-nbd's --offset over a qcow2
 * image is a raw window over the qcow2 node, never an offset into the
 * qcow2 file).  The core's raw driver does the work, opened over the
 * node with bh_node_open_over(); a window shares its parent's cache
 * mode and locks and keeps the parent alive.
 *
 *   local part = disk:window{offset=1048576}            -- to the end
 *   local hdr  = disk:window{offset=0, size=512, readonly=true}
 *
 * readonly defaults to the parent's mode; a writable window over a
 * read-only node is refused by the core.
 */
#include <string.h>

#include "bh-lua.h"

static int window_open(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    BhError *err = NULL;
    uint64_t offset = 0, size = 0;
    bool has_size = false;

    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                       : NULL;
        lua_pop(L, 1);
        if (!k || (strcmp(k, "offset") && strcmp(k, "size") &&
                   strcmp(k, "readonly")))
            return luaL_error(L, "unknown window option '%s' (expected "
                              "offset, size, readonly)",
                              k ? k : luaL_typename(L, -1));
    }
    lua_getfield(L, 2, "offset");
    if (!lua_isnil(L, -1))
        offset = bh_lua_check_u64(L, lua_gettop(L), "offset");
    lua_getfield(L, 2, "size");
    if (!lua_isnil(L, -1)) {
        size = bh_lua_check_u64(L, lua_gettop(L), "size");
        has_size = true;
    }
    lua_pop(L, 2);
    bool ro = bh_lua_opt_flag(L, 2, "readonly", bh_node_is_readonly(bs));

    int64_t len = bh_node_size(bs);
    if (len >= 0 && offset > (uint64_t)len)
        return luaL_error(L, "window offset %I is past the end of '%s' "
                          "(%I bytes)", (lua_Integer)offset,
                          bh_node_filename(bs), (lua_Integer)len);

    g_autoptr(BhOpts) o = bh_opts_new();
    char num[32];
    g_snprintf(num, sizeof(num), "%" G_GUINT64_FORMAT, offset);
    bh_opts_set(o, "offset", num);
    if (has_size) {
        g_snprintf(num, sizeof(num), "%" G_GUINT64_FORMAT, size);
        bh_opts_set(o, "size", num);
    }
    bh_opts_set(o, "readonly", ro ? "on" : "off");
    BhNode *win = bh_node_open_over(bs, "raw", o, &err);
    g_clear_pointer(&o, bh_opts_free);  /* bh_lua_error's longjmp skips g_autoptr */
    if (!win)
        return bh_lua_error(L, err);
    bh_lua_pushnode(L, win);
    return 1;
}

static const luaL_Reg window_methods[] = {
    { "window", window_open },
    { NULL, NULL },
};

/* Called by luaopen_blkhost. */
void bh_lua_window_register(lua_State *L, int module_index)
{
    bh_lua_node_methods(L);
    luaL_setfuncs(L, window_methods, 0);
    lua_pop(L, 1);
}
