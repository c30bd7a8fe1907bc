/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Drivers written in Lua: bh.driver.register{name=, open=, get_size=,
 * pread=, ...} in a script, or a NAME.lua file on the plugin path (or
 * given to bh.plugin.load) that returns that table.  Each becomes a
 * protocol driver of the core (bh_plugin_register), whose callbacks call
 * the Lua functions.
 *
 * Lua states are not thread-safe, so every call runs on a state that
 * exactly one thread uses at a time:
 *  - a driver file, serialize: one state of its own, loaded from the
 *    file, under the driver's lock;
 *  - a driver file, parallel: one state per calling thread, each loaded
 *    from the same file on that thread's first call (globals are not
 *    shared between them);
 *  - a script's bh.driver.register: the script's own state, under the
 *    script lock, which the main thread holds while it runs Lua and lets
 *    go inside bh.loop() (loop.c) and while a frontend stops (frontend.c),
 *    so the server's threads can call in.
 * Errors raised in Lua become -errno and a message: error{errno="ENOSPC",
 * msg="..."} or any other value (EIO).  They never leave the callback.
 */
#include <errno.h>
#include <string.h>

#include <lualib.h>

#include "bh-lua.h"

/* One Lua state a driver runs in, with the registration table and the
 * handles open() returned, by node, in its registry. */
typedef struct {
    lua_State *L;      /* a coroutine of its own, or the file state */
    lua_State *owner;  /* the state to close, NULL for the script's */
    int tbl;           /* registry ref: the registration table */
    int handles;       /* registry ref: {[node] = handle} */
    GRecMutex *lock;
    GRecMutex own_lock;
} LuaDrvState;

typedef struct {
    char *name;
    char *path;          /* the driver file, NULL for a script's */
    bool parallel;
    bool can_fua;
    BhDriver drv;
    LuaDrvState *state;  /* serialize: the one state */
    GMutex threads_lock;
    GHashTable *threads; /* parallel: GThread* -> LuaDrvState* */
} LuaDrv;

/* What a node of a Lua driver keeps: its options, for the per-thread
 * open() of parallel drivers. */
typedef struct {
    LuaDrv *drv;
    BhOpts *opts;
    char *filename;
    bool readonly;
} LuaDrvNode;

static GMutex luadrv_lock;          /* guards luadrv_all */
static GHashTable *luadrv_all;      /* name -> LuaDrv* */
static GRecMutex luadrv_script_lock;
static bool luadrv_main_holds;      /* main thread took the script lock */

/* ---- the script lock (loop.c releases it inside bh.loop()) ---- */

void bh_lua_driver_release(void)
{
    if (luadrv_main_holds)
        g_rec_mutex_unlock(&luadrv_script_lock);
}

void bh_lua_driver_reacquire(void)
{
    if (luadrv_main_holds)
        g_rec_mutex_lock(&luadrv_script_lock);
}

/* ---- errors ---- */

static const struct {
    const char *name;
    int num;
} luadrv_errnos[] = {
    { "EPERM", EPERM }, { "ENOENT", ENOENT }, { "EIO", EIO },
    { "ENXIO", ENXIO }, { "EAGAIN", EAGAIN }, { "ENOMEM", ENOMEM },
    { "EACCES", EACCES }, { "EBUSY", EBUSY }, { "EEXIST", EEXIST },
    { "ENODEV", ENODEV }, { "EINVAL", EINVAL }, { "EFBIG", EFBIG },
    { "ENOSPC", ENOSPC }, { "EROFS", EROFS }, { "ERANGE", ERANGE },
    { "ENOTSUP", ENOTSUP }, { "EOPNOTSUPP", EOPNOTSUPP },
    { "EOVERFLOW", EOVERFLOW }, { "ESHUTDOWN", ESHUTDOWN },
    { "ETIMEDOUT", ETIMEDOUT }, { "EDQUOT", EDQUOT },
};

/* errno from an error object's errno field: a name ("ENOSPC") or a
 * number; EIO for anything else. */
