/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 persistent dirty bitmaps: read the bitmaps header extension and
 * the bitmap directory, so that `info` can list them (as qemu-img info
 * does) and a read-write open can say which bitmaps it drops.
 *
 * blkhost does not keep bitmaps up to date, so before the first write it
 * clears autoclear bit 0 (header.c), which is how the spec says a writer
 * unaware of bitmaps invalidates them: QEMU then ignores the extension and
 * the bitmaps are gone for it.  That loses data a backup tool may rely
 * on, hence the message on stderr naming the image and every bitmap.
 *
 * Layout (docs/interop/qcow2.txt): the extension holds nb_bitmaps (be32),
 * 4 reserved bytes, the directory size (be64) and offset (be64); each
 * directory entry is 24 bytes (table offset, table size, flags, type,
 * granularity bits, name size, extra data size), then the extra data and
 * the name, padded to 8 bytes.  A bitmap table entry holds the offset of
 * one data cluster in bits 9-55, or 0 (bit 0 then says whether that part
 * of the bitmap is all ones); the directory, the tables and the data
 * clusters are what `check` and a refcount rebuild must count.
 */
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>

#define BITMAPS_MAX 65535
#define BITMAPS_DIR_MAX (64u << 20)

void qcow2_bitmaps_free(Qcow2State *s)
{
    for (uint32_t i = 0; s->bitmaps && i < s->nb_bitmaps; i++)
        g_free(s->bitmaps[i].name);
    g_clear_pointer(&s->bitmaps, g_free);
    s->nb_bitmaps = 0;
}

int qcow2_read_bitmaps(Qcow2State *s, uint64_t ext_offset, uint64_t ext_len,
                       const uint8_t *ext, BhError **errp)
{
    int64_t file_len = bh_node_size(s->file);
    g_autofree uint8_t *dir = NULL;
    uint32_t n;
    uint64_t pos = 0, size, offset;
    int ret;

    /* Without the autoclear bit the extension is stale: ignore it. */
    if (!(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS))
        return 0;
    if (ext_len < 24)
        return bh_error_set(errp, EINVAL, "qcow2: bitmaps extension at "
                            "offset %" PRIu64 " is %" PRIu64 " bytes (at "
                            "least 24)", ext_offset, ext_len);
    n = qcow2_be32(ext);
    size = qcow2_be64(ext + 8);
    offset = qcow2_be64(ext + 16);
    if (n == 0 || n > BITMAPS_MAX || size > BITMAPS_DIR_MAX ||
        size < 24ull * n || (offset & (s->cluster_size - 1)) ||
        offset < s->cluster_size || offset > (uint64_t)file_len ||
        size > (uint64_t)file_len - offset)
        return bh_error_set(errp, EINVAL, "qcow2: bitmaps extension is "
                            "invalid (%u bitmaps, directory of %" PRIu64
                            " bytes at 0x%" PRIx64 ")", n, size, offset);
    dir = g_malloc(size);
    ret = bh_node_pread(s->file, dir, offset, size, 0, errp);
    if (ret < 0)
        return ret;
    qcow2_bitmaps_free(s);
    s->bitmaps = g_new0(Qcow2Bitmap, n);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t extra;
        uint16_t name_len;

        if (size - pos < 24)
            goto bad;
        name_len = (uint16_t)(dir[pos + 18] << 8 | dir[pos + 19]);
        extra = qcow2_be32(dir + pos + 20);
        if (extra > size || size - pos - 24 < (uint64_t)extra + name_len)
            goto bad;
        s->bitmaps[i].table_offset = qcow2_be64(dir + pos);
        s->bitmaps[i].table_size = qcow2_be32(dir + pos + 8);
        s->bitmaps[i].flags = qcow2_be32(dir + pos + 12);
        s->bitmaps[i].granularity_bits = dir[pos + 17];
        s->bitmaps[i].name = g_strndup((const char *)dir + pos + 24 + extra,
                                       name_len);
        s->nb_bitmaps = i + 1;
        pos += qcow2_align_up(24 + (uint64_t)extra + name_len, 8);
    }
    s->bitmap_dir_offset = offset;
    s->bitmap_dir_size = size;
    return 0;

bad:
    qcow2_bitmaps_free(s);
    return bh_error_set(errp, EINVAL, "qcow2: bitmap directory at 0x%" PRIx64
                        " is truncated or corrupt", offset);
}

/* Called once, when the first write clears the autoclear bit. */
void qcow2_bitmaps_dropped(Qcow2State *s)
{
    g_autoptr(GString) names = g_string_new(NULL);

    if (!s->nb_bitmaps || !(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS))
        return;
    for (uint32_t i = 0; i < s->nb_bitmaps; i++)
        g_string_append_printf(names, "%s'%s'", i ? ", " : "",
                               s->bitmaps[i].name);
    g_printerr("qcow2: %s: blkhost does not maintain persistent dirty "
               "bitmaps; writing invalidates %u of them (%s): QEMU will "
               "ignore them from now on\n", bh_node_filename(s->file),
               s->nb_bitmaps, names->str);
}

#define BITMAP_TABLE_OFFSET_MASK 0x00fffffffffffe00ull
#define BITMAP_TABLE_RESERVED 0xff000000000001feull

/* Count the references of valid bitmaps: directory, tables, data. */
int qcow2_bitmaps_count_references(Qcow2State *s, Qcow2NewRefs *r,
                                   BhError **errp)
{
    uint64_t cs = s->cluster_size;
    int ret;

    if (!s->nb_bitmaps || !(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS))
        return 0;
    ret = qcow2_new_refs_add(r, s->bitmap_dir_offset, s->bitmap_dir_size, 1,
                             errp);
    for (uint32_t i = 0; ret == 0 && i < s->nb_bitmaps; i++) {
        const Qcow2Bitmap *b = &s->bitmaps[i];
        uint64_t bytes = (uint64_t)b->table_size * 8;
        g_autofree uint64_t *t = NULL;

        if (!b->table_size)
            continue;
        if ((b->table_offset & (cs - 1)) || !b->table_offset ||
            bytes > QCOW2_MAX_L1_BYTES)
            return bh_error_set(errp, EINVAL, "qcow2: bitmap '%s' has an "
                                "invalid table (%u entries at 0x%" PRIx64 ")",
                                b->name, b->table_size, b->table_offset);
        ret = qcow2_new_refs_add(r, b->table_offset, bytes, 1, errp);
        if (ret < 0)
            return ret;
        t = g_malloc(bytes);
        ret = bh_node_pread(s->file, t, b->table_offset, bytes, 0, errp);
        for (uint32_t j = 0; ret == 0 && j < b->table_size; j++) {
            uint64_t e = GUINT64_FROM_BE(t[j]), off;
            if (e & BITMAP_TABLE_RESERVED)
                return bh_error_set(errp, EINVAL, "qcow2: bitmap '%s' table "
                                    "entry %u (0x%" PRIx64 ") has reserved "
                                    "bits set", b->name, j, e);
            off = e & BITMAP_TABLE_OFFSET_MASK;
            if (off & (cs - 1))
                return bh_error_set(errp, EINVAL, "qcow2: bitmap '%s' data "
                                    "cluster at 0x%" PRIx64 " is not "
                                    "cluster aligned", b->name, off);
            if (off)
                ret = qcow2_new_refs_add(r, off, cs, 1, errp);
        }
    }
    return ret;
}
