/*
 * qcow2 refcount rebuild: what opening a dirty image read-write does (the
 * dirty bit says refcounts may lag behind the L1/L2 tables, which is what
 * lazy refcounts trade for speed).
 *
 * Every reference is counted by walking the header, the active L1 table,
 * the snapshot table and every snapshot's L1 table with the L2 tables they
 * reach; then a complete new set of refcount blocks and a new refcount
 * table is written past the end of the file, flushed, and the header is
 * switched to it in one write.  The old refcount structures simply become
 * free space, so a crash at any point leaves either the old or the new set
 * in effect (and the dirty bit still set until the caller clears it).
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>

typedef struct {
    Qcow2State *s;
    uint64_t *refs;
    uint64_t n;
} Counter;

static int count(Counter *c, uint64_t offset, uint64_t bytes, GError **errp)
{
    Qcow2State *s = c->s;
    uint64_t first, last;

    if (!bytes)
        return 0;
    first = offset >> s->cluster_bits;
    last = (offset + bytes - 1) >> s->cluster_bits;
    if (last >= c->n)
        return bh_error_set(errp, EIO, "qcow2: refcount rebuild: a table "
                            "points at 0x%" PRIx64 ", past the end of the file",
                            offset);
    for (uint64_t i = first; i <= last; i++)
        c->refs[i]++;
    return 0;
}

static int count_l1(Counter *c, uint64_t l1_offset, uint32_t l1_size,
                    const uint64_t *l1_mem, GError **errp)
{
    Qcow2State *s = c->s;
    g_autofree uint64_t *l1 = NULL;
    g_autofree uint64_t *l2 = NULL;
    int ret;

    ret = count(c, l1_offset, (uint64_t)l1_size * 8, errp);
    if (ret < 0)
        return ret;
    l1 = g_new(uint64_t, l1_size ? l1_size : 1);
    if (l1_mem) {
        memcpy(l1, l1_mem, (size_t)l1_size * 8);
    } else {
        ret = bh_node_pread(s->file, l1, l1_offset, (size_t)l1_size * 8, 0,
                            errp);
        if (ret < 0)
            return ret;
        for (uint32_t i = 0; i < l1_size; i++)
            l1[i] = GUINT64_FROM_BE(l1[i]);
    }
    l2 = g_malloc(s->cluster_size);
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2off = l1[i] & L1E_OFFSET_MASK;
        if (!l2off)
            continue;
        if (l2off & (s->cluster_size - 1))
            return bh_error_set(errp, EIO, "qcow2: refcount rebuild: L1 entry"
                                " %u points at unaligned 0x%" PRIx64, i, l2off);
        ret = count(c, l2off, s->cluster_size, errp);
        if (ret == 0)
            ret = bh_node_pread(s->file, l2, l2off, s->cluster_size, 0, errp);
        if (ret < 0)
            return ret;
        for (uint64_t j = 0; j < s->l2_entries; j++) {
            uint64_t e = GUINT64_FROM_BE(l2[j]), bytes, start;
            switch (qcow2_entry_type(s, e)) {
            case QCOW2_NORMAL:
            case QCOW2_ZERO_ALLOC:
                ret = count(c, e & L2E_OFFSET_MASK, s->cluster_size, errp);
                break;
            case QCOW2_COMPRESSED:
                start = qcow2_compressed_range(s, e, &bytes);
                ret = count(c, start, bytes, errp);
                break;
            default:
                break;
            }
            if (ret < 0)
                return ret;
        }
    }
    return 0;
}

int qcow2_rebuild_refcounts_locked(Qcow2State *s, GError **errp)
{
    uint64_t cs = s->cluster_size, per_block = 1ull << s->rb_bits;
    int64_t flen = bh_node_size(s->file);
    Counter c = { s, NULL, 0 };
    uint64_t area, nb = 1, nt = 1, total;
    g_autofree uint8_t *buf = NULL;
    uint8_t hdr[12];
    int ret;

    if (flen < 0)
        return (int)flen;
    c.n = qcow2_align_up((uint64_t)flen, cs) / cs;
    c.refs = g_new0(uint64_t, c.n ? c.n : 1);
    ret = count(&c, 0, cs, errp);
    if (ret == 0)
        ret = count_l1(&c, s->l1_offset, s->l1_size, s->l1, errp);
    if (ret == 0 && s->nb_snapshots)
        ret = count(&c, s->snapshots_offset, s->snapshots_bytes, errp);
    for (uint32_t i = 0; ret == 0 && i < s->nb_snapshots; i++)
        ret = count_l1(&c, s->snapshots[i].l1_offset,
                       s->snapshots[i].l1_size, NULL, errp);
    if (ret < 0)
        goto out;

    area = c.n;
    for (;;) {
        uint64_t nb2, nt2;
        total = area + nb + nt;
        nb2 = (total + per_block - 1) / per_block;
        nt2 = qcow2_align_up(nb2 * 8, cs) / cs;
        if (nb2 == nb && nt2 == nt)
            break;
        nb = nb2;
        nt = nt2;
    }
    if (nt * cs > QCOW2_MAX_REFTABLE_BYTES) {
        ret = bh_error_set(errp, EFBIG, "qcow2: refcount rebuild: the "
                           "refcount table would be too large");
        goto out;
    }
    c.refs = g_renew(uint64_t, c.refs, total);
    for (uint64_t i = c.n; i < total; i++)
        c.refs[i] = i < area ? 0 : 1;
    for (uint64_t i = 0; i < c.n; i++) {
        if (c.refs[i] > s->refcount_max) {
            ret = bh_error_set(errp, EIO, "qcow2: refcount rebuild: cluster %"
                               PRIu64 " has %" PRIu64 " references, more than"
                               " refcount_bits %d allows", i, c.refs[i],
                               s->refcount_bits);
            goto out;
        }
    }

    buf = g_malloc0(cs);
    for (uint64_t b = 0; b < nb; b++) {
        memset(buf, 0, cs);
        for (uint64_t i = 0; i < per_block && b * per_block + i < total; i++)
            qcow2_rb_set(s, buf, i, c.refs[b * per_block + i]);
        ret = bh_node_pwrite(s->file, buf, (area + b) * cs, cs, 0, errp);
        if (ret < 0)
            goto out;
    }
    g_free(s->reftable);
    s->reftable_size = nt * cs / 8;
    s->reftable = g_new0(uint64_t, s->reftable_size);
    for (uint64_t t = 0; t < nt; t++) {
        memset(buf, 0, cs);
        for (uint64_t i = 0; i < cs / 8; i++) {
            uint64_t b = t * (cs / 8) + i;
            if (b < nb) {
                s->reftable[b] = (area + b) * cs;
                qcow2_put_be64(buf + i * 8, (area + b) * cs);
            }
        }
        ret = bh_node_pwrite(s->file, buf, (area + nb + t) * cs, cs, 0, errp);
        if (ret < 0)
            goto out;
    }
    ret = bh_node_flush(s->file, errp);
    if (ret < 0)
        goto out;
    qcow2_put_be64(hdr, (area + nb) * cs);
    qcow2_put_be32(hdr + 8, nt);
    ret = qcow2_header_write_field(s, QH_REFTABLE_OFFSET, hdr, 12, errp);
    if (ret < 0)
        goto out;
    s->reftable_offset = (area + nb) * cs;
    s->reftable_clusters = nt;
    qcow2_cache_forget_all(s->rb_cache);
    s->free_hint = 1;
out:
    g_free(c.refs);
    return ret;
}