static int luadrv_errno_of(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Integer n = lua_tointeger(L, idx);
        return n > 0 && n < 4096 ? (int)n : EIO;
    }
    const char *s = lua_tostring(L, idx);
    for (size_t i = 0; s && i < G_N_ELEMENTS(luadrv_errnos); i++)
        if (strcmp(s, luadrv_errnos[i].name) == 0)
            return luadrv_errnos[i].num;
    return EIO;
}

/* The error on top of the stack (popped) as -errno and *errp. */
static int luadrv_error(lua_State *L, const LuaDrv *d, const char *fn,
                        BhError **errp)
{
    int e = EIO;
    const char *msg = NULL;
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "errno");
        e = luadrv_errno_of(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, -1, "msg");
        msg = lua_tostring(L, -1);
        lua_insert(L, -2);  /* keep msg alive below the table */
        lua_pop(L, 1);
    } else {
        msg = lua_tostring(L, -1);
    }
    bh_error_set(errp, e, "lua driver %s: %s: %s", d->name, fn,
                 msg ? msg : g_strerror(e));
    lua_pop(L, 1);
    return -e;
}

/* ---- states ---- */

static void luadrv_preload(lua_State *L)
{
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_blkhost);
    lua_setfield(L, -2, "blkhost");
    lua_pop(L, 1);
}

/* Anchor the registration table at tidx of L in a new state record. */
static LuaDrvState *luadrv_state_new(lua_State *L, int tidx, lua_State *owner,
                                     GRecMutex *lock)
{
    LuaDrvState *st = g_new0(LuaDrvState, 1);
    tidx = lua_absindex(L, tidx);
    st->owner = owner;
    st->L = lua_newthread(L);
    luaL_ref(L, LUA_REGISTRYINDEX);  /* keep the coroutine alive */
    lua_pushvalue(L, tidx);
    st->tbl = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    st->handles = luaL_ref(L, LUA_REGISTRYINDEX);
    if (lock) {
        st->lock = lock;
    } else {
        g_rec_mutex_init(&st->own_lock);
        st->lock = &st->own_lock;
    }
    return st;
}

/* Load a driver file into a fresh state; leaves the returned table on
 * top of that state's stack. */
static lua_State *luadrv_load_file(const char *path, BhError **errp)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        bh_error_set(errp, ENOMEM, "%s: cannot create a Lua state", path);
        return NULL;
    }
    luadrv_preload(L);
    if (luaL_loadfile(L, path) != LUA_OK ||
        lua_pcall(L, 0, 1, 0) != LUA_OK) {
        bh_error_set(errp, EINVAL, "%s", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    if (!lua_istable(L, -1)) {
        bh_error_set(errp, EINVAL, "%s: a Lua driver file must return its "
                     "registration table ({name=, open=, ...}), not a %s",
                     path, luaL_typename(L, -1));
        lua_close(L);
        return NULL;
    }
    return L;
}

/* The state this thread uses for d, locked; NULL with *errp set. */
static LuaDrvState *luadrv_enter(LuaDrv *d, BhError **errp)
{
    LuaDrvState *st = d->state;
    if (d->parallel) {
        g_mutex_lock(&d->threads_lock);
        st = g_hash_table_lookup(d->threads, g_thread_self());
        g_mutex_unlock(&d->threads_lock);
        if (!st) {
            lua_State *L = luadrv_load_file(d->path, errp);
            if (!L)
                return NULL;
            st = luadrv_state_new(L, -1, L, NULL);
            lua_pop(L, 1);
            g_mutex_lock(&d->threads_lock);
            g_hash_table_insert(d->threads, g_thread_self(), st);
            g_mutex_unlock(&d->threads_lock);
        }
    }
    g_rec_mutex_lock(st->lock);
    return st;
}

static void luadrv_leave(LuaDrvState *st)
{
    lua_settop(st->L, 0);
    g_rec_mutex_unlock(st->lock);
}

/* Push tbl[fn] of st; false (nothing pushed) when it is not a function. */
static bool luadrv_getfn(LuaDrvState *st, const char *fn)
{
    lua_State *L = st->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->tbl);
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    if (lua_isfunction(L, -1))
        return true;
    lua_pop(L, 1);
    return false;
}

/* Push the node's handle in st, calling open() there first if this state
 * has none yet (a parallel driver's new thread). */
