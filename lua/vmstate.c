/* SPDX-License-Identifier: BSD-3-Clause */
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
 *   bh.vmstate.sections(bytes | node [, {size =, page_size =, sizes =}])
 *   bh.vmstate.read(node, pos, len) -> the bytes of node's vmstate area
 *
 * sections() lists a savevm stream's sections without loading anything
 * (bh_savevm_scan): the stream is a string, or the vmstate area of a node
 * (a snapshot view: node:snapshot_open) up to size bytes.  It returns
 * { version =, machine =, page_size =, complete =, eof_offset =,
 *   vmdesc = JSON string, vmdesc_offset =, error =, stop_offset =,
 *   sections = { {section_id =, idstr =, instance_id =, version_id =,
 *                 offset =, size =, records =, iterative =, ended =}, ...} }
 * and raises an error only when the bytes are not a savevm stream.
 * sizes = { {idstr =, instance_id =, size =}, ... } gives the FULL
 * sections' sizes in stream order (bh_savevm_scan_sized: for streams
 * without footers); described = true in the result says they were used.
 *
 * subsections = { {name = "counter/extra", version = 1, min_version = 1,
 *                  fields = {...}, needed = function(state) ... end}, ... }
 * adds QEMU subsections: fields of the same state table that are saved
 * only when needed(state) is true (always without needed), after the
 * entry's fields, as u8 5, the name (which starts with the entry's name),
 * u32 version, then the fields.  A stream without a subsection loads as
 * one whose subsection was not needed: its fields are absent from the
 * table set() receives.  Unknown keys, in the entry, a subsection or a
 * field, are refused by name: a misspelt key would silently drop state.
 *
 * Field types: u8 u16 u32 u64 i8 i16 i32 i64 bool (one byte), string (u32
 * length + bytes), buffer (exactly size bytes), array (u32 count + items
 * of type `of`, a scalar type).  Big-endian, as QEMU's savevm stream.  A
 * field with version = N is saved always and loaded only from a stream of
 * version N or later.  Saving also describes each field for the stream's
 * JSON trailer (bh_savevm_describe_field): a string as NAME.length and
 * NAME, an array as NAME.count and its items.  Loading decodes into a new table that set()
 * receives only once the whole stream was read (savevm.h's two phases).
 */
#include <errno.h>
#include <stdarg.h>
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

/* The entry's own fields, or one subsection's. */
typedef struct {
    char *name;
    int version, min_version;
    LField *f;
    int n;
    int needed_ref;   /* subsections: LUA_NOREF means always saved */
} LDesc;

typedef struct {
    lua_State *L;
    int get_ref, set_ref;
    char *idstr;
    LDesc top;        /* top.name is idstr */
    LDesc *sub;
    int nsub;
} LEntry;

static int lerr(BhError **errp, LEntry *e, const char *fmt, const char *a)
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

/* QEMU's names and the sizes of the scalar types, for the description
 * savevm appends to the stream (bh_savevm_describe_field). */
static const char *const qemu_type_names[] = { "uint8", "uint16", "uint32",
    "uint64", "int8", "int16", "int32", "int64", "bool" };
static const uint8_t scalar_sizes[] = { 1, 2, 4, 8, 1, 2, 4, 8, 1 };

static void describe_count(BhStream *s, const char *name, const char *what)
{
    g_autofree char *n = g_strdup_printf("%s.%s", name, what);
    bh_savevm_describe_field(s, n, -1, "uint32", 4);
}

/* Write d's fields from the state table at tidx, and describe them: a
 * string as NAME.length and NAME (a buffer), an array as NAME.count and
 * its items, NAME with their index. */
static int vmstate_save_fields(LEntry *e, const LDesc *d, BhStream *s, int tidx,
                       BhError **errp)
{
    lua_State *L = e->L;
    int ret = 0;

    for (int i = 0; i < d->n && ret == 0; i++) {
        LField *f = &d->f[i];
        const char *why = NULL;
        size_t len;

        lua_getfield(L, tidx, f->name);
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
            if (f->type == T_STRING) {
                bh_stream_put_be32(s, (uint32_t)len);
                describe_count(s, f->name, "length");
            }
            bh_stream_put_buffer(s, p, len);
            bh_savevm_describe_field(s, f->name, -1, "buffer", len);
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
            describe_count(s, f->name, "count");
            for (lua_Integer k = 1; k <= n && !why; k++) {
                lua_rawgeti(L, -1, k);
                if (!put_scalar(s, f->of, L, -1, &why)) {
                    why = why ? why : "a valid item";
                } else {
                    why = NULL;
                    bh_savevm_describe_field(s, f->name, (int)(k - 1),
                                             qemu_type_names[f->of],
                                             scalar_sizes[f->of]);
                }
                lua_pop(L, 1);
            }
            break;
        }
        default:
            if (put_scalar(s, f->type, L, -1, &why)) {
                why = NULL;
                bh_savevm_describe_field(s, f->name, -1,
                                         qemu_type_names[f->type],
                                         scalar_sizes[f->type]);
            }
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
    return ret;
}

/* needed(state) of a subsection: true without one, or if it says so. */
static int vmstate_needed(LEntry *e, const LDesc *d, int tidx, bool *needed,
                      BhError **errp)
{
    lua_State *L = e->L;

    *needed = true;
    if (d->needed_ref == LUA_NOREF)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, d->needed_ref);
    lua_pushvalue(L, tidx);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        g_autofree char *m = g_strdup_printf("subsection '%s': needed() "
                                             "failed: ", d->name);
        int r = lerr(errp, e, m, lua_tostring(L, -1));
        lua_pop(L, 1);
        return r;
    }
    *needed = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return 0;
}

