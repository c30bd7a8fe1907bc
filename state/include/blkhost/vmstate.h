/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhVmsd / BhVmField: declarative state descriptions, the
 * VMStateDescription of blkhost.
 *
 * A plugin describes a C struct once — which fields, of which types, since
 * which version — and bh_vmstate_save/load turn it into bytes of QEMU's
 * savevm stream and back.  A description has a version and a minimum
 * version it can still load; each field says from which version it exists;
 * optional subsections (sent only when their needed() test says so) carry
 * state added later without bumping the version.  savevm.h registers
 * descriptions so that savevm/loadvm store them in snapshots.
 *
 * Loading never half-changes the target: fields are read into a scratch
 * copy of the struct (BhVmsd.size bytes, copied from the target first so
 * fields absent from an older stream keep their current values) and copied
 * over the target only when everything, subsections and hooks included,
 * succeeded.  That is why the storage must be inline: arrays and buffers
 * live inside the struct, nested structs are members, and no pointer is
 * followed.  Variable arrays and buffers hold at most their declared
 * capacity; a count in the stream larger than that is refused.
 *
 * Wire format per field (big-endian, as QEMU): integers in their width,
 * bool as one byte 0/1, buffers as raw bytes, arrays as their elements in
 * order, nested structs as their own fields and subsections.  Counts and
 * sizes are not repeated: they are ordinary fields that must come earlier
 * in the same description.  A subsection is u8 5, u8 name length, name,
 * u32 version, then its fields; its name must start with the parent's name
 * (QEMU uses "parent/what").
 */
#ifndef BLKHOST_VMSTATE_H
#define BLKHOST_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include <blkhost/stream.h>

G_BEGIN_DECLS

typedef struct BhVmsd BhVmsd;

/* Element types. */
typedef enum {
    BH_VMT_U8 = 1, BH_VMT_U16, BH_VMT_U32, BH_VMT_U64,
    BH_VMT_I8, BH_VMT_I16, BH_VMT_I32, BH_VMT_I64,
    BH_VMT_BOOL,
    BH_VMT_BUFFER,   /* raw bytes (BUFFER, VBUFFER) */
    BH_VMT_STRUCT,   /* a nested struct described by .vmsd */
} BhVmType;

/* Field layout flags, numbered as QEMU's VMStateFlags. */
#define BH_VMS_SINGLE         0x001
#define BH_VMS_ARRAY          0x004  /* .num elements */
#define BH_VMS_STRUCT         0x008
#define BH_VMS_VARRAY_INT32   0x010  /* count: int32_t at .num_offset */
#define BH_VMS_BUFFER         0x020
#define BH_VMS_VARRAY_UINT16  0x080
#define BH_VMS_VBUFFER        0x100  /* size: field at .num_offset */
#define BH_VMS_VARRAY_UINT8   0x400
#define BH_VMS_VARRAY_UINT32  0x800
#define BH_VMS_VARRAY_ANY (BH_VMS_VARRAY_INT32 | BH_VMS_VARRAY_UINT16 | \
                           BH_VMS_VARRAY_UINT8 | BH_VMS_VARRAY_UINT32)

typedef struct BhVmField {
    const char *name;       /* NULL ends the list */
    BhVmType type;          /* element type */
    uint32_t flags;         /* BH_VMS_* */
    size_t offset;          /* of the field in the struct */
    size_t size;            /* element size; for (V)BUFFER the capacity */
    uint32_t num;           /* ARRAY: count; VARRAY: capacity */
    size_t num_offset;      /* VARRAY count / VBUFFER size field */
    BhVmType num_type;      /* its type: U8, U16, U32 or I32 */
    int version_id;         /* the field exists from this version on */
    const BhVmsd *vmsd;     /* STRUCT: the nested description */
} BhVmField;