static int luadrv_handle(LuaDrvState *st, BhNode *bs, LuaDrvNode *n,
                         BhError **errp)
{
    lua_State *L = st->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->handles);
    lua_rawgetp(L, -1, bs);
    if (!lua_isnil(L, -1)) {
        lua_remove(L, -2);
        return 0;
    }
    lua_pop(L, 1);
    if (!luadrv_getfn(st, "open")) {
        lua_pop(L, 1);
        return bh_error_set(errp, EINVAL, "lua driver %s: no open function",
                            n->drv->name);
    }
    lua_createtable(L, 0, (int)bh_opts_count(n->opts));
    for (size_t i = 0; i < bh_opts_count(n->opts); i++) {
        lua_pushstring(L, bh_opts_value(n->opts, i));
        lua_setfield(L, -2, bh_opts_key(n->opts, i));
    }
    if (n->filename) {
        lua_pushstring(L, n->filename);
        lua_setfield(L, -2, "filename");
    }
    lua_pushboolean(L, n->readonly);
    lua_setfield(L, -2, "readonly");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        int r = luadrv_error(L, n->drv, "open", errp);
        lua_pop(L, 1);
        return r;
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);  /* a handle must not be nil */
    }
    lua_pushvalue(L, -1);
    lua_rawsetp(L, -3, bs);
    lua_remove(L, -2);
    return 0;
}

/* Enter, push fn and the node's handle: ready for the arguments.  NULL
 * with *errp (and *r) set when the call cannot be made; *r is 1 when
 * the driver has no fn (nothing entered). */
static LuaDrvState *luadrv_begin(BhNode *bs, const char *fn, int *r,
                                 BhError **errp)
{
    LuaDrvNode *n = bh_node_get_opaque(bs);
    LuaDrvState *st = luadrv_enter(n->drv, errp);
    *r = 0;
    if (!st) {
        *r = -EIO;
        return NULL;
    }
    if (!luadrv_getfn(st, fn)) {
        luadrv_leave(st);
        *r = 1;
        return NULL;
    }
    int e = luadrv_handle(st, bs, n, errp);
    if (e < 0) {
        luadrv_leave(st);
        *r = e;
        return NULL;
    }
    return st;
}

static int luadrv_call(LuaDrvState *st, BhNode *bs, const char *fn,
                       int nargs, int nres, BhError **errp)
{
    LuaDrvNode *n = bh_node_get_opaque(bs);
    if (lua_pcall(st->L, nargs + 1, nres, 0) != LUA_OK)
        return luadrv_error(st->L, n->drv, fn, errp);
    return 0;
}

/* ---- the BhDriver callbacks ---- */

static LuaDrv *luadrv_find(const char *name)
{
    g_mutex_lock(&luadrv_lock);
    LuaDrv *d = luadrv_all ? g_hash_table_lookup(luadrv_all, name) : NULL;
    g_mutex_unlock(&luadrv_lock);
    return d;
}

static int luadrv_open(BhNode *bs, const char *filename, BhOpts *opts,
                       uint32_t open_flags, BhError **errp)
{
    LuaDrv *d = luadrv_find(bh_node_driver_name(bs));
    if (!d)
        return bh_error_set(errp, ENOENT, "no Lua driver named %s",
                            bh_node_driver_name(bs));
    LuaDrvNode *n = g_new0(LuaDrvNode, 1);
    n->drv = d;
    n->opts = bh_opts_copy(opts);
    n->filename = g_strdup(filename);
    n->readonly = !(open_flags & BH_OPEN_RDWR);
    /* Every option goes to open(opts): the driver checks its own. */
    for (size_t i = 0; i < bh_opts_count(opts); i++)
        (void)bh_opts_get(opts, bh_opts_key(opts, i));
    bh_node_set_opaque(bs, n);

    BhError *err = NULL;
    LuaDrvState *st = luadrv_enter(d, &err);
    int r = st ? luadrv_handle(st, bs, n, &err) : -EIO;
    if (st)
        luadrv_leave(st);
    if (r < 0) {
        bh_error_propagate(errp, err);
        bh_node_set_opaque(bs, NULL);
        bh_opts_free(n->opts);
        g_free(n->filename);
        g_free(n);
        return r;
    }
    if (d->can_fua)
        bh_node_set_caps(bs, BH_CAP_FUA);
    return 0;
}