static int v_save(void *opaque, BhStream *s, BhError **errp)
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
    ret = vmstate_save_fields(e, &e->top, s, top + 1, errp);
    for (int i = 0; i < e->nsub && ret == 0; i++) {
        const LDesc *d = &e->sub[i];
        bool needed;
        ret = vmstate_needed(e, d, top + 1, &needed, errp);
        if (ret < 0 || !needed)
            continue;
        bh_savevm_describe_subsection(s, d->name, d->version);
        bh_stream_put_u8(s, BH_SAVEVM_SUBSECTION);
        bh_stream_put_counted_string(s, d->name);
        bh_stream_put_be32(s, (uint32_t)d->version);
        ret = vmstate_save_fields(e, d, s, top + 1, errp);
    }
    if (ret == 0 && bh_stream_error(s))
        ret = bh_stream_take_error(s, errp);
out:
    lua_settop(L, top);
    return ret;
}

/* Read d's fields of a stream written at version_id into the table at
 * tidx.  0, or -EINVAL with errp set. */
static int vmstate_load_fields(LEntry *e, const LDesc *d, BhStream *s,
                       int version_id, int tidx, BhError **errp)
{
    lua_State *L = e->L;

    for (int i = 0; i < d->n; i++) {
        LField *f = &d->f[i];
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
            lua_settop(L, tidx);
            bh_stream_take_error(s, errp);
            bh_error_prefix(errp, "vmstate '%s', field '%s': ", e->idstr,
                           f->name);
            return -EINVAL;
        }
        lua_setfield(L, tidx, f->name);
    }
    return 0;
}

/* The subsections after the fields, as QEMU reads them: each one that
 * starts with this entry's name must be known; anything else ends them
 * (and is the section footer's business). */