struct BhVmsd {
    const char *name;
    int version_id;            /* what bh_vmstate_save writes */
    int minimum_version_id;    /* oldest version load accepts */
    size_t size;               /* sizeof the struct (top-level loads) */
    /* Hooks; return 0 or -errno (and may set errp).  During a load they see
     * the scratch copy, not the target. */
    int (*pre_save)(void *opaque, BhError **errp);
    int (*pre_load)(void *opaque, BhError **errp);
    int (*post_load)(void *opaque, int version_id, BhError **errp);
    /* Subsections only: saved when NULL or true. */
    bool (*needed)(void *opaque);
    const BhVmField *fields;
    const BhVmsd *const *subsections;  /* NULL-terminated, may be NULL */
};

/* Write opaque's fields and needed subsections at vmsd->version_id (or an
 * older version_id: fields newer than it are left out).  0 or -errno. */
int bh_vmstate_save(BhStream *s, const BhVmsd *vmsd, void *opaque,
                    BhError **errp);
int bh_vmstate_save_v(BhStream *s, const BhVmsd *vmsd, void *opaque,
                      int version_id, BhError **errp);

/* Read a state written at version_id and commit it to opaque, all or
 * nothing.  0 or -errno; on failure opaque is unchanged. */
int bh_vmstate_load(BhStream *s, const BhVmsd *vmsd, void *opaque,
                    int version_id, BhError **errp);

/* The two halves of bh_vmstate_load, for callers that commit several
 * states together (savevm): load_copy returns a g_malloc'd scratch copy
 * of opaque with the stream's state in it, or NULL with errp set; commit
 * copies it over opaque and frees it. */
void *bh_vmstate_load_copy(BhStream *s, const BhVmsd *vmsd, void *opaque,
                           int version_id, BhError **errp);
void bh_vmstate_commit(const BhVmsd *vmsd, void *opaque, void *copy);

/* ---- field macros (QEMU's VMSTATE_* shapes) ----
 * Each checks at compile time that the member has the C type named. */

#define BH_VM_CTYPE_U8 uint8_t
#define BH_VM_CTYPE_U16 uint16_t
#define BH_VM_CTYPE_U32 uint32_t
#define BH_VM_CTYPE_U64 uint64_t
#define BH_VM_CTYPE_I8 int8_t
#define BH_VM_CTYPE_I16 int16_t
#define BH_VM_CTYPE_I32 int32_t
#define BH_VM_CTYPE_I64 int64_t
#define BH_VM_CTYPE_BOOL bool
#define BH_VM_CTYPE_(T) BH_VM_CTYPE_##T

/* 0, or a compile error when st.f is not of type ctype. */
#define BH_VM_TYPECHECK_(ctype, st, f) \
    (0 * sizeof((ctype *)0 - &((st *)0)->f))
#define BH_VM_NELEMS_(st, f) \
    ((uint32_t)(sizeof(((st *)0)->f) / sizeof(((st *)0)->f[0])))
#define BH_VM_VARRAY_FLAG_U8 BH_VMS_VARRAY_UINT8
#define BH_VM_VARRAY_FLAG_U16 BH_VMS_VARRAY_UINT16
#define BH_VM_VARRAY_FLAG_U32 BH_VMS_VARRAY_UINT32
#define BH_VM_VARRAY_FLAG_I32 BH_VMS_VARRAY_INT32

/* One integer or bool member; T is U8 U16 U32 U64 I8 I16 I32 I64 BOOL. */
#define BH_VMSTATE_SINGLE_V(f, st, T, v) {                                  \
    .name = #f, .type = BH_VMT_##T, .flags = BH_VMS_SINGLE,                 \
    .offset = offsetof(st, f) + BH_VM_TYPECHECK_(BH_VM_CTYPE_(T), st, f),   \
    .size = sizeof(BH_VM_CTYPE_(T)), .version_id = (v) }