/* close(h) in one state that has a handle for bs, and forget it. */
static void luadrv_close_in(LuaDrvState *st, LuaDrv *d, BhNode *bs)
{
    g_rec_mutex_lock(st->lock);
    lua_State *L = st->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->handles);
    lua_rawgetp(L, -1, bs);
    if (!lua_isnil(L, -1) && luadrv_getfn(st, "close")) {
        lua_pushvalue(L, -2);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            g_printerr("blkhost: lua driver %s: close: %s\n", d->name,
                       lua_tostring(L, -1));
        }
    }
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->handles);
    lua_pushnil(L);
    lua_rawsetp(L, -2, bs);
    lua_settop(L, 0);
    g_rec_mutex_unlock(st->lock);
}

static void luadrv_close(BhNode *bs)
{
    LuaDrvNode *n = bh_node_get_opaque(bs);
    if (!n)
        return;
    LuaDrv *d = n->drv;
    if (d->parallel) {
        g_mutex_lock(&d->threads_lock);
        GList *states = g_hash_table_get_values(d->threads);
        g_mutex_unlock(&d->threads_lock);
        for (GList *l = states; l; l = l->next)
            luadrv_close_in(l->data, d, bs);
        g_list_free(states);
    } else {
        luadrv_close_in(d->state, d, bs);
    }
    bh_opts_free(n->opts);
    g_free(n->filename);
    g_free(n);
}

static int64_t luadrv_get_length(BhNode *bs)
{
    BhError *err = NULL;
    int r;
    LuaDrvState *st = luadrv_begin(bs, "get_size", &r, &err);
    if (!st) {
        bh_error_clear(&err);
        return r > 0 ? -ENOTSUP : r;
    }
    int64_t len = luadrv_call(st, bs, "get_size", 0, 1, &err);
    if (len == 0) {
        int isnum = 0;
        lua_Integer v = lua_tointegerx(st->L, -1, &isnum);
        len = isnum && v >= 0 ? v : -EINVAL;
        if (!isnum || v < 0)
            g_printerr("blkhost: lua driver %s: get_size must return a "
                       "non-negative integer\n", ((LuaDrvNode *)
                       bh_node_get_opaque(bs))->drv->name);
    } else {
        g_printerr("blkhost: %s\n", bh_error_message(err));
    }
    bh_error_clear(&err);
    luadrv_leave(st);
    return len;
}

static int luadrv_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                        uint32_t flags, BhError **errp)
{
    int r;
    LuaDrvState *st = luadrv_begin(bs, "pread", &r, errp);
    if (!st)
        return r > 0 ? bh_error_set(errp, ENOTSUP, "no pread") : r;
    lua_pushinteger(st->L, (lua_Integer)len);
    lua_pushinteger(st->L, (lua_Integer)offset);
    r = luadrv_call(st, bs, "pread", 2, 1, errp);
    if (r == 0) {
        size_t got = 0;
        const char *s = lua_type(st->L, -1) == LUA_TSTRING
                      ? lua_tolstring(st->L, -1, &got) : NULL;
        if (!s || got != len)
            r = bh_error_set(errp, EIO, "lua driver %s: pread returned %s "
                             "of %zu bytes for %zu wanted",
                             ((LuaDrvNode *)bh_node_get_opaque(bs))->drv->name,
                             s ? "a string" : luaL_typename(st->L, -1),
                             got, len);
        else
            memcpy(buf, s, len);
    }
    luadrv_leave(st);
    return r;
}

static int luadrv_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                         size_t len, uint32_t flags, BhError **errp)
{
    int r;
    LuaDrvState *st = luadrv_begin(bs, "pwrite", &r, errp);
    if (!st)
        return r > 0 ? bh_error_set(errp, EROFS, "no pwrite") : r;
    lua_pushlstring(st->L, buf, len);
    lua_pushinteger(st->L, (lua_Integer)offset);
    lua_pushboolean(st->L, (flags & BH_IO_FUA) != 0);
    r = luadrv_call(st, bs, "pwrite", 3, 0, errp);
    luadrv_leave(st);
    return r;
}

