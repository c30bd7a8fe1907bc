/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Node userdata: what bh.open() returns.  A full userdata holding one
 * reference to a BhNode; close() (also __close and __gc) drops it and
 * leaves the userdata "closed", so later calls fail cleanly instead of
 * touching freed memory.  All range and permission checks are the core's;
 * this file only checks that numbers from Lua are non-negative integers.
 */
#include <errno.h>
#include <string.h>

#include "bh-lua.h"

typedef struct {
    BhNode *bs; /* NULL once closed */
} LuaNode;

static LuaNode *node_check_ud(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, BH_LUA_NODE_MT);
}

BhNode *bh_lua_checknode(lua_State *L, int idx)
{
    LuaNode *n = node_check_ud(L, idx);
    if (!n->bs)
        luaL_argerror(L, idx, "node is closed");
    return n->bs;
}

void bh_lua_pushnode(lua_State *L, BhNode *bs)
{
    LuaNode *n = lua_newuserdatauv(L, sizeof(*n), 0);
    n->bs = bs;
    luaL_setmetatable(L, BH_LUA_NODE_MT);
}

void bh_lua_node_methods(lua_State *L)
{
    luaL_getmetatable(L, BH_LUA_NODE_MT);
    lua_getfield(L, -1, "__index");
    lua_remove(L, -2);
}

/* Raise the core's error, or a generic one naming the errno if the core
 * returned -errno without a message. */
static int node_fail(lua_State *L, int r, BhError *err, const char *what)
{
    if (!err)
        err = bh_error_new(-r, "%s failed: %s", what, g_strerror(-r));
    return bh_lua_error(L, err);
}

/* node:read(offset, length) -> string */
static int node_read(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    uint64_t off = bh_lua_check_u64(L, 2, "offset");
    uint64_t len = bh_lua_check_u64(L, 3, "length");
    int64_t size = bh_node_size(bs);
    BhError *err = NULL;

    /* A huge request past the end must not allocate first: the core's
     * range check refuses it before any buffer is touched, so probe with
     * no buffer and pass on the core's message.  Small requests always get
     * a real buffer, in case the node is growable and accepts them. */
    if ((size < 0 || off > (uint64_t)size || len > (uint64_t)size - off) &&
        len > 16 * 1024 * 1024) {
        int r = bh_node_pread(bs, NULL, off, (size_t)len, 0, &err);
        if (r < 0 || err)
            return node_fail(L, r, err, "read");
        return luaL_error(L, "read of %I bytes at offset %I is past the end "
                          "of the node", (lua_Integer)len, (lua_Integer)off);
    }
    if (len > SIZE_MAX / 2)
        return luaL_error(L, "read of %I bytes is too large", (lua_Integer)len);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)len);
    int r = bh_node_pread(bs, p, off, (size_t)len, 0, &err);
    if (r < 0)
        return node_fail(L, r, err, "read");
    luaL_pushresultsize(&b, (size_t)len);
    return 1;
}

/* node:write(offset, data [, {fua=true}]) */
static int node_write(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    uint64_t off = bh_lua_check_u64(L, 2, "offset");
    size_t len;
    const char *data = luaL_checklstring(L, 3, &len);
    uint32_t flags = bh_lua_opt_flag(L, 4, "fua", false) ? BH_IO_FUA : 0;
    BhError *err = NULL;

    int r = bh_node_pwrite(bs, data, off, len, flags, &err);
    if (r < 0)
        return node_fail(L, r, err, "write");
    return 0;
}

static int node_flush(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    BhError *err = NULL;
    int r = bh_node_flush(bs, &err);
    if (r < 0)
        return node_fail(L, r, err, "flush");
    return 0;
}

/* node:discard(offset, length) */
static int node_discard(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    uint64_t off = bh_lua_check_u64(L, 2, "offset");
    uint64_t len = bh_lua_check_u64(L, 3, "length");
    BhError *err = NULL;
    int r = bh_node_discard(bs, off, len, &err);
    if (r < 0)
        return node_fail(L, r, err, "discard");
    return 0;
}

