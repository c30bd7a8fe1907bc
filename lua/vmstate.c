/*
 * bh.vmstate: script state saved by savevm and restored by loadvm.
 *
 *   bh.vmstate.register{ name = "counter", version = 2, min_version = 1,
 *     fields = { {"n", "u32"}, {"label", "string"},
 *                {"key", "buffer", size = 16}, {"on", "bool", version = 2},
 *                {"xs", "array", of = "i16"} },
 *     get = function() return state end,        -- a table with the fields
 *     set = function(t) state = t end }
 *   bh.vmstate.unregister(name [, instance])
 *
 * Field types: u8 u16 u32 u64 i8 i16 i32 i64 bool (one byte), string (u32
 * length + bytes), buffer (exactly size bytes), array (u32 count + items
 * of type `of`, a scalar type).  Big-endian, as QEMU's savevm stream.  A
 * field with version = N is saved always and loaded only from a stream of
 * version N or later.  Loading decodes into a new table that set()
 * receives only once the whole stream was read (savevm.h's two phases).
 */
#include <errno.h>
#include <string.h>

#include "bh-lua.h"

enum { T_U8, T_U16, T_U32, T_U64, T_I8, T_I16, T_I32, T_I64, T_BOOL,
       T_STRING, T_BUFFER, T_ARRAY };
static const char *const type_names[] = { "u8", "u16", "u32", "u64", "i8",
    "i16", "i32", "i64", "bool", "string", "buffer", "array", NULL };

#define MAX_STRING (64u << 20)

typedef struct {
    char *name;
    int type, of;
    int version;
    uint32_t size;
} LField;

typedef struct {
    lua_State *L;
    int get_ref, set_ref;
    char *idstr;
    int version, min_version;
    LField *f;
    int n;
} LEntry;

static int lerr(GError **errp, LEntry *e, const char *fmt, const char *a)
{
    return bh_error_set(errp, EINVAL, "vmstate '%s': %s%s", e->idstr, fmt,
                        a ? a : "");
}

static bool put_scalar(BhStream *s, int type, lua_State *L, int idx,
                       const char **why)
{
    lua_Integer v;
    int isnum;

    if (type == T_BOOL) {
        if (!lua_isboolean(L, idx)) {
            *why = "a boolean";
            return false;
        }
        bh_stream_put_u8(s, lua_toboolean(L, idx));
        return true;
    }
    v = lua_tointegerx(L, idx, &isnum);
    if (!isnum) {
        *why = "an integer";
        return false;
    }
    *why = "an integer in the type's range";
    switch (type) {
    case T_U8: if (v < 0 || v > 0xff) return false;
        bh_stream_put_u8(s, (uint8_t)v); break;
    case T_U16: if (v < 0 || v > 0xffff) return false;
        bh_stream_put_be16(s, (uint16_t)v); break;
    case T_U32: if (v < 0 || v > 0xffffffffll) return false;
        bh_stream_put_be32(s, (uint32_t)v); break;
    case T_I8: if (v < -128 || v > 127) return false;
        bh_stream_put_s8(s, (int8_t)v); break;
    case T_I16: if (v < -32768 || v > 32767) return false;
        bh_stream_put_sbe16(s, (int16_t)v); break;
    case T_I32: if (v < INT32_MIN || v > INT32_MAX) return false;
        bh_stream_put_sbe32(s, (int32_t)v); break;
    default: bh_stream_put_be64(s, (uint64_t)v); break; /* u64, i64 */
    }
    return true;
}

static void push_scalar(BhStream *s, int type, lua_State *L)
{
    switch (type) {
    case T_BOOL: lua_pushboolean(L, bh_stream_get_u8(s) != 0); break;
    case T_U8: lua_pushinteger(L, bh_stream_get_u8(s)); break;
    case T_U16: lua_pushinteger(L, bh_stream_get_be16(s)); break;
    case T_U32: lua_pushinteger(L, bh_stream_get_be32(s)); break;
    case T_I8: lua_pushinteger(L, bh_stream_get_s8(s)); break;
    case T_I16: lua_pushinteger(L, bh_stream_get_sbe16(s)); break;
    case T_I32: lua_pushinteger(L, bh_stream_get_sbe32(s)); break;
    default: lua_pushinteger(L, (lua_Integer)bh_stream_get_be64(s)); break;
    }
}

