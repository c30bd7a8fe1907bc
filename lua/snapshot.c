/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Lua bindings for internal snapshots: node:snapshots(),
 * node:snapshot_create/apply/delete/open, and the operations over every
 * open image, bh.savevm/loadvm/delvm/snapshots.  bh.vmstate (script state
 * saved with savevm) lives in vmstate.c and is opened from here.
 */
#include <errno.h>
#include <string.h>

#include "bh-lua.h"

/* vmstate.c */
void bh_lua_vmstate_register(lua_State *L, int module_index);

static void push_info(lua_State *L, const BhSnapshotInfo *sn)
{
    lua_createtable(L, 0, 9);
    lua_pushstring(L, sn->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, sn->name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, sn->date_sec);
    lua_setfield(L, -2, "date");
    lua_pushinteger(L, sn->date_nsec);
    lua_setfield(L, -2, "date_nsec");
    lua_pushinteger(L, (lua_Integer)sn->vm_state_size);
    lua_setfield(L, -2, "vm_state_size");
    lua_pushinteger(L, (lua_Integer)sn->vm_clock_nsec);
    lua_setfield(L, -2, "vm_clock_ns");
    lua_pushinteger(L, (lua_Integer)sn->disk_size);
    lua_setfield(L, -2, "disk_size");
    if (sn->icount != BH_SNAPSHOT_NO_ICOUNT) {
        lua_pushinteger(L, (lua_Integer)sn->icount);
        lua_setfield(L, -2, "icount");
    }
}