/* node:zero(offset, length [, {may_unmap=true, fast=true, fua=true}]) */
static int node_zero(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    uint64_t off = bh_lua_check_u64(L, 2, "offset");
    uint64_t len = bh_lua_check_u64(L, 3, "length");
    uint32_t flags = 0;
    if (bh_lua_opt_flag(L, 4, "may_unmap", false))
        flags |= BH_IO_MAY_UNMAP;
    if (bh_lua_opt_flag(L, 4, "fast", false))
        flags |= BH_IO_FAST_ZERO;
    if (bh_lua_opt_flag(L, 4, "fua", false))
        flags |= BH_IO_FUA;
    BhError *err = NULL;
    int r = bh_node_write_zeroes(bs, off, len, flags, &err);
    if (r < 0)
        return node_fail(L, r, err, "zero");
    return 0;
}

static int node_size(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    lua_pushinteger(L, (lua_Integer)bh_node_size(bs));
    return 1;
}

/* node:resize(size): bh_node_truncate, the virtual size becomes size
 * bytes (formats may refuse what they cannot do, e.g. a qcow2 shrink). */
static int node_resize(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    uint64_t size = bh_lua_check_u64(L, 2, "size");
    BhError *err = NULL;
    int r = bh_node_truncate(bs, size, &err);

    if (r < 0)
        return node_fail(L, r, err, "resize");
    return 0;
}

/* node:extents([offset [, length]]) -> {{offset=, length=, hole=, zero=}, ...}
 * One entry per block_status answer; nothing is merged, so a script sees
 * exactly what the driver reported. */
static int node_extents(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    int64_t size = bh_node_size(bs);
    uint64_t off = lua_isnoneornil(L, 2) ? 0 : bh_lua_check_u64(L, 2, "offset");
    uint64_t len;
    if (lua_isnoneornil(L, 3))
        len = size >= 0 && off < (uint64_t)size ? (uint64_t)size - off : 0;
    else
        len = bh_lua_check_u64(L, 3, "length");

    lua_newtable(L);
    lua_Integer n = 0;
    BhError *err = NULL;
    if (len == 0 && size >= 0 && off > (uint64_t)size) {
        /* Nothing to report, but the offset is still wrong: let the core
         * say so in its own words. */
        uint64_t pnum = 0;
        uint32_t st = 0;
        int r = bh_node_block_status(bs, off, 1, &pnum, &st, &err);
        return node_fail(L, r < 0 ? r : -EINVAL, err, "block status");
    }
    while (len > 0) {
        uint64_t pnum = 0;
        uint32_t st = 0;
        int r = bh_node_block_status(bs, off, len, &pnum, &st, &err);
        if (r < 0)
            return node_fail(L, r, err, "block status");
        if (pnum == 0 || pnum > len) {
            return luaL_error(L, "block status at offset %I returned a bad "
                              "length %I", (lua_Integer)off, (lua_Integer)pnum);
        }
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, (lua_Integer)off);
        lua_setfield(L, -2, "offset");
        lua_pushinteger(L, (lua_Integer)pnum);
        lua_setfield(L, -2, "length");
        lua_pushboolean(L, (st & BH_BLOCK_HOLE) != 0);
        lua_setfield(L, -2, "hole");
        lua_pushboolean(L, (st & BH_BLOCK_ZERO) != 0);
        lua_setfield(L, -2, "zero");
        lua_rawseti(L, -2, ++n);
        off += pnum;
        len -= pnum;
    }
    return 1;
}

/* node:info() -> table, keys
 * The second result lists the keys in the order the core gave them, so a
 * printer (lua/cmd/info.lua) can keep that order. */
static int node_info(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    BhInfo *info = bh_info_new();
    bh_node_info(bs, info);
    bh_lua_push_info(L, info);
    size_t n = bh_info_count(info);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, bh_info_item(info, i)->key);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    bh_info_free(info);
    return 2;
}

static int node_filename(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    const char *f = bh_node_filename(bs);
    if (f)
        lua_pushstring(L, f);
    else
        lua_pushnil(L);
    return 1;
}

static int node_format(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    lua_pushstring(L, bh_node_driver_name(bs));
    return 1;
}

static int node_readonly(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    lua_pushboolean(L, bh_node_is_readonly(bs));
    return 1;
}

static int node_is_closed(lua_State *L)
{
    LuaNode *n = node_check_ud(L, 1);
    lua_pushboolean(L, n->bs == NULL);
    return 1;
}

/* node:close(); closing twice is harmless, as __gc follows __close. */
static int node_close(lua_State *L)
{
    LuaNode *n = node_check_ud(L, 1);
    BhNode *bs = n->bs;
    n->bs = NULL;
    if (bs)
        bh_node_unref(bs);
    return 0;
}

