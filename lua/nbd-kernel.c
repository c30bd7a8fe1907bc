/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bh.nbd.connect / disconnect / devices / list: the Lua face of the
 * nbd-kernel frontend (attaching exports and NBD servers to /dev/nbdN).
 *
 *   local dev = bh.nbd.connect{device="/dev/nbd0", export=img}
 *   local dev = bh.nbd.connect{device="/dev/nbd1",
 *                              uri="nbd+unix:///?socket=/tmp/s",
 *                              connections=2, persist=true}
 *   dev:status()                 -- {device=, connected=, size=, pid=, ...}
 *   dev:disconnect()
 *   bh.nbd.disconnect("/dev/nbd0")
 *   bh.nbd.devices()             -- {{device=, connected=, size=, pid=,
 *                                --   backend=}, ...}
 *   bh.nbd.list("nbd://host/")   -- {{name=, description=, size=, flags=,
 *                                --   readonly=, multi_conn=, ...,
 *                                --   meta_contexts="one\nper line"}, ...}
 *
 * A connected device outlives its Lua handle: __gc and __close do not
 * disconnect, because the kernel keeps using the device (and an
 * in-process export keeps being served by this process's threads) until
 * someone disconnects it.  The frontend instances are kept in a list here
 * for the life of the process; dev:disconnect() or bh.nbd.disconnect()
 * ends one.  The module-level calls are the plugin's control commands
 * (bh_frontend_control), the frontend ABI's one way in.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bh-lua.h"

#define NBD_DEVICE_MT "blkhost.nbd.device"

/* A device this process connected, until it is disconnected. */
typedef struct LiveDevice {
    uint64_t id;
    BhFrontendHandle *h;
    char *device;        /* as given */
    char *real;          /* realpath, to match other spellings */
} LiveDevice;

static GPtrArray *live_devices;   /* LiveDevice *, main thread only */
static uint64_t live_next_id = 1;

typedef struct {
    uint64_t live;       /* LiveDevice id; 0 once disconnected here */
    char *device;
} LuaNbdDevice;

/* Run an nbd-kernel control command; raises the Lua error on failure. */
static BhInfoList *nbd_control(lua_State *L, const char *command,
                               const char *key, const char *value)
{
    BhOpts *args = bh_opts_new();
    if (key)
        bh_opts_set(args, key, value);
    BhInfoList *reply = NULL;
    BhError *err = NULL;
    int r = bh_frontend_control("nbd-kernel", command, args, &reply, &err);
    bh_opts_free(args);
    if (r < 0)
        bh_lua_error(L, err);  /* does not return */
    return reply;
}

static char *real_device(const char *device)
{
    char *r = realpath(device, NULL);
    char *out = g_strdup(r ? r : device);
    free(r);
    return out;
}

static LiveDevice *live_find(const char *device)
{
    g_autofree char *real = real_device(device);
    for (guint i = 0; live_devices && i < live_devices->len; i++) {
        LiveDevice *d = g_ptr_array_index(live_devices, i);
        if (strcmp(d->real, real) == 0 || strcmp(d->device, device) == 0)
            return d;
    }
    return NULL;
}

/* Stop (disconnecting if the device is still ours) and forget d. */
static bool live_end(LiveDevice *d)
{
    BhInfo *info = bh_info_new();
    bh_frontend_status(d->h, info);
    const BhInfoItem *c = bh_info_find(info, "connected");
    bool was_connected = c && c->b;
    bh_info_free(info);
    g_ptr_array_remove(live_devices, d);
    bh_frontend_free(d->h);
    g_free(d->device);
    g_free(d->real);
    g_free(d);
    return was_connected;
}

static LuaNbdDevice *device_ud(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, NBD_DEVICE_MT);
}

/* Handles name their device by id: it may have been ended meanwhile. */
static LiveDevice *live_by_id(uint64_t id)
{
    for (guint i = 0; id && live_devices && i < live_devices->len; i++) {
        LiveDevice *d = g_ptr_array_index(live_devices, i);
        if (d->id == id)
            return d;
    }
    return NULL;
}

