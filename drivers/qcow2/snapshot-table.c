/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 snapshot table: read every field of every entry (keeping extra
 * data the driver does not know), look entries up, and replace the whole
 * table in a crash-safe way.
 *
 * Entry layout (big-endian, each entry padded to 8 bytes): u64 L1 offset,
 * u32 L1 entries, u16 id length, u16 name length, u32 date (s), u32 date
 * (ns), u64 VM clock (ns), u32 vm_state_size, u32 extra_data_size, the
 * extra data (u64 vm_state_size_large, u64 disk_size, u64 icount, then
 * whatever a newer writer added), the id, the name.  Writing a new table
 * is part of the snapshot commit (snapshot-commit.c).
 */
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <blkhost/glib.h>

#define SN_MAX_EXTRA 1024
#define SN_MAX_TABLE (64ull << 20)     /* QEMU's limit */
#define SN_EXTRA_KNOWN 24

void qcow2_sn_entry_clear(Qcow2SnEntry *e)
{
    g_free(e->id);
    g_free(e->name);
    g_free(e->extra);
    memset(e, 0, sizeof(*e));
}

void qcow2_sn_table_free(GArray *t)
{
    if (!t)
        return;
    for (guint i = 0; i < t->len; i++)
        qcow2_sn_entry_clear(&g_array_index(t, Qcow2SnEntry, i));
    g_array_free(t, TRUE);
}

static int parse_entry(Qcow2State *s, const uint8_t *p, uint64_t avail,
                       uint32_t i, Qcow2SnEntry *e, uint64_t *used,
                       int64_t file_len, BhError **errp)
{
    uint16_t id_len, name_len;
    uint64_t len;

    if (avail < 40)
        return bh_error_set(errp, EINVAL, "qcow2: snapshot %u runs past the "
                            "end of the snapshot table", i);
    e->l1_offset = qcow2_be64(p);
    e->l1_size = qcow2_be32(p + 8);
    id_len = (uint16_t)(p[12] << 8 | p[13]);
    name_len = (uint16_t)(p[14] << 8 | p[15]);
    e->date_sec = qcow2_be32(p + 16);
    e->date_nsec = qcow2_be32(p + 20);
    e->vm_clock = qcow2_be64(p + 24);
    e->vm_state_size = qcow2_be32(p + 32);
    e->extra_size = qcow2_be32(p + 36);
    if (e->extra_size > SN_MAX_EXTRA)
        return bh_error_set(errp, EFBIG, "qcow2: snapshot %u has %u bytes of "
                            "extra data (at most %d)", i, e->extra_size,
                            SN_MAX_EXTRA);
    len = 40 + (uint64_t)e->extra_size + id_len + name_len;
    if (len > avail)
        return bh_error_set(errp, EINVAL, "qcow2: snapshot %u runs past the "
                            "end of the snapshot table", i);
    /* Never NULL; with no extra data there is no byte at p + 40 to copy. */
    e->extra = e->extra_size ? g_memdup2(p + 40, e->extra_size)
                             : g_malloc0(1);
    e->id = g_strndup((const char *)p + 40 + e->extra_size, id_len);
    e->name = g_strndup((const char *)p + 40 + e->extra_size + id_len,
                        name_len);
    e->disk_size = s->size;
    e->icount = BH_SNAPSHOT_NO_ICOUNT;
    if (e->extra_size >= 8)
        e->vm_state_size = qcow2_be64(e->extra);
    if (e->extra_size >= 16)
        e->disk_size = qcow2_be64(e->extra + 8);
    if (e->extra_size >= 24)
        e->icount = qcow2_be64(e->extra + 16);
    if ((e->l1_offset & (s->cluster_size - 1)) ||
        (e->l1_offset == 0 && e->l1_size))
        return bh_error_set(errp, EINVAL, "qcow2: snapshot '%s' (id %s) has "
                            "an invalid L1 table offset 0x%" PRIx64 " (not "
                            "cluster aligned, or 0)", e->name, e->id,
                            e->l1_offset);
    if ((uint64_t)e->l1_size * 8 > QCOW2_MAX_L1_BYTES)
        return bh_error_set(errp, EFBIG, "qcow2: snapshot '%s' (id %s) has "
                            "l1_size %u (0x%x), more than %u entries", e->name,
                            e->id, e->l1_size, e->l1_size,
                            QCOW2_MAX_L1_BYTES / 8);
    if (e->l1_offset + (uint64_t)e->l1_size * 8 > (uint64_t)file_len)
        return bh_error_set(errp, EINVAL, "qcow2: snapshot '%s' (id %s) has "
                            "an L1 table at 0x%" PRIx64 " (%u entries) past "
                            "the end of the file", e->name, e->id,
                            e->l1_offset, e->l1_size);
    *used = qcow2_align_up(len, 8);
    return 0;
}

