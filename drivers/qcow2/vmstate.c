/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 vmstate area: saved machine state lives past the virtual disk,
 * from the first L1 entry that maps no guest cluster, and is read and
 * written like guest data through the active L1 table (which grows to
 * reach it).  A snapshot created afterwards keeps it; the active image
 * then drops it (snapshot.c), so the next snapshot does not share it.
 */
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>

static Qcow2State *state(BhNode *bs)
{
    return bh_node_get_opaque(bs);
}

uint64_t qcow2_vmstate_l1_index(Qcow2State *s)
{
    uint64_t per_l1 = s->cluster_size * s->l2_entries;
    return s->size / per_l1 + (s->size % per_l1 != 0);
}

uint64_t qcow2_vmstate_offset(Qcow2State *s)
{
    return qcow2_vmstate_l1_index(s) * s->cluster_size * s->l2_entries;
}

/*
 * Grow the active L1 to n entries: the new table goes to new clusters and
 * is flushed, then l1_size and l1_table_offset switch in one header write
 * (they are adjacent, at 36 and 40), then the old table is freed.
 */
int qcow2_grow_l1_locked(Qcow2State *s, uint64_t n, BhError **errp)
{
    uint64_t bytes = qcow2_align_up(n * 8, s->cluster_size);
    uint64_t old_off = s->l1_offset, old_size = s->l1_size;
    g_autofree uint64_t *be = NULL;
    uint8_t hdr[12];
    int64_t off;
    int ret;

    if (n <= s->l1_size)
        return 0;
    if (n * 8 > QCOW2_MAX_L1_BYTES)
        return bh_error_set(errp, EFBIG, "qcow2: the vmstate area would need "
                            "an L1 table of more than %u bytes",
                            QCOW2_MAX_L1_BYTES);
    ret = qcow2_meta_flush_locked(s, errp);
    if (ret < 0)
        return ret;
    be = g_malloc0(bytes);
    for (uint64_t i = 0; i < s->l1_size; i++)
        be[i] = GUINT64_TO_BE(s->l1[i]);
    off = qcow2_alloc_clusters_locked(s, bytes >> s->cluster_bits, errp);
    if (off < 0)
        return (int)off;
    ret = qcow2_cache_flush(s->rb_cache, errp);
    if (ret == 0)
        ret = bh_node_pwrite(s->file, be, off, bytes, 0, errp);
    if (ret == 0)
        ret = bh_node_flush(s->file, errp);
    if (ret < 0) {
        qcow2_free_later_locked(s, off, bytes);
        return ret;
    }
    qcow2_put_be32(hdr, (uint32_t)n);
    qcow2_put_be64(hdr + 4, (uint64_t)off);
    ret = qcow2_header_write_field(s, QH_L1_SIZE, hdr, 12, errp);
    if (ret < 0)
        return ret;
    s->l1 = g_renew(uint64_t, s->l1, n);
    memset(s->l1 + s->l1_size, 0, (n - s->l1_size) * 8);
    s->l1_size = (uint32_t)n;
    s->l1_offset = (uint64_t)off;
    qcow2_overlap_tables_replaced(s);
    qcow2_free_later_locked(s, old_off,
                            qcow2_align_up(MAX(old_size, 1) * 8,
                                           s->cluster_size));
    return qcow2_meta_flush_locked(s, errp);
}

int qcow2_save_vmstate(BhNode *bs, const void *buf, uint64_t pos,
                       size_t len, BhError **errp)
{
    Qcow2State *s = state(bs);
    uint64_t per_l1 = s->cluster_size * s->l2_entries, start, end;
    int ret;

    if (s->readonly)
        return bh_error_set(errp, EPERM, "qcow2: '%s' is open read-only",
                            bh_node_filename(s->file));
    if (!len)
        return 0;
    g_mutex_lock(&s->lock);
    start = qcow2_vmstate_offset(s);
    if (pos > (1ull << 56) || len > (1ull << 56) ||
        start + pos + len > L2E_OFFSET_MASK) {
        g_mutex_unlock(&s->lock);
        return bh_error_set(errp, EFBIG, "qcow2: vmstate of %" PRIu64
                            " bytes at %" PRIu64 " is too large",
                            (uint64_t)len, pos);
    }
    end = start + pos + len;
    ret = qcow2_prepare_first_write_locked(s, errp);
    if (ret == 0)
        ret = qcow2_grow_l1_locked(s, end / per_l1 + (end % per_l1 != 0),
                                   errp);
    g_mutex_unlock(&s->lock);
    if (ret < 0)
        return ret;
    return qcow2_pwrite(bs, buf, start + pos, len, 0, errp);
}

int qcow2_load_vmstate(BhNode *bs, void *buf, uint64_t pos, size_t len,
                       BhError **errp)
{
    Qcow2State *s = state(bs);
    uint64_t per_l1 = s->cluster_size * s->l2_entries, start, mapped;

    g_mutex_lock(&s->lock);
    start = qcow2_vmstate_offset(s);
    mapped = (uint64_t)s->l1_size * per_l1;
    g_mutex_unlock(&s->lock);
    if (pos > (1ull << 56) || len > (1ull << 56))
        return bh_error_set(errp, EINVAL, "qcow2: vmstate read out of range");
    /* Past what the L1 table maps there is nothing: zeros. */
    if (start + pos >= mapped) {
        memset(buf, 0, len);
        return 0;
    }
    if (start + pos + len > mapped) {
        size_t n = (size_t)(mapped - start - pos);
        memset((uint8_t *)buf + n, 0, len - n);
        len = n;
    }
    return qcow2_pread(bs, buf, start + pos, len, 0, errp);
}