static int node_tostring(lua_State *L)
{
    LuaNode *n = node_check_ud(L, 1);
    if (!n->bs) {
        lua_pushliteral(L, "blkhost.node(closed)");
        return 1;
    }
    const char *fn = bh_node_filename(n->bs);
    int64_t size = bh_node_size(n->bs);
    char *hs = size >= 0 ? bh_lua_human_size((uint64_t)size) : g_strdup("?");
    lua_pushfstring(L, "blkhost.node(%s%s%s, %s)", bh_node_driver_name(n->bs),
                    fn && *fn ? " " : "", fn ? fn : "", hs);
    g_free(hs);
    return 1;
}

/* node:map([offset [, length]]) -> {{start=, length=, depth=, present=,
 * zero=, data=, offset=?, file=?}, ...}: bh_node_block_map's answers,
 * unmerged, with qemu-img map's key names (offset and file only where the
 * bytes have a host offset). */
static int node_map(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    int64_t size = bh_node_size(bs);
    uint64_t off = lua_isnoneornil(L, 2) ? 0 : bh_lua_check_u64(L, 2, "offset");
    uint64_t len;
    lua_Integer n = 0;
    BhError *err = NULL;

    if (lua_isnoneornil(L, 3))
        len = size >= 0 && off < (uint64_t)size ? (uint64_t)size - off : 0;
    else
        len = bh_lua_check_u64(L, 3, "length");
    if (size >= 0 && (off > (uint64_t)size || len > (uint64_t)size - off)) {
        uint64_t pnum;
        BhMapEntry e;
        int r = bh_node_block_map(bs, off, len, &pnum, &e, &err);
        return node_fail(L, r < 0 ? r : -EINVAL, err, "block map");
    }
    lua_newtable(L);
    while (len > 0) {
        uint64_t pnum = 0;
        BhMapEntry e;
        int r = bh_node_block_map(bs, off, len, &pnum, &e, &err);
        if (r < 0)
            return node_fail(L, r, err, "block map");
        lua_createtable(L, 0, 8);
        lua_pushinteger(L, (lua_Integer)off);
        lua_setfield(L, -2, "start");
        lua_pushinteger(L, (lua_Integer)pnum);
        lua_setfield(L, -2, "length");
        lua_pushinteger(L, (lua_Integer)e.depth);
        lua_setfield(L, -2, "depth");
        lua_pushboolean(L, e.present);
        lua_setfield(L, -2, "present");
        lua_pushboolean(L, (e.flags & BH_MAP_ZERO) != 0);
        lua_setfield(L, -2, "zero");
        lua_pushboolean(L, (e.flags & BH_MAP_DATA) != 0);
        lua_setfield(L, -2, "data");
        if (e.flags & BH_MAP_OFFSET) {
            lua_pushinteger(L, (lua_Integer)e.offset);
            lua_setfield(L, -2, "offset");
            lua_pushstring(L, bh_node_filename(e.file));
            lua_setfield(L, -2, "file");
        }
        lua_rawseti(L, -2, ++n);
        off += pnum;
        len -= pnum;
    }
    return 1;
}

static void node_check_field(lua_State *L, const char *key, uint64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, key);
}

/* node:check([fix]) -> {corruptions=, leaks=, check_errors=,
 * corruptions_fixed=, leaks_fixed=, image_end_offset=, total_clusters=?,
 * allocated_clusters=?, fragmented_clusters=?, compressed_clusters=?,
 * messages={...}}: bh_node_check; fix is nil, "leaks" or "all" as
 * qemu-img check -r takes it. */