static int v_save(void *opaque, BhStream *s, GError **errp)
{
    LEntry *e = opaque;
    lua_State *L = e->L;
    int top = lua_gettop(L), ret = 0;

    lua_rawgeti(L, LUA_REGISTRYINDEX, e->get_ref);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
        ret = lerr(errp, e, "get() failed: ", lua_tostring(L, -1));
        goto out;
    }
    if (!lua_istable(L, -1)) {
        ret = lerr(errp, e, "get() must return a table", NULL);
        goto out;
    }
    for (int i = 0; i < e->n && ret == 0; i++) {
        LField *f = &e->f[i];
        const char *why = NULL;
        size_t len;

        lua_getfield(L, top + 1, f->name);
        switch (f->type) {
        case T_STRING:
        case T_BUFFER: {
            const char *p = lua_type(L, -1) == LUA_TSTRING ?
                            lua_tolstring(L, -1, &len) : NULL;
            if (!p || (f->type == T_BUFFER && len != f->size) ||
                len > MAX_STRING) {
                why = f->type == T_STRING ? "a string" :
                      "a string of exactly the buffer's size";
                break;
            }
            if (f->type == T_STRING)
                bh_stream_put_be32(s, (uint32_t)len);
            bh_stream_put_buffer(s, p, len);
            break;
        }
        case T_ARRAY: {
            lua_Integer n;
            if (!lua_istable(L, -1)) {
                why = "a table (array)";
                break;
            }
            n = (lua_Integer)lua_rawlen(L, -1);
            bh_stream_put_be32(s, (uint32_t)n);
            for (lua_Integer k = 1; k <= n && !why; k++) {
                lua_rawgeti(L, -1, k);
                if (!put_scalar(s, f->of, L, -1, &why))
                    why = why ? why : "a valid item";
                else
                    why = NULL;
                lua_pop(L, 1);
            }
            break;
        }
        default:
            if (put_scalar(s, f->type, L, -1, &why))
                why = NULL;
            break;
        }
        if (why) {
            g_autofree char *m = g_strdup_printf("field '%s' (%s) must be %s",
                                                 f->name,
                                                 type_names[f->type], why);
            ret = lerr(errp, e, m, NULL);
        }
        lua_pop(L, 1);
    }
    if (ret == 0 && bh_stream_error(s))
        ret = bh_stream_take_error(s, errp);
out:
    lua_settop(L, top);
    return ret;
}

static int v_load(void *opaque, BhStream *s, int version_id, void **pending,
                  GError **errp)
{
    LEntry *e = opaque;
    lua_State *L = e->L;
    int top = lua_gettop(L);

    if (version_id < e->min_version)
        return bh_error_set(errp, EINVAL, "vmstate '%s': stream version %d "
                            "is older than the oldest this script reads (%d)",
                            e->idstr, version_id, e->min_version);
    lua_createtable(L, 0, e->n);
    for (int i = 0; i < e->n; i++) {
        LField *f = &e->f[i];
        if (f->version > version_id)
            continue;   /* added after the stream's version */
        switch (f->type) {
        case T_STRING:
        case T_BUFFER: {
            uint32_t len = f->type == T_STRING ? bh_stream_get_be32(s)
                                               : f->size;
            if (bh_stream_error(s))
                break;
            if (len > MAX_STRING) {
                bh_stream_set_error(s, EINVAL, "vmstate '%s': field '%s' "
                                    "claims %u bytes", e->idstr, f->name, len);
                break;
            }
            g_autofree char *buf = g_malloc(len ? len : 1);
            if (bh_stream_get_buffer(s, buf, len))
                lua_pushlstring(L, buf, len);
            break;
        }
        case T_ARRAY: {
            uint32_t n = bh_stream_get_be32(s);
            if (bh_stream_error(s))
                break;
            if (n > MAX_STRING) {
                bh_stream_set_error(s, EINVAL, "vmstate '%s': array '%s' "
                                    "claims %u items", e->idstr, f->name, n);
                break;
            }
            lua_createtable(L, (int)MIN(n, 4096), 0);
            for (uint32_t k = 0; k < n && !bh_stream_error(s); k++) {
                push_scalar(s, f->of, L);
                lua_rawseti(L, -2, (lua_Integer)k + 1);
            }
            break;
        }
        default:
            push_scalar(s, f->type, L);
            break;
        }
        if (bh_stream_error(s)) {
            lua_settop(L, top);
            bh_stream_take_error(s, errp);
            g_prefix_error(errp, "vmstate '%s', field '%s': ", e->idstr,
                           f->name);
            return -EINVAL;
        }
        lua_setfield(L, top + 1, f->name);
    }
    int *ref = g_new(int, 1);
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
    *pending = ref;
    lua_settop(L, top);
    return 0;
}

static void v_commit(void *opaque, void *pending)
{
    LEntry *e = opaque;
    lua_State *L = e->L;
    int *ref = pending, top = lua_gettop(L);

    lua_rawgeti(L, LUA_REGISTRYINDEX, e->set_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, *ref);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK)
        g_warning("vmstate '%s': set() failed: %s", e->idstr,
                  lua_tostring(L, -1));
    luaL_unref(L, LUA_REGISTRYINDEX, *ref);
    g_free(ref);
    lua_settop(L, top);
}

static void v_discard(void *opaque, void *pending)
{
    LEntry *e = opaque;
    int *ref = pending;
    luaL_unref(e->L, LUA_REGISTRYINDEX, *ref);
    g_free(ref);
}