static int luadrv_flush(BhNode *bs, BhError **errp)
{
    int r;
    LuaDrvState *st = luadrv_begin(bs, "flush", &r, errp);
    if (!st)
        return r > 0 ? 0 : r;
    r = luadrv_call(st, bs, "flush", 0, 0, errp);
    luadrv_leave(st);
    return r;
}

static int luadrv_discard(BhNode *bs, uint64_t offset, uint64_t len,
                          BhError **errp)
{
    int r;
    LuaDrvState *st = luadrv_begin(bs, "trim", &r, errp);
    if (!st)
        return r > 0 ? 0 : r;
    lua_pushinteger(st->L, (lua_Integer)len);
    lua_pushinteger(st->L, (lua_Integer)offset);
    r = luadrv_call(st, bs, "trim", 2, 0, errp);
    luadrv_leave(st);
    return r;
}

static int luadrv_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                               uint32_t flags, BhError **errp)
{
    int r;
    LuaDrvState *st = luadrv_begin(bs, "zero", &r, errp);
    if (!st)
        return r > 0 ? -ENOTSUP : r;
    lua_pushinteger(st->L, (lua_Integer)len);
    lua_pushinteger(st->L, (lua_Integer)offset);
    lua_pushboolean(st->L, (flags & BH_IO_MAY_UNMAP) != 0);
    r = luadrv_call(st, bs, "zero", 3, 0, errp);
    luadrv_leave(st);
    return r;
}

/* extents(h, count, offset) -> { {length=, hole=, zero=}, ... } from
 * offset on; the first one answers the core's question. */