GArray *qcow2_sn_table_read(Qcow2State *s, BhError **errp)
{
    GArray *t = g_array_new(FALSE, TRUE, sizeof(Qcow2SnEntry));
    int64_t file_len = bh_node_size(s->file);
    g_autofree uint8_t *buf = NULL;
    uint64_t pos = 0, bytes = s->snapshots_bytes;

    if (s->nb_snapshots == 0)
        return t;
    /* QEMU does not pad the last entry in the file: the table may end
     * up to 7 bytes short of its padded size. */
    if (bytes > SN_MAX_TABLE || file_len < 0 ||
        s->snapshots_offset + bytes > (uint64_t)file_len + 7) {
        bh_error_set(errp, EINVAL, "qcow2: the snapshot table runs past the "
                     "end of the file");
        goto fail;
    }
    buf = g_malloc0(bytes ? bytes : 1);
    if (bh_node_pread(s->file, buf, s->snapshots_offset,
                      MIN(bytes, (uint64_t)file_len - s->snapshots_offset), 0,
                      errp) < 0)
        goto fail;
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        Qcow2SnEntry e = { 0 };
        uint64_t used = 0;
        /* pos may pass bytes: the last entry's padding is not stored. */
        if (parse_entry(s, buf + pos, pos < bytes ? bytes - pos : 0, i, &e,
                        &used, file_len, errp) < 0) {
            qcow2_sn_entry_clear(&e);
            goto fail;
        }
        g_array_append_val(t, e);
        pos += used;
    }
    return t;
fail:
    qcow2_sn_table_free(t);
    return NULL;
}

int qcow2_sn_find(GArray *t, const char *id_or_name)
{
    for (guint i = 0; i < t->len; i++)
        if (!strcmp(g_array_index(t, Qcow2SnEntry, i).id, id_or_name))
            return (int)i;
    for (guint i = 0; i < t->len; i++)
        if (!strcmp(g_array_index(t, Qcow2SnEntry, i).name, id_or_name))
            return (int)i;
    return -1;
}

GByteArray *qcow2_sn_table_serialize(GArray *t)
{
    GByteArray *b = g_byte_array_new();

    for (guint i = 0; i < t->len; i++) {
        Qcow2SnEntry *e = &g_array_index(t, Qcow2SnEntry, i);
        uint32_t extra_size = MAX(e->extra_size, SN_EXTRA_KNOWN);
        size_t id_len = strlen(e->id), name_len = strlen(e->name);
        uint64_t len = 40 + extra_size + id_len + name_len;
        guint at = b->len;
        uint8_t *p;

        g_byte_array_set_size(b, at + qcow2_align_up(len, 8));
        p = b->data + at;
        memset(p, 0, qcow2_align_up(len, 8));
        qcow2_put_be64(p, e->l1_offset);
        qcow2_put_be32(p + 8, e->l1_size);
        p[12] = id_len >> 8;
        p[13] = id_len & 0xff;
        p[14] = name_len >> 8;
        p[15] = name_len & 0xff;
        qcow2_put_be32(p + 16, e->date_sec);
        qcow2_put_be32(p + 20, e->date_nsec);
        qcow2_put_be64(p + 24, e->vm_clock);
        /* The 32-bit field is what old readers see; the extra field wins. */
        qcow2_put_be32(p + 32, (uint32_t)e->vm_state_size);
        qcow2_put_be32(p + 36, extra_size);
        if (e->extra_size)
            memcpy(p + 40, e->extra, e->extra_size);
        qcow2_put_be64(p + 40, e->vm_state_size);
        qcow2_put_be64(p + 48, e->disk_size);
        qcow2_put_be64(p + 56, e->icount);
        memcpy(p + 40 + extra_size, e->id, id_len);
        memcpy(p + 40 + extra_size + id_len, e->name, name_len);
    }
    return b;
}

void qcow2_sn_table_refresh(Qcow2State *s, GArray *t, uint64_t offset,
                            uint64_t bytes)
{
    for (uint32_t i = 0; s->snapshots && i < s->nb_snapshots; i++) {
        g_free(s->snapshots[i].id);
        g_free(s->snapshots[i].name);
    }
    g_free(s->snapshots);
    s->snapshots = g_new0(Qcow2Snapshot, t->len ? t->len : 1);
    for (guint i = 0; i < t->len; i++) {
        Qcow2SnEntry *e = &g_array_index(t, Qcow2SnEntry, i);
        s->snapshots[i].l1_offset = e->l1_offset;
        s->snapshots[i].l1_size = e->l1_size;
        s->snapshots[i].id = g_strdup(e->id);
        s->snapshots[i].name = g_strdup(e->name);
    }
    s->nb_snapshots = t->len;
    s->snapshots_offset = offset;
    s->snapshots_bytes = bytes;
}
