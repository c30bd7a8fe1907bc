/*
 * qcow2 snapshot commit: switch the image to a new active L1 table, a new
 * snapshot table and a new set of refcounts in one header write.
 *
 * Why not QEMU's in-place ordering: it raises refcounts, then clears the
 * COPIED flags of the active tables (and on delete lowers refcounts, then
 * sets COPIED again).  A crash between those steps leaves COPIED flags that
 * disagree with the refcounts, which `qemu-img check` counts as corruption
 * (exit 2), and a SIGKILL test finds that window.  Here nothing the image
 * uses is written in place:
 *   1. flush every cached table, wait for in-flight allocations;
 *   2. lay out, past the end of the file (space no refcount covers yet):
 *      a private copy of every L2 table the new active L1 reaches, the new
 *      active L1, the new snapshot table, and a complete new refcount
 *      structure (blocks and table) counting exactly the new state: the
 *      header, the active L1 and its L2 copies with their data, the
 *      snapshot table, every snapshot's L1 and the L2 tables and data it
 *      reaches, and the new refcount structure itself;
 *   3. set COPIED in the copies exactly where the new refcount is 1;
 *   4. write all of it and flush;
 *   5. switch size, l1_size, l1_table_offset, refcount_table_offset,
 *      refcount_table_clusters, nb_snapshots and snapshots_offset with one
 *      48-byte header write (offsets 24..71, one sector), and flush.
 * A crash before 5 leaves the old image untouched (the tail is space no
 * refcount mentions); after 5 the new one.  What the old state used and
 * the new one does not is free in the new refcounts: nothing to free.
 * The old active L1, when a new snapshot takes it over, is reused in
 * place: a snapshot's L1 is never written again.
 */
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>

typedef struct {
    Qcow2State *s;
    uint64_t *refs;
    uint64_t n;            /* clusters counted (the whole new file) */
    GHashTable *l2_uses;   /* L2 offset -> number of paths to it */
} Count;

static int add(Count *c, uint64_t offset, uint64_t bytes, GError **errp)
{
    uint64_t first, last;

    if (!bytes)
        return 0;
    first = offset >> c->s->cluster_bits;
    last = (offset + bytes - 1) >> c->s->cluster_bits;
    if (last >= c->n)
        return bh_error_set(errp, EIO, "qcow2: a table points at 0x%" PRIx64
                            ", past the end of the file", offset);
    for (uint64_t i = first; i <= last; i++)
        c->refs[i]++;
    return 0;
}

static int check_l1e(Qcow2State *s, uint64_t i, uint64_t e, uint64_t flen,
                     GError **errp)
{
    uint64_t off = e & L1E_OFFSET_MASK;
    if ((e & L1E_RESERVED) || (off & (s->cluster_size - 1)) ||
        off + s->cluster_size > flen)
        return bh_error_set(errp, EIO, "qcow2: L1 entry %" PRIu64 " (0x%"
                            PRIx64 ") is invalid (reserved bits, unaligned, or"
                            " past the end of the file)", i, e);
    return 0;
}

/* Note one more path to each L2 table of an L1 table (host endian). */
static int note_l1(Count *c, const uint64_t *l1, uint64_t n, uint64_t flen,
                   GError **errp)
{
    for (uint64_t i = 0; i < n; i++) {
        uint64_t off = l1[i] & L1E_OFFSET_MASK;
        gpointer k = GSIZE_TO_POINTER(off);
        int ret;

        if (!off)
            continue;
        ret = check_l1e(c->s, i, l1[i], flen, errp);
        if (ret < 0)
            return ret;
        g_hash_table_insert(c->l2_uses, k, GSIZE_TO_POINTER(
            GPOINTER_TO_SIZE(g_hash_table_lookup(c->l2_uses, k)) + 1));
    }
    return 0;
}

/* Count what an L2 table points to, uses times. */
static int count_l2(Count *c, const uint64_t *t, uint64_t uses, GError **errp)
{
    Qcow2State *s = c->s;
    for (uint64_t j = 0; j < s->l2_entries; j++) {
        uint64_t e = GUINT64_FROM_BE(t[j]), start = 0, bytes = 0;
        switch (qcow2_entry_type(s, e)) {
        case QCOW2_NORMAL:
        case QCOW2_ZERO_ALLOC:
            start = e & L2E_OFFSET_MASK;
            bytes = s->cluster_size;
            break;
        case QCOW2_COMPRESSED:
            start = qcow2_compressed_range(s, e, &bytes);
            break;
        default:
            continue;
        }
        for (uint64_t u = 0; u < uses; u++) {
            int ret = add(c, start, bytes, errp);
            if (ret < 0)
                return ret;
        }
    }
    return 0;
}

static int read_l1(Qcow2State *s, uint64_t off, uint32_t n, uint64_t **out,
                   GError **errp)
{
    uint64_t *t = g_new0(uint64_t, n ? n : 1);
    int ret = n ? bh_node_pread(s->file, t, off, (size_t)n * 8, 0, errp) : 0;
    if (ret < 0) {
        g_free(t);
        return ret;
    }
    for (uint32_t i = 0; i < n; i++)
        t[i] = GUINT64_FROM_BE(t[i]);
    *out = t;
    return 0;
}