static int luadrv_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                               uint64_t *pnum, uint32_t *status,
                               BhError **errp)
{
    int r;
    LuaDrvState *st = luadrv_begin(bs, "extents", &r, errp);
    if (!st) {
        if (r > 0) {
            *pnum = len;
            *status = 0;
            return 0;
        }
        return r;
    }
    lua_State *L = st->L;
    lua_pushinteger(L, (lua_Integer)len);
    lua_pushinteger(L, (lua_Integer)offset);
    r = luadrv_call(st, bs, "extents", 2, 1, errp);
    if (r == 0) {
        lua_Integer elen = 0;
        if (lua_istable(L, -1) && lua_rawgeti(L, -1, 1) == LUA_TTABLE) {
            lua_getfield(L, -1, "length");
            elen = lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
        if (elen <= 0) {
            r = bh_error_set(errp, EIO, "lua driver %s: extents must return "
                             "a list of {length=N>0, hole=, zero=}",
                             ((LuaDrvNode *)bh_node_get_opaque(bs))->drv->name);
        } else {
            *pnum = MIN((uint64_t)elen, len);
            *status = (bh_lua_opt_flag(L, -1, "hole", false)
                       ? BH_BLOCK_HOLE : 0) |
                      (bh_lua_opt_flag(L, -1, "zero", false)
                       ? BH_BLOCK_ZERO : 0);
        }
    }
    luadrv_leave(st);
    return r;
}

/* ---- registration ---- */

static const char *const luadrv_fns[] = {
    "open", "close", "get_size", "pread", "pwrite", "flush", "zero",
    "trim", "extents", NULL,
};

/* The registration table at tidx has field fn. */
static bool luadrv_has(lua_State *L, int tidx, const char *fn)
{
    bool has = lua_getfield(L, tidx, fn) != LUA_TNIL;
    lua_pop(L, 1);
    return has;
}

/* Check the table at tidx of L and register it.  owner is the driver
 * file's own state (L), or NULL for a script's bh.driver.register, whose
 * calls then run on the script's state; path names a file's record. */
static const BhPluginRecord *luadrv_register(lua_State *L, int tidx,
                                             const char *path,
                                             lua_State *owner,
                                             BhError **errp)
{
    tidx = lua_absindex(L, tidx);
    lua_getfield(L, tidx, "name");
    const char *name = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (!name || !*name) {
        bh_error_set(errp, EINVAL, "%s: a Lua driver needs name= (a string)",
                     path);
        return NULL;
    }
    for (int i = 0; luadrv_fns[i]; i++) {
        lua_getfield(L, tidx, luadrv_fns[i]);
        int t = lua_type(L, -1);
        lua_pop(L, 1);
        if (t != LUA_TNIL && t != LUA_TFUNCTION) {
            bh_error_set(errp, EINVAL, "Lua driver %s: %s= must be a "
                         "function, not a %s", name, luadrv_fns[i],
                         lua_typename(L, t));
            return NULL;
        }
        if (t == LUA_TNIL && (i == 0 || i == 2 || i == 3)) {
            bh_error_set(errp, EINVAL, "Lua driver %s has no %s function "
                         "(open, get_size and pread are required)", name,
                         luadrv_fns[i]);
            return NULL;
        }
    }
    lua_getfield(L, tidx, "thread_model");
    const char *tm = luaL_optstring(L, -1, "serialize");
    bool parallel = strcmp(tm, "parallel") == 0;
    if (!parallel && strcmp(tm, "serialize") != 0) {
        bh_error_set(errp, EINVAL, "Lua driver %s: unknown thread_model "
                     "'%s' (expected serialize or parallel)", name, tm);
        lua_pop(L, 1);
        return NULL;
    }
    lua_pop(L, 1);
    if (parallel && !owner) {
        bh_error_set(errp, EINVAL, "Lua driver %s: thread_model='parallel' "
                     "needs a driver file, which each thread loads: put "
                     "the table in %s.lua and bh.plugin.load() it", name,
                     name);
        return NULL;
    }

    LuaDrv *d = g_new0(LuaDrv, 1);
    d->name = g_strdup(name);
    d->path = g_strdup(owner ? path : NULL);
    d->parallel = parallel;
    d->can_fua = bh_lua_opt_flag(L, tidx, "can_fua", false);
    g_mutex_init(&d->threads_lock);
    d->threads = g_hash_table_new(NULL, NULL);

    BhDriver *drv = &d->drv;
    drv->struct_size = sizeof(*drv);
    drv->flags = BH_DRIVER_PROTOCOL | BH_DRIVER_NO_PROBE;
    drv->open = luadrv_open;
    drv->close = luadrv_close;
    drv->get_length = luadrv_get_length;
    drv->pread = luadrv_pread;
    drv->create_option_size = sizeof(BhCreateOption);
    if (luadrv_has(L, tidx, "pwrite"))
        drv->pwrite = luadrv_pwrite;
    if (luadrv_has(L, tidx, "flush"))
        drv->flush = luadrv_flush;
    if (luadrv_has(L, tidx, "trim"))
        drv->discard = luadrv_discard;
    if (luadrv_has(L, tidx, "zero"))
        drv->write_zeroes = luadrv_write_zeroes;
    if (luadrv_has(L, tidx, "extents"))
        drv->block_status = luadrv_block_status;
    if (d->can_fua)
        drv->request_flags = BH_IO_FUA;
    if (drv->write_zeroes)
        drv->request_flags |= BH_IO_MAY_UNMAP;

    lua_getfield(L, tidx, "description");
    char *descr = g_strdup(lua_tostring(L, -1));
    lua_getfield(L, tidx, "version");
    char *version = g_strdup(lua_tostring(L, -1));
    lua_pop(L, 2);

    BhPluginDesc desc = {
        .abi_version = BH_PLUGIN_ABI_VERSION,
        .struct_size = sizeof(BhPluginDesc),
        .kind = BH_PLUGIN_DRIVER,
        .thread_model = parallel ? BH_THREAD_PARALLEL : BH_THREAD_SERIALIZE,
        .name = d->name,
        .version = version ? version : "",
        .description = descr ? descr : "a driver written in Lua",
        .driver = drv,
    };
    /* Under luadrv_lock, so that the driver is findable by name as soon
     * as the core knows it. */
    g_mutex_lock(&luadrv_lock);
    if (!luadrv_all)
        luadrv_all = g_hash_table_new(g_str_hash, g_str_equal);
    g_autofree char *pseudo = owner ? NULL : g_strdup_printf("lua:%s", name);
    const BhPluginRecord *rec = bh_plugin_register(owner ? path : pseudo,
                                                   &desc, errp);
    if (!rec || rec->error) {
        g_mutex_unlock(&luadrv_lock);
        g_hash_table_destroy(d->threads);
        g_free(d->name);
        g_free(d->path);
        g_free(d);
        g_free(descr);
        g_free(version);
        return rec;
    }
    if (parallel) {
        /* The loading state only checked the file; threads load their own. */
        lua_close(owner);
    } else if (owner) {
        d->state = luadrv_state_new(owner, tidx, owner, NULL);
    } else {
        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
        lua_State *main = lua_tothread(L, -1);
        lua_pop(L, 1);
        lua_pushvalue(L, tidx);
        lua_xmove(L, main, 1);
        d->state = luadrv_state_new(main, -1, NULL, &luadrv_script_lock);
        lua_pop(main, 1);
        /* From now on the main thread holds the script lock while it runs
         * Lua; bh.loop() lets go of it. */
        if (!luadrv_main_holds) {
            g_rec_mutex_lock(&luadrv_script_lock);
            luadrv_main_holds = true;
        }
    }
    g_hash_table_insert(luadrv_all, d->name, d);
    g_mutex_unlock(&luadrv_lock);
    g_free(descr);
    g_free(version);
    return rec;
}

const BhPluginRecord *bh_lua_driver_load_file(const char *path,
                                              BhError **errp)
{
    g_autofree char *abs = g_canonicalize_filename(path, NULL);
    for (size_t i = 0; i < bh_plugin_count(); i++) {
        const BhPluginRecord *r = bh_plugin_get(i);
        if (r && !r->error && g_str_equal(r->path, abs))
            return r;  /* the same file twice is the same driver */
    }
    lua_State *L = luadrv_load_file(abs, errp);
    if (!L)
        return NULL;
    const BhPluginRecord *rec = luadrv_register(L, -1, abs, L, errp);
    if (!rec || rec->error) {
        lua_close(L);
    }
    return rec;
}

/* bh.driver.register{...} -> plugin record fields {name=, path=} */
static int driver_register(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    BhError *err = NULL;
    const BhPluginRecord *rec = luadrv_register(L, 1, "script", NULL, &err);
    if (!rec || rec->error) {
        if (!err)
            err = bh_error_new(EINVAL, "%s", rec ? rec->error : "refused");
        return bh_lua_error(L, err);
    }
    lua_createtable(L, 0, 2);
    lua_pushstring(L, rec->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, rec->path);
    lua_setfield(L, -2, "path");
    return 1;
}

/* *.lua files directly in the plugin search path are drivers too. */
static void luadrv_scan(void)
{
    char **dirs = bh_plugin_search_path();
    for (int i = 0; dirs[i]; i++) {
        GDir *dir = g_dir_open(dirs[i], 0, NULL);
        if (!dir)
            continue;
        GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
        const char *n;
        while ((n = g_dir_read_name(dir)))
            if (g_str_has_suffix(n, ".lua"))
                g_ptr_array_add(files, g_build_filename(dirs[i], n, NULL));
        g_dir_close(dir);
        for (guint j = 0; j < files->len; j++) {
            BhError *err = NULL;
            const BhPluginRecord *r = bh_lua_driver_load_file(files->pdata[j],
                                                              &err);
            if (!r && err)
                g_printerr("blkhost: cannot load Lua driver %s: %s\n",
                           (char *)files->pdata[j], bh_error_message(err));
            bh_error_clear(&err);
        }
        g_ptr_array_free(files, TRUE);
    }
    g_strfreev(dirs);
}

static const luaL_Reg driver_funcs[] = {
    { "register", driver_register },
    { NULL, NULL },
};

void bh_lua_open_driver(lua_State *L, int module_index)
{
    static gsize scanned;
    luaL_newlib(L, driver_funcs);
    lua_setfield(L, module_index, "driver");
    /* Once per process: a driver file's own state opens this module too. */
    if (g_once_init_enter(&scanned)) {
        g_once_init_leave(&scanned, 1);
        luadrv_scan();
    }
}
