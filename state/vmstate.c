/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The BhVmsd interpreter (vmstate.h): walks a description's field table to
 * write a struct into a BhStream, or to read one back into a scratch copy
 * that is committed only when the whole state — nested structs,
 * subsections, hooks — loaded without error.
 *
 * Every failure is also recorded as the stream's sticky error, so a caller
 * composing several states (savevm) sees the stream stop at the first bad
 * byte, and the BhError says which description and field it was in.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "blkhost/error.h"
#include "blkhost/vmstate.h"
#include <blkhost/glib.h>

#include "vmdesc.h"

#define QEMU_VM_SUBSECTION 0x05

static int vm_load(BhStream *s, const BhVmsd *vmsd, void *opaque,
                   int version_id, BhError **errp);
static int vm_save(BhStream *s, const BhVmsd *vmsd, void *opaque,
                   int version_id, GString *desc, BhError **errp);

/* Fail with a message recorded both in the stream and in errp. */
static int vm_fail(BhStream *s, BhError **errp, int errnum, const char *fmt,
                   ...) G_GNUC_PRINTF(4, 5);
static int vm_fail(BhStream *s, BhError **errp, int errnum, const char *fmt,
                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    bh_stream_set_error(s, errnum, "%s", msg);
    int r = bh_error_set(errp, errnum, "%s", msg);
    g_free(msg);
    return r;
}

/* The value of a VARRAY count or VBUFFER size member. */
static int64_t vm_read_count(const BhVmField *f, const void *opaque)
{
    const uint8_t *p = (const uint8_t *)opaque + f->num_offset;
    switch (f->num_type) {
    case BH_VMT_U8: return *p;
    case BH_VMT_U16: { uint16_t v; memcpy(&v, p, sizeof(v)); return v; }
    case BH_VMT_U32: { uint32_t v; memcpy(&v, p, sizeof(v)); return v; }
    case BH_VMT_I32: { int32_t v; memcpy(&v, p, sizeof(v)); return v; }
    default: return -1;
    }
}

/*
 * How many elements of how many bytes the field has in this state.
 * Counts come from the struct (during a load: from the scratch copy, where
 * an earlier field just put the stream's value), so they are checked
 * against the inline capacity before anything is touched.
 */
static int vm_extent(BhStream *s, const BhVmsd *vmsd, const BhVmField *f,
                     const void *opaque, uint32_t *n_elems, size_t *size,
                     BhError **errp)
{
    *n_elems = 1;
    *size = f->size;
    if (f->flags & BH_VMS_ARRAY) {
        *n_elems = f->num;
    } else if (f->flags & (BH_VMS_VARRAY_ANY | BH_VMS_VBUFFER)) {
        int64_t c = vm_read_count(f, opaque);
        const char *what = f->flags & BH_VMS_VBUFFER ? "size" : "count";
        uint64_t cap = f->flags & BH_VMS_VBUFFER ? f->size : f->num;
        if (c < 0 && (f->num_type == BH_VMT_I32))
            return vm_fail(s, errp, EINVAL, "%s.%s: %s %" PRId64 " is "
                           "negative", vmsd->name, f->name, what, c);
        if (c < 0)
            return vm_fail(s, errp, EINVAL, "%s.%s: bad %s field type %d "
                           "(want U8, U16, U32 or I32)", vmsd->name,
                           f->name, what, (int)f->num_type);
        if ((uint64_t)c > cap)
            return vm_fail(s, errp, EINVAL, "%s.%s: %s %" PRId64 " exceeds "
                           "the capacity of %" PRIu64, vmsd->name, f->name,
                           what, c, cap);
        if (f->flags & BH_VMS_VBUFFER)
            *size = (size_t)c;
        else
            *n_elems = (uint32_t)c;
    }
    return 0;
}

static int vm_put_elem(BhStream *s, const BhVmField *f, void *p, size_t size,
                       GString *desc, BhError **errp)
{
    switch (f->type) {
    case BH_VMT_U8: case BH_VMT_I8:
        bh_stream_put_u8(s, *(uint8_t *)p);
        break;
    case BH_VMT_U16: case BH_VMT_I16: {
        uint16_t v; memcpy(&v, p, sizeof(v)); bh_stream_put_be16(s, v);
        break;
    }
    case BH_VMT_U32: case BH_VMT_I32: {
        uint32_t v; memcpy(&v, p, sizeof(v)); bh_stream_put_be32(s, v);
        break;
    }
    case BH_VMT_U64: case BH_VMT_I64: {
        uint64_t v; memcpy(&v, p, sizeof(v)); bh_stream_put_be64(s, v);
        break;
    }
    case BH_VMT_BOOL:
        bh_stream_put_u8(s, *(bool *)p ? 1 : 0);
        break;
    case BH_VMT_BUFFER:
        bh_stream_put_buffer(s, p, size);
        break;
    case BH_VMT_STRUCT:
        return vm_save(s, f->vmsd, p, f->vmsd->version_id, desc, errp);
    default:
        return vm_fail(s, errp, EINVAL, "unknown field type %d",
                       (int)f->type);
    }
    return bh_stream_take_error(s, errp);
}