static int push_list(lua_State *L, GPtrArray *l, BhError **err)
{
    if (!l)
        return bh_lua_error(L, *err);
    lua_createtable(L, (int)l->len, 0);
    for (guint i = 0; i < l->len; i++) {
        push_info(L, l->pdata[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    g_ptr_array_free(l, TRUE);
    return 1;
}

/* node:snapshots() -> { {id=, name=, date=, ...}, ... } */
static int l_snapshots(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    BhError *err = NULL;
    GPtrArray *l = bh_node_snapshot_list(bs, &err);
    return push_list(L, l, &err);
}

static uint64_t opt_u64(lua_State *L, int idx, const char *field,
                        uint64_t def)
{
    uint64_t v = def;
    if (lua_isnoneornil(L, idx))
        return def;
    lua_getfield(L, idx, field);
    if (!lua_isnil(L, -1))
        v = bh_lua_check_u64(L, -1, field);
    lua_pop(L, 1);
    return v;
}

/* node:snapshot_create(name [, {id=, vm_clock_ns=, date=, date_nsec=,
 * icount=}]) -> info table of the new snapshot */
static int l_snapshot_create(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    const char *name = luaL_checkstring(L, 2);
    const char *id = NULL;
    BhError *err = NULL;

    /* Every check that can raise a Lua error (a longjmp, which skips
     * g_autoptr cleanups) comes before the allocation. */
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "id");
        if (!lua_isnil(L, -1))
            id = luaL_checkstring(L, -1);   /* the table at 3 keeps it */
        lua_pop(L, 1);
    }
    uint64_t vm_clock = opt_u64(L, 3, "vm_clock_ns", 0);
    uint32_t date = (uint32_t)opt_u64(L, 3, "date", 0);
    uint32_t date_nsec = (uint32_t)opt_u64(L, 3, "date_nsec", 0);
    uint64_t icount = opt_u64(L, 3, "icount", BH_SNAPSHOT_NO_ICOUNT);

    BhSnapshotInfo *info = bh_snapshot_info_new();
    info->id = g_strdup(id);
    info->name = g_strdup(name);
    info->vm_clock_nsec = vm_clock;
    info->date_sec = date;
    info->date_nsec = date_nsec;
    info->icount = icount;
    int r = bh_node_snapshot_create(bs, info, &err);
    if (r == 0)
        push_info(L, info);
    bh_snapshot_info_free(info);
    return r < 0 ? bh_lua_error(L, err) : 1;
}

/* The snapshot an argument picks: a table {id=, name=} by each one given
 * (both must match), a string by id first, then name.  Raises. */
static BhSnapshotInfo *check_snapshot(lua_State *L, BhNode *bs, int idx)
{
    BhError *err = NULL;
    BhSnapshotInfo *sn;

    if (lua_istable(L, idx)) {
        const char *id, *name;
        lua_getfield(L, idx, "id");
        lua_getfield(L, idx, "name");
        id = luaL_optstring(L, -2, NULL);
        name = luaL_optstring(L, -1, NULL);
        if (id && !*id)
            id = NULL;
        if (name && !*name)
            name = NULL;
        sn = bh_node_snapshot_lookup(bs, id, name, &err);
        lua_pop(L, 2);
    } else {
        sn = bh_node_snapshot_find(bs, luaL_checkstring(L, idx), &err);
    }
    if (!sn)
        bh_lua_error(L, err);
    return sn;
}

/* Reverting a node that is exported changes the data under its clients'
 * feet (a mounted file system sees its blocks swapped): refused unless
 * the caller says {force=true}.  Forced, its clients are disconnected
 * first (their requests in flight finish), so none sees both sides. */
static void check_not_served(lua_State *L, BhNode *bs, int opts_idx,
                             const char *what)
{
    lua_Integer clients = 0;
    if (!bh_lua_served_clients(L, bs, &clients))
        return;
    bool force = !lua_isnoneornil(L, opts_idx) &&
                 bh_lua_opt_flag(L, opts_idx, "force", false);
    if (!force)
        luaL_error(L, "%s: '%s' is exported; reverting it would change the "
                   "data under its clients (pass {force=true} to do it "
                   "anyway)", what, bh_node_filename(bs));
    if (clients > 0)
        bh_lua_served_disconnect(L, bs);
}

/* node:snapshot_apply(id_or_name | {id=, name=} [, {force=true}]) */
static int l_snapshot_apply(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    check_not_served(L, bs, 3, "snapshot_apply");
    BhSnapshotInfo *sn = check_snapshot(L, bs, 2);
    BhError *err = NULL;
    /* By the id found: the driver would take a name for some other id. */
    int r = bh_node_snapshot_apply(bs, sn->id, &err);
    bh_snapshot_info_free(sn);   /* before a Lua error jumps past */
    return r < 0 ? bh_lua_error(L, err) : 0;
}

/* node:snapshot_delete(id_or_name | {id=, name=}) */
static int l_snapshot_delete(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    BhSnapshotInfo *sn = check_snapshot(L, bs, 2);
    BhError *err = NULL;
    int r = bh_node_snapshot_delete(bs, sn->id, &err);
    bh_snapshot_info_free(sn);
    return r < 0 ? bh_lua_error(L, err) : 0;
}

/* node:snapshot_open(id_or_name | {id=, name=}) -> read-only node */
static int l_snapshot_open(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    BhSnapshotInfo *sn = check_snapshot(L, bs, 2);
    BhError *err = NULL;
    BhNode *view = bh_node_snapshot_open(bs, sn->id, NULL, &err);

    bh_snapshot_info_free(sn);
    if (!view)
        return bh_lua_error(L, err);
    bh_lua_pushnode(L, view);
    return 1;
}

/* bh.savevm([name [, {nodes={n1, n2, ...}, date=, date_nsec=,
 * vm_clock_ns=}]]) -> name.  Without nodes, every open writable image. */
static int l_savevm(lua_State *L)
{
    const char *name = luaL_optstring(L, 1, NULL);
    BhNode **nodes = NULL;
    size_t n = 0;
    BhSnapshotInfo tmpl = { 0 };
    BhError *err = NULL;

    /* The checks below and bh_lua_error() raise, and a Lua error is a
     * longjmp that skips g_autofree: what must outlive them is owned by
     * Lua (on the stack until we return). */
    if (!name || !*name) {
        g_autoptr(GDateTime) t = g_date_time_new_now_local();
        g_autofree char *used = g_date_time_format(t, "vm-%Y%m%d%H%M%S");
        name = lua_pushstring(L, used);
    }
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        if (lua_getfield(L, 2, "nodes") != LUA_TNIL) {
            luaL_checktype(L, -1, LUA_TTABLE);
            n = lua_rawlen(L, -1);
            nodes = lua_newuserdatauv(L, (n + 1) * sizeof(BhNode *), 0);
            memset(nodes, 0, (n + 1) * sizeof(BhNode *));
            for (size_t i = 0; i < n; i++) {
                lua_rawgeti(L, -2, (lua_Integer)i + 1);
                nodes[i] = bh_lua_checknode(L, -1);
                lua_pop(L, 1);
            }
            lua_remove(L, -2);  /* the table; the array stays */
        } else {
            lua_pop(L, 1);
        }
        if (lua_getfield(L, 2, "date") != LUA_TNIL)
            tmpl.date_sec = (uint32_t)bh_lua_check_u64(L, -1, "date");
        if (lua_getfield(L, 2, "date_nsec") != LUA_TNIL)
            tmpl.date_nsec = (uint32_t)bh_lua_check_u64(L, -1, "date_nsec");
        if (lua_getfield(L, 2, "vm_clock_ns") != LUA_TNIL)
            tmpl.vm_clock_nsec = bh_lua_check_u64(L, -1, "vm_clock_ns");
        lua_pop(L, 3);
    }
    /* nodes stays NULL without a nodes field: every open image. */
    if (bh_savevm_nodes(nodes ? nodes : NULL, n, name, &tmpl, &err) < 0)
        return bh_lua_error(L, err);
    lua_pushstring(L, name);
    return 1;
}