static int node_check(lua_State *L)
{
    static const char *const fixes[] = { "none", "leaks", "all", NULL };
    static const uint32_t fix_bits[] = {
        0, BH_CHECK_FIX_LEAKS, BH_CHECK_FIX_LEAKS | BH_CHECK_FIX_ERRORS,
    };
    BhNode *bs = bh_lua_checknode(L, 1);
    int fix = luaL_checkoption(L, 2, "none", fixes);
    BhCheckResult res;
    BhError *err = NULL;
    int r = bh_node_check(bs, fix_bits[fix], &res, &err);

    if (r < 0) {
        bh_check_result_clear(&res);
        return node_fail(L, r, err, "check");
    }
    lua_createtable(L, 0, 12);
    node_check_field(L, "corruptions", res.corruptions);
    node_check_field(L, "leaks", res.leaks);
    node_check_field(L, "check_errors", res.check_errors);
    node_check_field(L, "corruptions_fixed", res.corruptions_fixed);
    node_check_field(L, "leaks_fixed", res.leaks_fixed);
    if (res.image_end_offset)
        node_check_field(L, "image_end_offset", res.image_end_offset);
    if (res.has_clusters) {
        node_check_field(L, "total_clusters", res.total_clusters);
        node_check_field(L, "allocated_clusters", res.allocated_clusters);
        node_check_field(L, "fragmented_clusters", res.fragmented_clusters);
        node_check_field(L, "compressed_clusters", res.compressed_clusters);
    }
    size_t nmsg = bh_check_result_message_count(&res);
    lua_createtable(L, (int)nmsg, 0);
    for (size_t i = 0; i < nmsg; i++) {
        lua_pushstring(L, bh_check_result_message(&res, i));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "messages");
    bh_check_result_clear(&res);
    return 1;
}

/* The Lua function at the top of the stack gets (done, total) as the
 * driver reports them.  It runs inside the driver, so its errors are
 * caught here (they cannot unwind through C frames holding locks) and
 * raised once amend returns. */
typedef struct {
    lua_State *L;
    int fn;              /* stack index of the function, 0: none */
    char *error;         /* the first error the function raised */
} NodeAmendProgress;

static void node_amend_progress(void *opaque, uint64_t done, uint64_t total)
{
    NodeAmendProgress *p = opaque;

    if (!p->fn || p->error)
        return;
    lua_pushvalue(p->L, p->fn);
    lua_pushinteger(p->L, (lua_Integer)done);
    lua_pushinteger(p->L, (lua_Integer)total);
    if (lua_pcall(p->L, 2, 0, 0) != LUA_OK) {
        p->error = g_strdup(lua_tostring(p->L, -1));
        lua_pop(p->L, 1);
    }
}

/* node:amend(options [, {force=bool, progress=function(done, total)}]):
 * bh_node_amend.  options is a "k=v,k2=v2" string (its order is the
 * order keys are checked in, as on qemu-img's command line) or a table. */
static int node_amend(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    NodeAmendProgress p = { .L = L };
    uint32_t flags = 0;
    BhError *err = NULL;
    BhOpts *opts;
    int r;

    /* Arguments first: a Lua error after opts exists would leak it. */
    if (lua_type(L, 2) != LUA_TSTRING)
        luaL_checktype(L, 2, LUA_TTABLE);
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        if (lua_getfield(L, 3, "force") != LUA_TNIL && lua_toboolean(L, -1))
            flags |= BH_AMEND_FORCE;
        lua_pop(L, 1);
        if (lua_getfield(L, 3, "progress") == LUA_TFUNCTION)
            p.fn = lua_gettop(L);
        else
            lua_pop(L, 1);
    }
    opts = lua_type(L, 2) == LUA_TSTRING
           ? bh_opts_parse(lua_tostring(L, 2), NULL, &err)
           : bh_lua_opts_from_table(L, 2, &err);
    if (!opts)
        return bh_lua_error(L, err);
    r = bh_node_amend(bs, opts, flags, node_amend_progress, &p, &err);
    bh_opts_free(opts);
    if (r < 0) {
        g_free(p.error);
        return node_fail(L, r, err, "amend");
    }
    if (p.error) {
        lua_pushstring(L, p.error);
        g_free(p.error);
        return lua_error(L);
    }
    return 0;
}

static const luaL_Reg node_methods[] = {
    { "read", node_read },
    { "write", node_write },
    { "flush", node_flush },
    { "discard", node_discard },
    { "zero", node_zero },
    { "size", node_size },
    { "resize", node_resize },
    { "extents", node_extents },
    { "map", node_map },
    { "check", node_check },
    { "amend", node_amend },
    { "info", node_info },
    { "filename", node_filename },
    { "format", node_format },
    { "readonly", node_readonly },
    { "closed", node_is_closed },
    { "close", node_close },
    { NULL, NULL },
};

static const luaL_Reg node_meta[] = {
    { "__gc", node_close },
    { "__close", node_close },
    { "__tostring", node_tostring },
    { NULL, NULL },
};

void bh_lua_node_register(lua_State *L)
{
    if (luaL_newmetatable(L, BH_LUA_NODE_MT)) {
        luaL_setfuncs(L, node_meta, 0);
        luaL_newlib(L, node_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}