static int vm_get_elem(BhStream *s, const BhVmField *f, void *p, size_t size,
                       BhError **errp)
{
    switch (f->type) {
    case BH_VMT_U8: case BH_VMT_I8: {
        uint8_t v = bh_stream_get_u8(s);
        if (!bh_stream_error(s))
            *(uint8_t *)p = v;
        break;
    }
    case BH_VMT_U16: case BH_VMT_I16: {
        uint16_t v = bh_stream_get_be16(s);
        if (!bh_stream_error(s))
            memcpy(p, &v, sizeof(v));
        break;
    }
    case BH_VMT_U32: case BH_VMT_I32: {
        uint32_t v = bh_stream_get_be32(s);
        if (!bh_stream_error(s))
            memcpy(p, &v, sizeof(v));
        break;
    }
    case BH_VMT_U64: case BH_VMT_I64: {
        uint64_t v = bh_stream_get_be64(s);
        if (!bh_stream_error(s))
            memcpy(p, &v, sizeof(v));
        break;
    }
    case BH_VMT_BOOL: {
        uint8_t v = bh_stream_get_u8(s);
        if (bh_stream_error(s))
            break;
        /* QEMU only ever writes 0 or 1; anything else is corruption. */
        if (v > 1)
            return vm_fail(s, errp, EINVAL, "bool value %u is not 0 or 1",
                           v);
        *(bool *)p = v;
        break;
    }
    case BH_VMT_BUFFER:
        bh_stream_get_buffer(s, p, size);
        break;
    case BH_VMT_STRUCT:
        return vm_load(s, f->vmsd, p, f->vmsd->version_id, errp);
    default:
        return vm_fail(s, errp, EINVAL, "unknown field type %d",
                       (int)f->type);
    }
    return bh_stream_take_error(s, errp);
}

static void vm_prefix_field(BhError **errp, const BhVmsd *vmsd,
                            const BhVmField *f, uint32_t i, uint32_t n)
{
    if (n > 1 || (f->flags & (BH_VMS_ARRAY | BH_VMS_VARRAY_ANY)))
        bh_error_prefix(errp, "%s.%s[%u]: ", vmsd->name, f->name, i);
    else
        bh_error_prefix(errp, "%s.%s: ", vmsd->name, f->name);
}

/* Run a hook; a hook that fails without a message gets one. */
static int vm_hook_result(BhStream *s, const BhVmsd *vmsd, const char *hook,
                          int r, BhError *e, BhError **errp)
{
    if (r == 0) {
        if (e)
            bh_error_free(e);
        return 0;
    }
    if (r > 0)
        r = -EINVAL;
    if (!e)
        e = bh_error_new(-r, "failed: %s", g_strerror(-r));
    bh_error_prefix(&e, "%s: %s: ", vmsd->name, hook);
    bh_stream_set_error(s, -r, "%s", bh_error_message(e));
    bh_error_propagate(errp, e);
    return r;
}

/* QEMU's type names in the vmdesc (its VMStateInfo names). */
static const char *vm_type_name(BhVmType t)
{
    switch (t) {
    case BH_VMT_U8: return "uint8";
    case BH_VMT_U16: return "uint16";
    case BH_VMT_U32: return "uint32";
    case BH_VMT_U64: return "uint64";
    case BH_VMT_I8: return "int8";
    case BH_VMT_I16: return "int16";
    case BH_VMT_I32: return "int32";
    case BH_VMT_I64: return "int64";
    case BH_VMT_BOOL: return "bool";
    case BH_VMT_BUFFER: return "buffer";
    case BH_VMT_STRUCT: return "struct";
    default: return "unknown";
    }
}

/* A saved element's description, as QEMU's vmsd_desc_field_start/end:
 * the index only for fields of several elements, the size after the
 * bytes are written; a struct's own description nests under "struct". */