/* bh.nbd.connect{device=, export= | uri=, ...} -> device handle */
static int nbd_connect(lua_State *L)
{
    BhError *err = NULL;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);

    lua_getfield(L, 1, "device");
    if (lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "bh.nbd.connect: device must be a string such "
                          "as \"/dev/nbd0\", not a %s", luaL_typename(L, -1));
    const char *device = lua_tostring(L, -1);                 /* 2 */
    lua_getfield(L, 1, "export");                             /* 3 */
    if (!lua_isnil(L, 3) && !luaL_testudata(L, 3, BH_LUA_NODE_MT))
        return luaL_error(L, "bh.nbd.connect: export must be a node (from "
                          "bh.open), not a %s", luaL_typename(L, 3));
    BhNode *node = lua_isnil(L, 3) ? NULL : bh_lua_checknode(L, 3);
    lua_getfield(L, 1, "uri");                                /* 4 */
    if (!lua_isnil(L, 4) && lua_type(L, 4) != LUA_TSTRING)
        return luaL_error(L, "bh.nbd.connect: uri must be a string, not a "
                          "%s", luaL_typename(L, 4));
    if (!node == lua_isnil(L, 4))
        return luaL_error(L, "bh.nbd.connect: give exactly one of export "
                          "(a node) and uri (an NBD URI)");

    /* Everything but the export goes to the frontend as options. */
    lua_newtable(L);                                          /* 5 */
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        if (lua_type(L, -2) == LUA_TSTRING &&
            strcmp(lua_tostring(L, -2), "export") == 0) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, 5);
    }
    BhOpts *opts = bh_lua_opts_from_table(L, 5, &err);
    if (!opts)
        return bh_lua_error(L, err);
    BhFrontendHandle *h = bh_frontend_new("nbd-kernel", opts, &err);
    bh_opts_free(opts);
    if (!h)
        return bh_lua_error(L, err);
    if (node && bh_frontend_add_export(h, bh_export_new(node, "", NULL,
                                                        false), &err) < 0) {
        bh_frontend_free(h);
        return bh_lua_error(L, err);
    }
    if (bh_frontend_start(h, &err) < 0) {
        bh_frontend_free(h);
        return bh_lua_error(L, err);
    }

    LiveDevice *d = g_new0(LiveDevice, 1);
    d->id = live_next_id++;
    d->h = h;
    d->device = g_strdup(device);
    d->real = real_device(device);
    if (!live_devices)
        live_devices = g_ptr_array_new();
    g_ptr_array_add(live_devices, d);

    LuaNbdDevice *ud = lua_newuserdatauv(L, sizeof(*ud), 0);
    ud->live = d->id;
    ud->device = g_strdup(device);
    luaL_setmetatable(L, NBD_DEVICE_MT);
    return 1;
}

/* dev:disconnect() */
static int device_disconnect(lua_State *L)
{
    LuaNbdDevice *ud = device_ud(L, 1);
    LiveDevice *d = live_by_id(ud->live);
    ud->live = 0;
    if (!d)
        return luaL_error(L, "%s is not connected (already disconnected "
                          "through this handle or bh.nbd.disconnect)",
                          ud->device);
    if (!live_end(d))
        return luaL_error(L, "%s is not connected: it was disconnected "
                          "from outside", ud->device);
    return 0;
}

/* dev:status() -> table */
static int device_status(lua_State *L)
{
    LuaNbdDevice *ud = device_ud(L, 1);
    BhInfo *info = bh_info_new();
    LiveDevice *d = live_by_id(ud->live);
    if (d) {
        bh_frontend_status(d->h, info);
    } else {
        bh_info_add_str(info, "device", ud->device);
        bh_info_add_bool(info, "connected", false);
    }
    bh_lua_push_info(L, info);
    bh_info_free(info);
    return 1;
}

static int device_device(lua_State *L)
{
    lua_pushstring(L, device_ud(L, 1)->device);
    return 1;
}

/* Dropping the handle leaves the device attached (see the top). */
static int device_gc(lua_State *L)
{
    LuaNbdDevice *ud = device_ud(L, 1);
    g_clear_pointer(&ud->device, g_free);
    ud->live = 0;
    return 0;
}

static int device_close(lua_State *L)
{
    return 0;
}

static int device_tostring(lua_State *L)
{
    LuaNbdDevice *ud = device_ud(L, 1);
    lua_pushfstring(L, "blkhost.nbd.device(%s%s)",
                    ud->device ? ud->device : "?",
                    live_by_id(ud->live) ? "" : ", disconnected");
    return 1;
}

/* bh.nbd.disconnect(device) */
static int nbd_disconnect(lua_State *L)
{
    const char *device = luaL_checkstring(L, 1);
    LiveDevice *d = live_find(device);
    if (d) {
        if (!live_end(d))
            return luaL_error(L, "%s is not connected", device);
        return 0;
    }
    bh_info_list_free(nbd_control(L, "disconnect", "device", device));
    return 0;
}

/* Push the records as a Lua array and free them. */
static void push_info_list(lua_State *L, BhInfoList *items)
{
    size_t n = bh_info_list_count(items);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        bh_lua_push_info(L, bh_info_list_get(items, i));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    bh_info_list_free(items);
}

/* bh.nbd.devices() -> {{device=, connected=, size=, pid=, backend=}} */
static int nbd_devices(lua_State *L)
{
    push_info_list(L, nbd_control(L, "devices", NULL, NULL));
    return 1;
}

/* bh.nbd.list(uri) -> {{name=, description=, size=, flags=, ...}} */
static int nbd_list(lua_State *L)
{
    const char *uri = luaL_checkstring(L, 1);
    push_info_list(L, nbd_control(L, "list", "uri", uri));
    return 1;
}

static const luaL_Reg device_methods[] = {
    { "disconnect", device_disconnect },
    { "status", device_status },
    { "device", device_device },
    { NULL, NULL },
};

static const luaL_Reg device_meta[] = {
    { "__gc", device_gc },
    { "__close", device_close },
    { "__tostring", device_tostring },
    { NULL, NULL },
};

static const luaL_Reg nbd_functions[] = {
    { "connect", nbd_connect },
    { "disconnect", nbd_disconnect },
    { "devices", nbd_devices },
    { "list", nbd_list },
    { NULL, NULL },
};

void bh_lua_open_nbd_kernel(lua_State *L, int module_index)
{
    module_index = lua_absindex(L, module_index);
    if (luaL_newmetatable(L, NBD_DEVICE_MT)) {
        luaL_setfuncs(L, device_meta, 0);
        luaL_newlib(L, device_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    bh_lua_subtable(L, module_index, "nbd");
    luaL_setfuncs(L, nbd_functions, 0);
    lua_pop(L, 1);
}