#define BH_VMSTATE_U8_V(f, st, v)   BH_VMSTATE_SINGLE_V(f, st, U8, v)
#define BH_VMSTATE_U16_V(f, st, v)  BH_VMSTATE_SINGLE_V(f, st, U16, v)
#define BH_VMSTATE_U32_V(f, st, v)  BH_VMSTATE_SINGLE_V(f, st, U32, v)
#define BH_VMSTATE_U64_V(f, st, v)  BH_VMSTATE_SINGLE_V(f, st, U64, v)
#define BH_VMSTATE_I8_V(f, st, v)   BH_VMSTATE_SINGLE_V(f, st, I8, v)
#define BH_VMSTATE_I16_V(f, st, v)  BH_VMSTATE_SINGLE_V(f, st, I16, v)
#define BH_VMSTATE_I32_V(f, st, v)  BH_VMSTATE_SINGLE_V(f, st, I32, v)
#define BH_VMSTATE_I64_V(f, st, v)  BH_VMSTATE_SINGLE_V(f, st, I64, v)
#define BH_VMSTATE_BOOL_V(f, st, v) BH_VMSTATE_SINGLE_V(f, st, BOOL, v)
#define BH_VMSTATE_U8(f, st)   BH_VMSTATE_U8_V(f, st, 0)
#define BH_VMSTATE_U16(f, st)  BH_VMSTATE_U16_V(f, st, 0)
#define BH_VMSTATE_U32(f, st)  BH_VMSTATE_U32_V(f, st, 0)
#define BH_VMSTATE_U64(f, st)  BH_VMSTATE_U64_V(f, st, 0)
#define BH_VMSTATE_I8(f, st)   BH_VMSTATE_I8_V(f, st, 0)
#define BH_VMSTATE_I16(f, st)  BH_VMSTATE_I16_V(f, st, 0)
#define BH_VMSTATE_I32(f, st)  BH_VMSTATE_I32_V(f, st, 0)
#define BH_VMSTATE_I64(f, st)  BH_VMSTATE_I64_V(f, st, 0)
#define BH_VMSTATE_BOOL(f, st) BH_VMSTATE_BOOL_V(f, st, 0)

/* A fixed array member `ctype f[N]` of T elements, all N saved. */
#define BH_VMSTATE_ARRAY_V(f, st, T, v) {                                   \
    .name = #f, .type = BH_VMT_##T, .flags = BH_VMS_ARRAY,                  \
    .offset = offsetof(st, f) + BH_VM_TYPECHECK_(BH_VM_CTYPE_(T), st, f[0]),\
    .size = sizeof(BH_VM_CTYPE_(T)), .num = BH_VM_NELEMS_(st, f),           \
    .version_id = (v) }
#define BH_VMSTATE_ARRAY(f, st, T) BH_VMSTATE_ARRAY_V(f, st, T, 0)

/* The first `count_f` elements of `ctype f[CAP]`; count_f is a member of
 * type CT (U8, U16, U32 or I32) described earlier in the list. */
#define BH_VMSTATE_VARRAY_V(f, st, count_f, CT, T, v) {                     \
    .name = #f, .type = BH_VMT_##T, .flags = BH_VM_VARRAY_FLAG_##CT,        \
    .offset = offsetof(st, f) + BH_VM_TYPECHECK_(BH_VM_CTYPE_(T), st, f[0]),\
    .size = sizeof(BH_VM_CTYPE_(T)), .num = BH_VM_NELEMS_(st, f),           \
    .num_offset = offsetof(st, count_f) +                                   \
        BH_VM_TYPECHECK_(BH_VM_CTYPE_(CT), st, count_f),                    \
    .num_type = BH_VMT_##CT, .version_id = (v) }
#define BH_VMSTATE_VARRAY(f, st, count_f, CT, T) \
    BH_VMSTATE_VARRAY_V(f, st, count_f, CT, T, 0)