static int vm_put_described(BhStream *s, const BhVmField *f, void *elem,
                            size_t size, uint32_t i, uint32_t n,
                            GString *desc, BhError **errp)
{
    if (!desc)
        return vm_put_elem(s, f, elem, size, NULL, errp);
    bh_vmdesc_sep(desc);
    g_string_append_c(desc, '{');
    bh_vmdesc_key(desc, "name");
    bh_vmdesc_str(desc, f->name);
    if (n > 1) {
        bh_vmdesc_key(desc, "index");
        g_string_append_printf(desc, "%" PRIu32, i);
    }
    bh_vmdesc_key(desc, "type");
    bh_vmdesc_str(desc, vm_type_name(f->type));
    if (f->type == BH_VMT_STRUCT) {
        bh_vmdesc_key(desc, "struct");
        g_string_append_c(desc, '{');
    }
    uint64_t start = bh_stream_tell(s);
    int r = vm_put_elem(s, f, elem, size, desc, errp);
    if (f->type == BH_VMT_STRUCT)
        g_string_append_c(desc, '}');
    bh_vmdesc_key(desc, "size");
    g_string_append_printf(desc, "%" PRIu64 "}", bh_stream_tell(s) - start);
    return r;
}

/* Every field present at version_id, element by element, written to or
 * read from s: saving and loading walk the table the same way.  desc
 * (saving only, may be NULL) receives the "fields" list. */
static int vm_fields(BhStream *s, const BhVmsd *vmsd, void *opaque,
                     int version_id, bool save, GString *desc,
                     BhError **errp)
{
    int r;
    for (const BhVmField *f = vmsd->fields; f && f->name; f++) {
        if (f->version_id > version_id)
            continue;
        uint32_t n;
        size_t size;
        if ((r = vm_extent(s, vmsd, f, opaque, &n, &size, errp)) < 0)
            return r;
        uint8_t *base = (uint8_t *)opaque + f->offset;
        for (uint32_t i = 0; i < n; i++) {
            uint8_t *elem = base + (size_t)i * size;
            r = save ? vm_put_described(s, f, elem, size, i, n, desc, errp)
                     : vm_get_elem(s, f, elem, size, errp);
            if (r < 0) {
                vm_prefix_field(errp, vmsd, f, i, n);
                return r;
            }
        }
    }
    return 0;
}

/* desc, if not NULL, receives the body of this description's object:
 * "vmsd_name", "version", "fields" and, when one was written,
 * "subsections" (vmdesc.h). */
static int vm_save(BhStream *s, const BhVmsd *vmsd, void *opaque,
                   int version_id, GString *desc, BhError **errp)
{
    int r;
    bool any_sub = false;
    if (bh_stream_error(s))
        return bh_stream_take_error(s, errp);
    if (vmsd->pre_save) {
        BhError *e = NULL;
        r = vmsd->pre_save(opaque, &e);
        r = vm_hook_result(s, vmsd, "pre_save", r, e, errp);
        if (r < 0)
            return r;
    }
    if (desc) {
        bh_vmdesc_key(desc, "vmsd_name");
        bh_vmdesc_str(desc, vmsd->name);
        bh_vmdesc_key(desc, "version");
        g_string_append_printf(desc, "%d", version_id);
        bh_vmdesc_key(desc, "fields");
        g_string_append_c(desc, '[');
    }
    r = vm_fields(s, vmsd, opaque, version_id, true, desc, errp);
    if (desc)
        g_string_append_c(desc, ']');
    if (r < 0)
        return r;
    for (const BhVmsd *const *sub = vmsd->subsections; sub && *sub; sub++) {
        const BhVmsd *sd = *sub;
        if (sd->needed && !sd->needed(opaque))
            continue;
        if (desc) {
            if (!any_sub) {
                bh_vmdesc_key(desc, "subsections");
                g_string_append_c(desc, '[');
            }
            bh_vmdesc_sep(desc);
            g_string_append_c(desc, '{');
        }
        any_sub = true;
        bh_stream_put_u8(s, QEMU_VM_SUBSECTION);
        bh_stream_put_counted_string(s, sd->name);
        bh_stream_put_be32(s, (uint32_t)sd->version_id);
        r = vm_save(s, sd, opaque, sd->version_id, desc, errp);
        if (desc)
            g_string_append_c(desc, '}');
        if (r < 0)
            return r;
    }
    if (desc && any_sub)
        g_string_append_c(desc, ']');
    return bh_stream_take_error(s, errp);
}

/*
 * Subsections follow the fields.  As in QEMU, a subsection marker that is
 * not followed by a name starting with our own name is not ours (it may be
 * the next thing of an enclosing description) and ends the list; a name
 * that is ours but unknown is an error, since we would lose its state.
 */