static void v_release(void *opaque)
{
    LEntry *e = opaque;
    luaL_unref(e->L, LUA_REGISTRYINDEX, e->get_ref);
    luaL_unref(e->L, LUA_REGISTRYINDEX, e->set_ref);
    for (int i = 0; i < e->n; i++)
        g_free(e->f[i].name);
    g_free(e->f);
    g_free(e->idstr);
    g_free(e);
}

static const BhSavevmHandlers handlers = {
    .save = v_save, .load = v_load, .commit = v_commit,
    .discard = v_discard, .release = v_release,
};

static int field_int(lua_State *L, int idx, const char *k, int def)
{
    lua_getfield(L, idx, k);
    int v = lua_isnil(L, -1) ? def : (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return v;
}

static const char *field_str(lua_State *L, int idx, const char *k, int pos)
{
    lua_getfield(L, idx, k);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_rawgeti(L, idx, pos);
    }
    const char *v = lua_tostring(L, -1);
    lua_pop(L, 1);   /* the table keeps the string alive */
    return v;
}

static int parse_type(lua_State *L, const char *t, const char *field)
{
    for (int i = 0; type_names[i]; i++)
        if (t && !strcmp(t, type_names[i]))
            return i;
    return luaL_error(L, "bh.vmstate.register: field '%s' has unknown type "
                      "'%s' (u8..u64, i8..i64, bool, string, buffer, array)",
                      field, t ? t : "nil");
}

/* bh.vmstate.register{...} (see the top of the file) */
static int l_register(lua_State *L)
{
    LEntry *e;
    const char *name;
    int n, instance;
    GError *err = NULL;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "name");
    name = luaL_checkstring(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "fields");
    luaL_argcheck(L, lua_istable(L, -1), 1, "fields must be a list");
    int fidx = lua_gettop(L);
    lua_getfield(L, 1, "get");
    luaL_argcheck(L, lua_isfunction(L, -1), 1, "get must be a function");
    lua_getfield(L, 1, "set");
    luaL_argcheck(L, lua_isfunction(L, -1), 1, "set must be a function");
    lua_pop(L, 2);

    n = (int)lua_rawlen(L, fidx);
    e = g_new0(LEntry, 1);
    e->L = L;
    e->idstr = g_strdup(name);
    e->version = field_int(L, 1, "version", 1);
    e->min_version = field_int(L, 1, "min_version", e->version);
    instance = field_int(L, 1, "instance", 0);
    e->f = g_new0(LField, n ? n : 1);
    e->get_ref = e->set_ref = LUA_NOREF;
    for (int i = 0; i < n; i++) {
        LField *f = &e->f[i];
        lua_rawgeti(L, fidx, i + 1);
        int t = lua_gettop(L);
        if (!lua_istable(L, t)) {
            v_release(e);
            return luaL_error(L, "bh.vmstate.register: field %d must be a "
                              "table like {\"name\", \"u32\"}", i + 1);
        }
        const char *fname = field_str(L, t, "name", 1);
        const char *ftype = field_str(L, t, "type", 2);
        if (!fname) {
            v_release(e);
            return luaL_error(L, "bh.vmstate.register: field %d has no name",
                              i + 1);
        }
        f->name = g_strdup(fname);
        e->n = i + 1;
        f->type = parse_type(L, ftype, fname);
        f->version = field_int(L, t, "version", 0);
        if (f->type == T_BUFFER)
            f->size = (uint32_t)field_int(L, t, "size", -1);
        if (f->type == T_BUFFER && (int32_t)f->size < 0) {
            v_release(e);
            return luaL_error(L, "bh.vmstate.register: buffer '%s' needs "
                              "size=", fname);
        }
        if (f->type == T_ARRAY) {
            lua_getfield(L, t, "of");
            f->of = parse_type(L, lua_tostring(L, -1), fname);
            lua_pop(L, 1);
            if (f->of >= T_STRING) {
                v_release(e);
                return luaL_error(L, "bh.vmstate.register: array '%s' must "
                                  "hold a scalar type", fname);
            }
        }
        if (f->version > e->version) {
            v_release(e);
            return luaL_error(L, "bh.vmstate.register: field '%s' has version"
                              " %d, newer than the entry's %d", fname,
                              f->version, e->version);
        }
        lua_pop(L, 1);
    }
    lua_getfield(L, 1, "get");
    e->get_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, 1, "set");
    e->set_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (bh_savevm_register_handlers(name, (uint32_t)instance, e->version,
                                    &handlers, e, &err) < 0) {
        v_release(e);
        return bh_lua_error(L, err);
    }
    return 0;
}

static int l_unregister(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_Integer inst = luaL_optinteger(L, 2, 0);
    lua_pushboolean(L, bh_savevm_unregister(name, (uint32_t)inst));
    return 1;
}

static const luaL_Reg vmstate_regs[] = {
    { "register", l_register },
    { "unregister", l_unregister },
    { NULL, NULL },
};

void bh_lua_vmstate_register(lua_State *L, int module_index)
{
    luaL_newlib(L, vmstate_regs);
    lua_setfield(L, module_index, "vmstate");
}