static int vmstate_load_subsections(LEntry *e, BhStream *s, int tidx, BhError **errp)
{
    uint8_t hdr[2 + 256];

    for (;;) {
        size_t avail = bh_stream_peek(s, hdr, sizeof(hdr) - 1, 0);
        const LDesc *d = NULL;
        char name[256];
        uint32_t version;

        if (avail < 2 || hdr[0] != BH_SAVEVM_SUBSECTION ||
            avail < 2 + (size_t)hdr[1])
            return 0;
        hdr[2 + hdr[1]] = '\0';
        if (strncmp((char *)hdr + 2, e->idstr, strlen(e->idstr)))
            return 0;
        for (int i = 0; i < e->nsub && !d; i++)
            if (!strcmp(e->sub[i].name, (char *)hdr + 2))
                d = &e->sub[i];
        if (!d)
            return bh_error_set(errp, ENOENT, "vmstate '%s': unknown "
                                "subsection '%s'", e->idstr,
                                (char *)hdr + 2);
        bh_stream_get_u8(s);
        bh_stream_get_counted_string(s, name);
        version = bh_stream_get_be32(s);
        if (bh_stream_error(s))
            return bh_stream_take_error(s, errp);
        if (version > (uint32_t)d->version || (int)version < d->min_version)
            return bh_error_set(errp, EINVAL, "vmstate '%s': subsection '%s'"
                                " has version %u; this script reads %d to %d",
                                e->idstr, d->name, version, d->min_version,
                                d->version);
        int r = vmstate_load_fields(e, d, s, (int)version, tidx, errp);
        if (r < 0)
            return r;
    }
}

static int v_load(void *opaque, BhStream *s, int version_id, void **pending,
                  BhError **errp)
{
    LEntry *e = opaque;
    lua_State *L = e->L;
    int top = lua_gettop(L);

    if (version_id < e->top.min_version)
        return bh_error_set(errp, EINVAL, "vmstate '%s': stream version %d "
                            "is older than the oldest this script reads (%d)",
                            e->idstr, version_id, e->top.min_version);
    lua_createtable(L, 0, e->top.n);
    int r = vmstate_load_fields(e, &e->top, s, version_id, top + 1, errp);
    if (r == 0)
        r = vmstate_load_subsections(e, s, top + 1, errp);
    if (r < 0) {
        lua_settop(L, top);
        return r;
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

static void vmstate_desc_clear(lua_State *L, LDesc *d)
{
    for (int i = 0; i < d->n; i++)
        g_free(d->f[i].name);
    g_free(d->f);
    luaL_unref(L, LUA_REGISTRYINDEX, d->needed_ref);
    g_free(d->name);   /* for the entry's own: its idstr */
}

static void v_release(void *opaque)
{
    LEntry *e = opaque;
    luaL_unref(e->L, LUA_REGISTRYINDEX, e->get_ref);
    luaL_unref(e->L, LUA_REGISTRYINDEX, e->set_ref);
    vmstate_desc_clear(e->L, &e->top);
    for (int i = 0; i < e->nsub; i++)
        vmstate_desc_clear(e->L, &e->sub[i]);
    g_free(e->sub);
    g_free(e);
}

static const BhSavevmHandlers handlers = {
    .save = v_save, .load = v_load, .commit = v_commit,
    .discard = v_discard, .release = v_release,
};

/* Registration.  Errors free the partly built entry (vmstate_reg_fail), since a
 * Lua error jumps past any cleanup of the caller. */

static G_GNUC_PRINTF(3, 4) int vmstate_reg_fail(lua_State *L, LEntry *e,
                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lua_pushstring(L, "bh.vmstate.register: ");
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    v_release(e);
    return lua_error(L);
}

/* Refuse any key of the table at idx not in known (where: what it is);
 * n_pos: how many leading positional keys (1..n_pos) are allowed. */
static void vmstate_check_keys(lua_State *L, LEntry *e, int idx, const char *where,
                       const char *const *known, int n_pos)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        bool fine = false;
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (int i = 0; known[i] && !fine; i++)
                fine = !strcmp(k, known[i]);
        } else if (lua_isinteger(L, -1)) {
            lua_Integer k = lua_tointeger(L, -1);
            fine = k >= 1 && k <= n_pos;
        }
        if (!fine) {
            const char *k = lua_type(L, -1) == LUA_TSTRING ?
                            lua_tostring(L, -1) : luaL_tolstring(L, -1, NULL);
            luaL_Buffer b;   /* Lua memory: the error jumps past C frees */
            luaL_buffinit(L, &b);
            for (int i = 0; known[i]; i++) {
                luaL_addstring(&b, i ? ", " : "");
                luaL_addstring(&b, known[i]);
            }
            luaL_pushresult(&b);
            vmstate_reg_fail(L, e, "%s: unknown key '%s' (known: %s%s)",
                             where, k, lua_tostring(L, -1),
                             n_pos ? ", and positional name and type" : "");
        }
    }
}

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