/* bh.loadvm(name [, {force=true}]) -> true if state was loaded, false for a disk-only
 * snapshot (the disks were reverted, no state was stored) */
static int l_loadvm(lua_State *L)
{
    bool had = false;
    BhError *err = NULL;
    luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    bool force = !lua_isnoneornil(L, 2) && bh_lua_opt_flag(L, 2, "force", false);
    /* loadvm reverts every open image: none may be under clients. */
    GPtrArray *open = bh_open_nodes();
    bool busy = false;
    for (guint i = 0; i < open->len; i++) {
        BhNode *bs = open->pdata[i];
        lua_Integer clients = 0;
        bool served = bh_lua_served_clients(L, bs, &clients);
        busy = busy || (served && clients > 0);
        if (served && !force) {
            /* A Lua error skips the cleanup below: unref first. */
            g_ptr_array_set_free_func(open, (GDestroyNotify)bh_node_unref);
            g_ptr_array_free(open, TRUE);
            luaL_error(L, "loadvm: an open image is exported; reverting it "
                       "would change the data under its clients (pass "
                       "{force=true} to do it anyway)");
        }
    }
    if (!busy) {
        g_ptr_array_set_free_func(open, (GDestroyNotify)bh_node_unref);
        g_ptr_array_free(open, TRUE);
    } else {
        /* Forced: every client of every open image leaves first.  The
         * nodes go to Lua (a userdata each) so an error cannot leak them;
         * they are closed right after, since an open node counts for
         * savevm and loadvm until it is collected. */
        lua_createtable(L, (int)open->len, 0);
        for (guint i = 0; i < open->len; i++) {
            bh_lua_pushnode(L, open->pdata[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        guint nopen = open->len;
        g_ptr_array_free(open, TRUE);
        for (guint i = 0; i < nopen; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            BhNode *bs = bh_lua_checknode(L, -1);
            lua_Integer clients = 0;
            if (bh_lua_served_clients(L, bs, &clients) && clients > 0)
                bh_lua_served_disconnect(L, bs);
            lua_pop(L, 1);
        }
        for (guint i = 0; i < nopen; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            lua_getfield(L, -1, "close");
            lua_insert(L, -2);
            lua_call(L, 1, 0);
        }
        lua_pop(L, 1);
    }
    if (bh_loadvm(luaL_checkstring(L, 1), &had, &err) < 0)
        return bh_lua_error(L, err);
    lua_pushboolean(L, had);
    if (had)
        return 1;
    lua_pushliteral(L, "no state was stored in this snapshot (disk only)");
    return 2;
}

static int l_delvm(lua_State *L)
{
    BhError *err = NULL;
    if (bh_delvm(luaL_checkstring(L, 1), &err) < 0)
        return bh_lua_error(L, err);
    return 0;
}

static int l_all_snapshots(lua_State *L)
{
    BhError *err = NULL;
    GPtrArray *l = bh_snapshots_common(&err);
    return push_list(L, l, &err);
}

static const luaL_Reg node_regs[] = {
    { "snapshots", l_snapshots },
    { "snapshot_create", l_snapshot_create },
    { "snapshot_apply", l_snapshot_apply },
    { "snapshot_delete", l_snapshot_delete },
    { "snapshot_open", l_snapshot_open },
    { NULL, NULL },
};

static const luaL_Reg module_regs[] = {
    { "savevm", l_savevm },
    { "loadvm", l_loadvm },
    { "delvm", l_delvm },
    { "snapshots", l_all_snapshots },
    { NULL, NULL },
};

void bh_lua_open_snapshot(lua_State *L, int module_index)
{
    bh_lua_node_methods(L);
    luaL_setfuncs(L, node_regs, 0);
    lua_pop(L, 1);
    lua_pushvalue(L, module_index);
    luaL_setfuncs(L, module_regs, 0);
    lua_pop(L, 1);
    bh_lua_vmstate_register(L, module_index);
}