static int write_be64s(Qcow2State *s, const uint64_t *v, uint64_t n,
                       uint64_t off, GError **errp)
{
    uint64_t bytes = qcow2_align_up(MAX(n, 1) * 8, s->cluster_size);
    g_autofree uint64_t *be = g_malloc0(bytes);
    for (uint64_t i = 0; i < n; i++)
        be[i] = GUINT64_TO_BE(v[i]);
    return bh_node_pwrite(s->file, be, off, bytes, 0, errp);
}

int qcow2_snapshot_commit_locked(Qcow2State *s, const uint64_t *src_l1,
                                 uint64_t l1_n, uint64_t new_size, GArray *t,
                                 GError **errp)
{
    uint64_t cs = s->cluster_size, per_block = 1ull << s->rb_bits;
    int64_t flen_s = bh_node_size(s->file);
    uint64_t flen, area, n_l2 = 0, l1_clusters, tbl_clusters, nb = 1, nt = 1;
    uint64_t l2_at, l1_at, tbl_at, rb_at, total, tbl_bytes;
    g_autofree uint64_t *new_l1 = NULL;
    g_autoptr(GByteArray) tbl = NULL;
    g_autofree uint8_t *buf = NULL;
    g_autofree uint8_t *l2bufs = NULL;
    Count c = { s, NULL, 0, NULL };
    GHashTableIter it;
    gpointer k, v;
    uint8_t hdr[48];
    int ret;

    if (flen_s < 0)
        return (int)flen_s;
    if (t->len > QCOW2_MAX_SNAPSHOTS)
        return bh_error_set(errp, EFBIG, "qcow2: at most %d snapshots",
                            QCOW2_MAX_SNAPSHOTS);
    if (l1_n * 8 > QCOW2_MAX_L1_BYTES)
        return bh_error_set(errp, EFBIG, "qcow2: an L1 table of %" PRIu64
                            " entries is too large", l1_n);
    while (s->in_flight->len)
        g_cond_wait(&s->cond, &s->lock);
    ret = qcow2_meta_flush_locked(s, errp);
    if (ret < 0)
        return ret;
    flen = (uint64_t)flen_s;
    tbl = qcow2_sn_table_serialize(t);
    tbl_bytes = tbl->len;
    if (tbl->len > (64u << 20))
        return bh_error_set(errp, EFBIG, "qcow2: the snapshot table would "
                            "exceed 64 MiB");

    /* Layout of the tail. */
    for (uint64_t i = 0; i < l1_n; i++) {
        if (src_l1[i] & L1E_OFFSET_MASK) {
            ret = check_l1e(s, i, src_l1[i], flen, errp);
            if (ret < 0)
                return ret;
            n_l2++;
        }
    }
    area = qcow2_align_up(flen, cs) / cs;
    l1_clusters = qcow2_align_up(l1_n * 8, cs) / cs;   /* 0 for size 0 */
    tbl_clusters = t->len ? qcow2_align_up(tbl->len, cs) / cs : 0;
    l2_at = area;
    l1_at = l2_at + n_l2;
    tbl_at = l1_at + l1_clusters;
    rb_at = tbl_at + tbl_clusters;
    for (;;) {
        uint64_t nb2, nt2;
        total = rb_at + nb + nt;
        nb2 = (total + per_block - 1) / per_block;
        nt2 = qcow2_align_up(nb2 * 8, cs) / cs;
        if (nb2 == nb && nt2 == nt)
            break;
        nb = nb2;
        nt = nt2;
    }
    if (nt * cs > QCOW2_MAX_REFTABLE_BYTES || total * cs > L2E_OFFSET_MASK)
        return bh_error_set(errp, EFBIG, "qcow2: the image file would grow "
                            "too large");

    /* Count the new state. */
    c.n = total;
    c.refs = g_new0(uint64_t, total);
    c.l2_uses = g_hash_table_new(g_direct_hash, g_direct_equal);
    ret = add(&c, 0, cs, errp);                     /* header */
    for (uint64_t i = 0; ret == 0 && i < t->len; i++) {
        Qcow2SnEntry *e = &g_array_index(t, Qcow2SnEntry, i);
        g_autofree uint64_t *l1 = NULL;
        ret = add(&c, e->l1_offset, (uint64_t)e->l1_size * 8, errp);
        if (ret == 0)
            ret = read_l1(s, e->l1_offset, e->l1_size, &l1, errp);
        if (ret == 0)
            ret = note_l1(&c, l1, e->l1_size, flen, errp);
    }
    buf = g_malloc(cs);
    g_hash_table_iter_init(&it, c.l2_uses);
    while (ret == 0 && g_hash_table_iter_next(&it, &k, &v)) {
        uint64_t off = GPOINTER_TO_SIZE(k), uses = GPOINTER_TO_SIZE(v);
        for (uint64_t u = 0; ret == 0 && u < uses; u++)
            ret = add(&c, off, cs, errp);
        if (ret == 0)
            ret = bh_node_pread(s->file, buf, off, cs, 0, errp);
        if (ret == 0)
            ret = count_l2(&c, (const uint64_t *)buf, uses, errp);
    }
    /* The active L1's L2 copies: read the sources now, count their data. */
    l2bufs = g_malloc(MAX(n_l2, 1) * cs);
    new_l1 = g_new0(uint64_t, MAX(l1_n, 1));
    for (uint64_t i = 0, j = 0; ret == 0 && i < l1_n; i++) {
        uint64_t off = src_l1[i] & L1E_OFFSET_MASK;
        if (!off)
            continue;
        ret = bh_node_pread(s->file, l2bufs + j * cs, off, cs, 0, errp);
        if (ret == 0)
            ret = count_l2(&c, (const uint64_t *)(l2bufs + j * cs), 1, errp);
        new_l1[i] = ((l2_at + j) * cs) | QCOW_OFLAG_COPIED;
        j++;
    }
    for (uint64_t i = l2_at; i < total; i++)
        c.refs[i]++;                                  /* the new tail */
    for (uint64_t i = 0; ret == 0 && i < total; i++)
        if (c.refs[i] > s->refcount_max)
            ret = bh_error_set(errp, ERANGE, "qcow2: cluster %" PRIu64 " would"
                               " have %" PRIu64 " references, more than "
                               "refcount_bits %d allows", i, c.refs[i],
                               s->refcount_bits);
    if (ret < 0)
        goto out;

    /* COPIED where the new refcount is exactly 1. */
    for (uint64_t j = 0; j < n_l2; j++) {
        uint64_t *l2 = (uint64_t *)(l2bufs + j * cs);
        for (uint64_t x = 0; x < s->l2_entries; x++) {
            uint64_t e = GUINT64_FROM_BE(l2[x]);
            Qcow2ClusterType ty = qcow2_entry_type(s, e);
            if (ty != QCOW2_NORMAL && ty != QCOW2_ZERO_ALLOC)
                continue;
            e &= ~QCOW_OFLAG_COPIED;
            if (c.refs[(e & L2E_OFFSET_MASK) >> s->cluster_bits] == 1)
                e |= QCOW_OFLAG_COPIED;
            l2[x] = GUINT64_TO_BE(e);
        }
    }

    /* Write the tail, then switch. */
    ret = bh_node_pwrite(s->file, l2bufs, l2_at * cs, n_l2 * cs, 0, errp);
    if (ret == 0 && l1_n)
        ret = write_be64s(s, new_l1, l1_n, l1_at * cs, errp);
    if (ret == 0 && tbl_clusters) {
        g_byte_array_set_size(tbl, tbl_clusters * cs);
        ret = bh_node_pwrite(s->file, tbl->data, tbl_at * cs, tbl->len, 0,
                             errp);
    }
    for (uint64_t b = 0; ret == 0 && b < nb; b++) {
        memset(buf, 0, cs);
        for (uint64_t i = 0; i < per_block && b * per_block + i < total; i++)
            qcow2_rb_set(s, buf, i, c.refs[b * per_block + i]);
        ret = bh_node_pwrite(s->file, buf, (rb_at + b) * cs, cs, 0, errp);
    }
    if (ret == 0) {
        g_autofree uint64_t *rt = g_new0(uint64_t, nt * cs / 8);
        for (uint64_t b = 0; b < nb; b++)
            rt[b] = (rb_at + b) * cs;
        ret = write_be64s(s, rt, nt * cs / 8, (rb_at + nb) * cs, errp);
        if (ret == 0)
            ret = bh_node_flush(s->file, errp);
        if (ret < 0)
            goto out;
        qcow2_put_be64(hdr, new_size);
        qcow2_put_be32(hdr + 8, 0);                  /* crypt_method */
        qcow2_put_be32(hdr + 12, (uint32_t)l1_n);
        qcow2_put_be64(hdr + 16, l1_n ? l1_at * cs : 0);
        qcow2_put_be64(hdr + 24, (rb_at + nb) * cs);
        qcow2_put_be32(hdr + 32, (uint32_t)nt);
        qcow2_put_be32(hdr + 36, t->len);
        qcow2_put_be64(hdr + 40, t->len ? tbl_at * cs : 0);
        ret = qcow2_header_write_field(s, QH_SIZE, hdr, 48, errp);
        if (ret < 0)
            goto out;

        /* The new state, in memory. */
        qcow2_cache_forget_all(s->l2_cache);
        qcow2_cache_forget_all(s->rb_cache);
        g_free(s->reftable);
        s->reftable = g_steal_pointer(&rt);
        s->reftable_size = nt * cs / 8;
        s->reftable_offset = (rb_at + nb) * cs;
        s->reftable_clusters = (uint32_t)nt;
        g_free(s->l1);
        s->l1 = g_steal_pointer(&new_l1);
        s->l1_size = (uint32_t)l1_n;
        s->l1_offset = l1_n ? l1_at * cs : 0;
        s->size = new_size;
        s->free_hint = 1;
        qcow2_sn_table_refresh(s, t, t->len ? tbl_at * cs : 0, tbl_bytes);
    }
out:
    g_hash_table_destroy(c.l2_uses);
    g_free(c.refs);
    return ret;
}