static int parse_type(lua_State *L, LEntry *e, const char *t,
                      const char *field)
{
    for (int i = 0; type_names[i]; i++)
        if (t && !strcmp(t, type_names[i]))
            return i;
    return vmstate_reg_fail(L, e, "field '%s' has unknown type '%s' (u8..u64, "
                    "i8..i64, bool, string, buffer, array)", field,
                    t ? t : "nil");
}

static const char *const field_keys[] = { "name", "type", "version", "size",
                                          "of", NULL };

/* Fill d (whose name and version are set) from the list at fidx. */
static void vmstate_parse_fields(lua_State *L, LEntry *e, LDesc *d, int fidx)
{
    int n = (int)lua_rawlen(L, fidx);

    d->f = g_new0(LField, n ? n : 1);
    for (int i = 0; i < n; i++) {
        LField *f = &d->f[i];
        lua_rawgeti(L, fidx, i + 1);
        int t = lua_gettop(L);
        if (!lua_istable(L, t))
            vmstate_reg_fail(L, e, "%s: field %d must be a table like {\"name\", "
                     "\"u32\"}", d->name, i + 1);
        const char *fname = field_str(L, t, "name", 1);
        const char *ftype = field_str(L, t, "type", 2);
        if (!fname)
            vmstate_reg_fail(L, e, "%s: field %d has no name", d->name, i + 1);
        /* On the Lua stack: an error jumps past any C cleanup. */
        const char *where = lua_pushfstring(L, "%s: field '%s'", d->name,
                                            fname);
        vmstate_check_keys(L, e, t, where, field_keys, 2);
        lua_pop(L, 1);
        f->name = g_strdup(fname);
        d->n = i + 1;
        f->type = parse_type(L, e, ftype, fname);
        f->version = field_int(L, t, "version", 0);
        if (f->type == T_BUFFER)
            f->size = (uint32_t)field_int(L, t, "size", -1);
        if (f->type == T_BUFFER && (int32_t)f->size < 0)
            vmstate_reg_fail(L, e, "buffer '%s' needs size=", fname);
        if (f->type == T_ARRAY) {
            lua_getfield(L, t, "of");
            f->of = parse_type(L, e, lua_tostring(L, -1), fname);
            lua_pop(L, 1);
            if (f->of >= T_STRING)
                vmstate_reg_fail(L, e, "array '%s' must hold a scalar type", fname);
        }
        if (f->version > d->version)
            vmstate_reg_fail(L, e, "field '%s' has version %d, newer than %s's %d",
                     fname, f->version, d->name, d->version);
        lua_pop(L, 1);
    }
}

static const char *const entry_keys[] = { "name", "version", "min_version",
    "instance", "fields", "subsections", "get", "set", NULL };
static const char *const sub_keys[] = { "name", "version", "min_version",
    "fields", "needed", NULL };

/* subsections = { {...}, ... } at sidx. */
static void vmstate_parse_subsections(lua_State *L, LEntry *e, int sidx)
{
    int n = (int)lua_rawlen(L, sidx);

    e->sub = g_new0(LDesc, n ? n : 1);
    for (int i = 0; i < n; i++) {
        LDesc *d = &e->sub[i];
        d->needed_ref = LUA_NOREF;
        e->nsub = i + 1;
        lua_rawgeti(L, sidx, i + 1);
        int t = lua_gettop(L);
        if (!lua_istable(L, t))
            vmstate_reg_fail(L, e, "subsection %d must be a table", i + 1);
        lua_getfield(L, t, "name");
        const char *name = lua_tostring(L, -1);
        lua_pop(L, 1);
        if (!name)
            vmstate_reg_fail(L, e, "subsection %d has no name", i + 1);
        d->name = g_strdup(name);
        const char *where = lua_pushfstring(L, "subsection '%s'", name);
        vmstate_check_keys(L, e, t, where, sub_keys, 0);
        lua_pop(L, 1);
        /* QEMU tells its subsections from what follows by this prefix. */
        if (strncmp(name, e->idstr, strlen(e->idstr)) ||
            strlen(name) > 255)
            vmstate_reg_fail(L, e, "subsection '%s' must be named '%s/...' (at most "
                     "255 bytes)", name, e->idstr);
        for (int j = 0; j < i; j++)
            if (!strcmp(e->sub[j].name, name))
                vmstate_reg_fail(L, e, "subsection '%s' is given twice", name);
        d->version = field_int(L, t, "version", 1);
        d->min_version = field_int(L, t, "min_version", d->version);
        if (lua_getfield(L, t, "fields") != LUA_TTABLE)
            vmstate_reg_fail(L, e, "subsection '%s': fields must be a list", name);
        vmstate_parse_fields(L, e, d, lua_gettop(L));
        lua_pop(L, 1);
        lua_getfield(L, t, "needed");
        if (lua_isfunction(L, -1))
            d->needed_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        else if (!lua_isnil(L, -1))
            vmstate_reg_fail(L, e, "subsection '%s': needed must be a function",
                     name);
        else
            lua_pop(L, 1);
        lua_pop(L, 1);
    }
}