static int vm_load_subsections(BhStream *s, const BhVmsd *vmsd, void *opaque,
                               BhError **errp)
{
    size_t plen = strlen(vmsd->name);
    for (;;) {
        uint8_t hdr[2];
        char name[256];
        if (bh_stream_peek(s, hdr, 2, 0) < 2 || hdr[0] != QEMU_VM_SUBSECTION)
            break;
        if (hdr[1] < plen + 1)
            break;
        if (bh_stream_peek(s, name, hdr[1], 2) != hdr[1])
            break;
        name[hdr[1]] = '\0';
        if (strncmp(name, vmsd->name, plen) != 0)
            break;
        const BhVmsd *sd = NULL;
        for (const BhVmsd *const *sub = vmsd->subsections; sub && *sub; sub++)
            if (strcmp((*sub)->name, name) == 0)
                sd = *sub;
        if (!sd)
            return vm_fail(s, errp, ENOENT, "%s: unknown subsection '%s' in "
                           "stream at offset %" PRIu64, vmsd->name, name,
                           bh_stream_tell(s));
        bh_stream_skip(s, 2 + (size_t)hdr[1]);
        uint32_t v = bh_stream_get_be32(s);
        int r = bh_stream_take_error(s, errp);
        if (r == 0)
            r = vm_load(s, sd, opaque, (int)v, errp);
        if (r < 0) {
            bh_error_prefix(errp, "%s: subsection: ", vmsd->name);
            return r;
        }
    }
    return bh_stream_take_error(s, errp);
}

static int vm_load(BhStream *s, const BhVmsd *vmsd, void *opaque,
                   int version_id, BhError **errp)
{
    int r;
    if (bh_stream_error(s))
        return bh_stream_take_error(s, errp);
    if (version_id > vmsd->version_id)
        return vm_fail(s, errp, EINVAL, "%s: stream has version %d, newer "
                       "than the version %d this build knows", vmsd->name,
                       version_id, vmsd->version_id);
    if (version_id < vmsd->minimum_version_id)
        return vm_fail(s, errp, EINVAL, "%s: stream has version %d, older "
                       "than the oldest version %d this build loads",
                       vmsd->name, version_id, vmsd->minimum_version_id);
    if (vmsd->pre_load) {
        BhError *e = NULL;
        r = vmsd->pre_load(opaque, &e);
        r = vm_hook_result(s, vmsd, "pre_load", r, e, errp);
        if (r < 0)
            return r;
    }
    if ((r = vm_fields(s, vmsd, opaque, version_id, false, NULL, errp)) < 0)
        return r;
    if ((r = vm_load_subsections(s, vmsd, opaque, errp)) < 0)
        return r;
    if (vmsd->post_load) {
        BhError *e = NULL;
        r = vmsd->post_load(opaque, version_id, &e);
        r = vm_hook_result(s, vmsd, "post_load", r, e, errp);
        if (r < 0)
            return r;
    }
    return 0;
}

int bh_vmstate_save_v(BhStream *s, const BhVmsd *vmsd, void *opaque,
                      int version_id, BhError **errp)
{
    if (version_id > vmsd->version_id || version_id < vmsd->minimum_version_id)
        return vm_fail(s, errp, EINVAL, "%s: cannot save version %d; "
                       "versions %d to %d exist", vmsd->name, version_id,
                       vmsd->minimum_version_id, vmsd->version_id);
    return vm_save(s, vmsd, opaque, version_id, NULL, errp);
}

int bh_vmstate_save(BhStream *s, const BhVmsd *vmsd, void *opaque,
                    BhError **errp)
{
    return vm_save(s, vmsd, opaque, vmsd->version_id, NULL, errp);
}

int bh_vmstate_save_described(BhStream *s, const BhVmsd *vmsd, void *opaque,
                              GString *desc, BhError **errp)
{
    return vm_save(s, vmsd, opaque, vmsd->version_id, desc, errp);
}

void *bh_vmstate_load_copy(BhStream *s, const BhVmsd *vmsd, void *opaque,
                           int version_id, BhError **errp)
{
    if (vmsd->size == 0) {
        vm_fail(s, errp, EINVAL, "%s: description has no struct size, so "
                "it cannot be loaded into a copy", vmsd->name);
        return NULL;
    }
    void *copy = g_memdup2(opaque, vmsd->size);
    if (vm_load(s, vmsd, copy, version_id, errp) < 0) {
        g_free(copy);
        return NULL;
    }
    return copy;
}

void bh_vmstate_commit(const BhVmsd *vmsd, void *opaque, void *copy)
{
    memcpy(opaque, copy, vmsd->size);
    g_free(copy);
}

int bh_vmstate_load(BhStream *s, const BhVmsd *vmsd, void *opaque,
                    int version_id, BhError **errp)
{
    void *copy = bh_vmstate_load_copy(s, vmsd, opaque, version_id, errp);
    if (!copy)
        return bh_stream_error(s) ? bh_stream_error(s) : -EINVAL;
    bh_vmstate_commit(vmsd, opaque, copy);
    return 0;
}