/* All bytes of a member `uint8_t f[N]`. */
#define BH_VMSTATE_BUFFER_V(f, st, v) {                                     \
    .name = #f, .type = BH_VMT_BUFFER, .flags = BH_VMS_BUFFER,              \
    .offset = offsetof(st, f) + BH_VM_TYPECHECK_(uint8_t, st, f[0]),        \
    .size = sizeof(((st *)0)->f), .version_id = (v) }
#define BH_VMSTATE_BUFFER(f, st) BH_VMSTATE_BUFFER_V(f, st, 0)

/* The first `size_f` bytes of `uint8_t f[CAP]`; size_f is a member of type
 * CT (U8, U16, U32 or I32) described earlier. */
#define BH_VMSTATE_VBUFFER_V(f, st, size_f, CT, v) {                        \
    .name = #f, .type = BH_VMT_BUFFER, .flags = BH_VMS_VBUFFER,             \
    .offset = offsetof(st, f) + BH_VM_TYPECHECK_(uint8_t, st, f[0]),        \
    .size = sizeof(((st *)0)->f),                                           \
    .num_offset = offsetof(st, size_f) +                                    \
        BH_VM_TYPECHECK_(BH_VM_CTYPE_(CT), st, size_f),                     \
    .num_type = BH_VMT_##CT, .version_id = (v) }
#define BH_VMSTATE_VBUFFER(f, st, size_f, CT) \
    BH_VMSTATE_VBUFFER_V(f, st, size_f, CT, 0)

/* A nested struct member of C type ctype, described by *desc. */
#define BH_VMSTATE_STRUCT_V(f, st, desc, ctype, v) {                        \
    .name = #f, .type = BH_VMT_STRUCT, .flags = BH_VMS_STRUCT,              \
    .offset = offsetof(st, f) + BH_VM_TYPECHECK_(ctype, st, f),             \
    .size = sizeof(ctype), .vmsd = (desc), .version_id = (v) }
#define BH_VMSTATE_STRUCT(f, st, desc, ctype) \
    BH_VMSTATE_STRUCT_V(f, st, desc, ctype, 0)

/* A fixed array of nested structs `ctype f[N]`. */
#define BH_VMSTATE_STRUCT_ARRAY_V(f, st, desc, ctype, v) {                  \
    .name = #f, .type = BH_VMT_STRUCT, .flags = BH_VMS_STRUCT | BH_VMS_ARRAY,\
    .offset = offsetof(st, f) + BH_VM_TYPECHECK_(ctype, st, f[0]),          \
    .size = sizeof(ctype), .num = BH_VM_NELEMS_(st, f), .vmsd = (desc),     \
    .version_id = (v) }
#define BH_VMSTATE_STRUCT_ARRAY(f, st, desc, ctype) \
    BH_VMSTATE_STRUCT_ARRAY_V(f, st, desc, ctype, 0)

/* The first count_f nested structs of `ctype f[CAP]`. */
#define BH_VMSTATE_STRUCT_VARRAY_V(f, st, count_f, CT, desc, ctype, v) {    \
    .name = #f, .type = BH_VMT_STRUCT,                                      \
    .flags = BH_VMS_STRUCT | BH_VM_VARRAY_FLAG_##CT,                        \
    .offset = offsetof(st, f) + BH_VM_TYPECHECK_(ctype, st, f[0]),          \
    .size = sizeof(ctype), .num = BH_VM_NELEMS_(st, f),                     \
    .num_offset = offsetof(st, count_f) +                                   \
        BH_VM_TYPECHECK_(BH_VM_CTYPE_(CT), st, count_f),                    \
    .num_type = BH_VMT_##CT, .vmsd = (desc), .version_id = (v) }
#define BH_VMSTATE_STRUCT_VARRAY(f, st, count_f, CT, desc, ctype) \
    BH_VMSTATE_STRUCT_VARRAY_V(f, st, count_f, CT, desc, ctype, 0)

#define BH_VMSTATE_END_OF_LIST() { .name = NULL }

G_END_DECLS

#endif