/* bh.vmstate.register{...} (see the top of the file) */
static int l_register(lua_State *L)
{
    LEntry *e;
    const char *name;
    int instance;
    BhError *err = NULL;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
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
    lua_getfield(L, 1, "subsections");
    luaL_argcheck(L, lua_isnil(L, -1) || lua_istable(L, -1), 1,
                  "subsections must be a list");
    int sidx = lua_gettop(L);

    e = g_new0(LEntry, 1);
    e->L = L;
    e->idstr = g_strdup(name);
    e->top.name = e->idstr;
    e->top.needed_ref = LUA_NOREF;
    e->get_ref = e->set_ref = LUA_NOREF;
    vmstate_check_keys(L, e, 1, lua_pushfstring(L, "'%s'", name), entry_keys,
                       0);
    lua_pop(L, 1);
    e->top.version = field_int(L, 1, "version", 1);
    e->top.min_version = field_int(L, 1, "min_version", e->top.version);
    instance = field_int(L, 1, "instance", 0);
    vmstate_parse_fields(L, e, &e->top, fidx);
    if (lua_istable(L, sidx))
        vmstate_parse_subsections(L, e, sidx);
    lua_getfield(L, 1, "get");
    e->get_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, 1, "set");
    e->set_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (bh_savevm_register_handlers(name, (uint32_t)instance,
                                    e->top.version, &handlers, e, &err) < 0) {
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

static void set_int(lua_State *L, const char *k, uint64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static void push_scan(lua_State *L, const BhSavevmScan *sc)
{
    lua_createtable(L, 0, 11);
    set_int(L, "version", sc->version);
    set_int(L, "page_size", sc->page_size);
    if (sc->machine) {
        lua_pushstring(L, sc->machine);
        lua_setfield(L, -2, "machine");
    }
    lua_pushboolean(L, sc->complete);
    lua_setfield(L, -2, "complete");
    if (sc->complete)
        set_int(L, "eof_offset", sc->eof_offset);
    if (sc->vmdesc) {
        lua_pushstring(L, sc->vmdesc);
        lua_setfield(L, -2, "vmdesc");
        set_int(L, "vmdesc_offset", sc->vmdesc_offset);
    }
    lua_pushboolean(L, sc->described);
    lua_setfield(L, -2, "described");
    if (sc->error) {
        lua_pushstring(L, sc->error);
        lua_setfield(L, -2, "error");
        set_int(L, "stop_offset", sc->stop_offset);
    }
    lua_createtable(L, (int)sc->sections->len, 0);
    for (guint i = 0; i < sc->sections->len; i++) {
        const BhSavevmSection *x = &g_array_index(sc->sections,
                                                  BhSavevmSection, i);
        lua_createtable(L, 0, 9);
        set_int(L, "section_id", x->section_id);
        lua_pushstring(L, x->idstr);
        lua_setfield(L, -2, "idstr");
        set_int(L, "instance_id", x->instance_id);
        set_int(L, "version_id", x->version_id);
        set_int(L, "offset", x->offset);
        set_int(L, "size", x->size);
        set_int(L, "records", x->records);
        lua_pushboolean(L, x->iterative);
        lua_setfield(L, -2, "iterative");
        lua_pushboolean(L, x->ended);
        lua_setfield(L, -2, "ended");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "sections");
}

/* bh.vmstate.sections(bytes | node [, {size =, page_size =, sizes =}]) */
static int l_sections(lua_State *L)
{
    uint64_t size = UINT64_MAX, page_size = 0;
    BhStream *s;
    BhError *err = NULL;

    BhSavevmSizeHint *hints = NULL;
    size_t n_hints = 0;

    lua_settop(L, 2);
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "size");
        if (!lua_isnil(L, -1))
            size = bh_lua_check_u64(L, -1, "size");
        lua_getfield(L, 2, "page_size");
        if (!lua_isnil(L, -1))
            page_size = bh_lua_check_u64(L, -1, "page_size");
        lua_pop(L, 2);
        /* sizes = { {idstr =, instance_id =, size =}, ... } stays at 3,
         * so the idstr pointers stay valid during the scan */
        lua_getfield(L, 2, "sizes");
        if (!lua_isnil(L, 3)) {
            luaL_argcheck(L, lua_istable(L, 3), 2, "sizes must be a list");
            n_hints = lua_rawlen(L, 3);
            /* a userdata (at 4), so that a Lua error cannot leak it */
            hints = lua_newuserdatauv(L, sizeof(*hints) * MAX(n_hints, 1),
                                      0);
            for (size_t i = 0; i < n_hints; i++) {
                lua_rawgeti(L, 3, (lua_Integer)i + 1);
                luaL_argcheck(L, lua_istable(L, -1), 2,
                              "sizes: each entry is {idstr =, instance_id =, "
                              "size =}");
                lua_getfield(L, -1, "idstr");
                hints[i].idstr = luaL_checkstring(L, -1);
                lua_getfield(L, -2, "instance_id");
                hints[i].instance_id = (uint32_t)bh_lua_check_u64(L, -1,
                                                                  "instance_id");
                lua_getfield(L, -3, "size");
                hints[i].size = bh_lua_check_u64(L, -1, "size");
                lua_pop(L, 4);
            }
        }
    }
    if (lua_type(L, 1) == LUA_TSTRING) {
        size_t len;
        const char *d = lua_tolstring(L, 1, &len);
        s = bh_stream_new_mem_reader(d, len);
    } else {
        BhNode *bs = bh_lua_checknode(L, 1);
        luaL_argcheck(L, size != UINT64_MAX, 2, "a node needs {size = N}");
        s = bh_node_vmstate_stream(bs, false, size);
    }
    BhSavevmScan *sc = bh_savevm_scan_sized(s, page_size, hints, n_hints,
                                            &err);
    bh_stream_close(s, NULL);
    if (!sc)
        return bh_lua_error(L, err);
    push_scan(L, sc);
    bh_savevm_scan_free(sc);
    return 1;
}

/* bh.vmstate.read(node, pos, len) -> string (the node's vmstate area) */
static int l_read(lua_State *L)
{
    BhNode *bs = bh_lua_checknode(L, 1);
    uint64_t pos = bh_lua_check_u64(L, 2, "pos");
    uint64_t len = bh_lua_check_u64(L, 3, "len");
    BhError *err = NULL;

    luaL_argcheck(L, len <= (64u << 20), 3, "at most 64 MiB at a time");
    luaL_Buffer b;
    char *buf = luaL_buffinitsize(L, &b, (size_t)len);
    if (bh_node_load_vmstate(bs, buf, pos, (size_t)len, &err) < 0)
        return bh_lua_error(L, err);
    luaL_pushresultsize(&b, (size_t)len);
    return 1;
}

static const luaL_Reg vmstate_regs[] = {
    { "register", l_register },
    { "unregister", l_unregister },
    { "sections", l_sections },
    { "read", l_read },
    { NULL, NULL },
};

void bh_lua_vmstate_register(lua_State *L, int module_index)
{
    luaL_newlib(L, vmstate_regs);
    lua_setfield(L, module_index, "vmstate");
}
