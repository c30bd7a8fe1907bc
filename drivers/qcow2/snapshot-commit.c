/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 snapshot commit: switch the image to a new active L1 table, a new
 * snapshot table and new refcounts in one header write.
 *
 * Why not QEMU's in-place ordering: it raises refcounts, then clears the
 * COPIED flags of the active tables (and on delete lowers refcounts, then
 * sets COPIED again).  A crash between those steps leaves COPIED flags that
 * disagree with the refcounts, which `qemu-img check` counts as corruption
 * (exit 2), and a SIGKILL test finds that window.  Here nothing the
 * committed image uses is written before the switch:
 *   1. flush every cached table, wait for in-flight allocations;
 *   2. compute the new refcounts as changes to the committed ones
 *      (snapshot-refs.c): the paths (L1 table, L2 tables, data) of the
 *      snapshots that go away and of the old active L1 are taken off, those
 *      of new snapshots and of the new active L1 added.  A new snapshot
 *      that takes over the old active L1 takes over its paths too, and an
 *      active L1 entry that stays the same cancels out: neither is read;
 *   3. every L2 table the new active L1 reaches whose COPIED flags are
 *      wrong under the new refcounts is copied, flags set right, to a
 *      cluster free in the committed refcounts; the others stay where they
 *      are (shared with snapshots or not: their L1 entry says which);
 *   4. the new active L1 (COPIED where its L2 table's new refcount is 1),
 *      the new snapshot table, copies of the refcount blocks that change
 *      and a new refcount table go to such free clusters too; flush;
 *   5. one 48-byte header write (offsets 24..71, one sector) switches size,
 *      l1_size, l1_table_offset, refcount_table_offset,
 *      refcount_table_clusters, nb_snapshots and snapshots_offset; flush;
 *   6. what the old state used and the new one does not is punched out of
 *      the file and the free end of the file cut off.
 * A crash before 5 leaves the old image, perhaps with a longer file (the
 * clusters past its end are counted by no refcount); after 5 the new one,
 * perhaps with clusters not yet punched (free in its refcounts all the
 * same).  The cost of 2-4 is proportional to what changes, and the file
 * stays the size of what is in use.
 */
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>

typedef struct {
    Qcow2State *s;
    Qcow2NewRefs *refs;
    uint8_t *l2;           /* one L2 table */
} Commit;

/*
 * Step 2.  Removals first, then additions, so that no count passes
 * refcount_max on the way when the result does not.  Snapshots that are
 * in both tables (same L1 table) do not change anything.
 */
static int commit_count(Commit *c, const uint64_t *src_l1, uint64_t l1_n,
                        GArray *t, BhError **errp)
{
    Qcow2State *s = c->s;
    g_autofree bool *stays = g_new0(bool, s->nb_snapshots + 1);
    g_autofree bool *added = g_new0(bool, t->len + 1);
    bool taken_over = false;
    uint64_t both = MAX(l1_n, s->l1_size);
    int ret = 0;

    for (guint i = 0; i < t->len; i++) {
        Qcow2SnEntry *e = &g_array_index(t, Qcow2SnEntry, i);
        uint32_t j;
        for (j = 0; j < s->nb_snapshots; j++)
            if (!stays[j] && s->snapshots[j].l1_offset == e->l1_offset &&
                s->snapshots[j].l1_size == e->l1_size)
                break;
        if (j < s->nb_snapshots)
            stays[j] = true;
        else if (!taken_over && e->l1_offset == s->l1_offset &&
                 e->l1_size == s->l1_size)
            taken_over = true;
        else
            added[i] = true;
    }
    for (uint64_t i = 0; i < both; i++) {
        uint64_t o = i < s->l1_size ? s->l1[i] : 0;
        uint64_t n = i < l1_n ? src_l1[i] : 0;
        if (o & L1E_OFFSET_MASK)
            ret = qcow2_new_refs_check_l1e(c->refs, i, o, errp);
        if (ret == 0 && (n & L1E_OFFSET_MASK))
            ret = qcow2_new_refs_check_l1e(c->refs, i, n, errp);
        if (ret < 0)
            return ret;
    }

    /* Take off. */
    for (uint32_t j = 0; ret == 0 && j < s->nb_snapshots; j++)
        if (!stays[j])
            ret = qcow2_new_refs_count_l1(c->refs, s->snapshots[j].l1_offset,
                                          s->snapshots[j].l1_size, NULL, -1,
                                          errp);
    if (ret == 0 && !taken_over) {
        ret = qcow2_new_refs_add(c->refs, s->l1_offset,
                                 (uint64_t)s->l1_size * 8, -1, errp);
        for (uint64_t i = 0; ret == 0 && i < s->l1_size; i++) {
            uint64_t o = s->l1[i] & L1E_OFFSET_MASK;
            if (o && (i >= l1_n || (src_l1[i] & L1E_OFFSET_MASK) != o))
                ret = qcow2_new_refs_count_l2(c->refs, o, -1, errp);
        }
    }

    /* Add. */
    for (guint i = 0; ret == 0 && i < t->len; i++)
        if (added[i]) {
            Qcow2SnEntry *e = &g_array_index(t, Qcow2SnEntry, i);
            ret = qcow2_new_refs_count_l1(c->refs, e->l1_offset, e->l1_size,
                                          NULL, 1, errp);
        }
    for (uint64_t i = 0; ret == 0 && i < l1_n; i++) {
        uint64_t n = src_l1[i] & L1E_OFFSET_MASK;
        if (n && (taken_over || i >= s->l1_size ||
                  (s->l1[i] & L1E_OFFSET_MASK) != n))
            ret = qcow2_new_refs_count_l2(c->refs, n, 1, errp);
    }
    return ret;
}

/* Step 3: new_l1[i] gets the L2 table the active image uses for entry i,
 * a copy where the flags of src_l1[i]'s table are wrong (flags of the
 * L1 entries come later). */
static int commit_copy_l2(Commit *c, const uint64_t *src_l1, uint64_t l1_n,
                          uint64_t *new_l1, BhError **errp)
{
    Qcow2State *s = c->s;
    uint64_t *t = (uint64_t *)c->l2;
    int ret = 0;

    for (uint64_t i = 0; ret == 0 && i < l1_n; i++) {
        uint64_t off = src_l1[i] & L1E_OFFSET_MASK, v;
        bool changed = false;
        int64_t at;

        if (!off)
            continue;
        ret = bh_node_pread(s->file, c->l2, off, s->cluster_size, 0, errp);
        for (uint64_t x = 0; ret == 0 && x < s->l2_entries; x++) {
            uint64_t e = GUINT64_FROM_BE(t[x]), want;
            Qcow2ClusterType ty = qcow2_entry_type(s, e);
            if (ty != QCOW2_NORMAL && ty != QCOW2_ZERO_ALLOC)
                continue;
            ret = qcow2_new_refs_get(c->refs,
                                     (e & L2E_OFFSET_MASK) >> s->cluster_bits,
                                     &v, errp);
            want = v == 1 ? e | QCOW_OFLAG_COPIED : e & ~QCOW_OFLAG_COPIED;
            if (want != e) {
                t[x] = GUINT64_TO_BE(want);
                changed = true;
            }
        }
        if (ret < 0)
            return ret;
        if (!changed) {
            new_l1[i] = off;
            continue;
        }
        at = qcow2_new_refs_alloc(c->refs, 1, errp);
        if (at < 0)
            return (int)at;
        ret = qcow2_new_refs_add(c->refs, off, s->cluster_size, -1, errp);
        if (ret == 0)
            ret = bh_node_pwrite(s->file, c->l2, (uint64_t)at,
                                 s->cluster_size, 0, errp);
        new_l1[i] = (uint64_t)at;
    }
    return ret;
}

static int commit_write_be64s(Qcow2State *s, const uint64_t *v, uint64_t n,
                              uint64_t off, BhError **errp)
{
    uint64_t bytes = qcow2_align_up(MAX(n, 1) * 8, s->cluster_size);
    g_autofree uint64_t *be = g_malloc0(bytes);
    for (uint64_t i = 0; i < n; i++)
        be[i] = GUINT64_TO_BE(v[i]);
    return bh_node_pwrite(s->file, be, off, bytes, 0, errp);
}

int qcow2_snapshot_commit_locked(Qcow2State *s, const uint64_t *src_l1,
                                 uint64_t l1_n, uint64_t new_size, GArray *t,
                                 BhError **errp)
{
    uint64_t cs = s->cluster_size, l1_clusters, tbl_clusters, tbl_bytes;
    uint64_t l1_at = 0, tbl_at = 0, rt_at, lowest;
    uint32_t rt_clusters;
    int64_t flen_s = bh_node_size(s->file), at;
    g_autofree uint64_t *new_l1 = NULL;
    g_autofree uint8_t *l2 = NULL;
    g_autoptr(GByteArray) tbl = NULL;
    g_autoptr(Qcow2NewRefs) refs = NULL;
    Commit c;
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
    tbl = qcow2_sn_table_serialize(t);
    tbl_bytes = tbl->len;
    if (tbl->len > (64u << 20))
        return bh_error_set(errp, EFBIG, "qcow2: the snapshot table would "
                            "exceed 64 MiB");
    l1_clusters = qcow2_align_up(l1_n * 8, cs) / cs;   /* 0 for size 0 */
    tbl_clusters = t->len ? qcow2_align_up(tbl->len, cs) / cs : 0;

    refs = qcow2_new_refs_new(s, false);
    l2 = g_malloc(cs);
    new_l1 = g_new0(uint64_t, MAX(l1_n, 1));
    c = (Commit){ s, refs, l2 };

    /* Steps 2-4 write only clusters free in the committed refcounts. */
    ret = commit_count(&c, src_l1, l1_n, t, errp);
    if (ret == 0)
        ret = commit_copy_l2(&c, src_l1, l1_n, new_l1, errp);
    if (ret == 0 && s->nb_snapshots)
        ret = qcow2_new_refs_add(refs, s->snapshots_offset,
                                 s->snapshots_bytes, -1, errp);
    if (ret == 0 && l1_clusters) {
        at = qcow2_new_refs_alloc(refs, l1_clusters, errp);
        ret = at < 0 ? (int)at : 0;
        l1_at = (uint64_t)at;
    }
    if (ret == 0 && tbl_clusters) {
        at = qcow2_new_refs_alloc(refs, tbl_clusters, errp);
        ret = at < 0 ? (int)at : 0;
        tbl_at = (uint64_t)at;
    }
    if (ret == 0)
        ret = qcow2_new_refs_place(refs, errp);
    for (uint64_t i = 0; ret == 0 && i < l1_n; i++) {
        uint64_t v;
        if (!new_l1[i])
            continue;
        ret = qcow2_new_refs_get(refs, new_l1[i] >> s->cluster_bits, &v,
                                 errp);
        if (v == 1)
            new_l1[i] |= QCOW_OFLAG_COPIED;
    }
    if (ret == 0 && l1_n)
        ret = commit_write_be64s(s, new_l1, l1_n, l1_at, errp);
    if (ret == 0 && tbl_clusters) {
        /* The cluster's tail past the table is written too: zeros, never
         * what the heap held before (it would land in the image). */
        guint used = tbl->len;
        g_byte_array_set_size(tbl, tbl_clusters * cs);
        memset(tbl->data + used, 0, tbl->len - used);
        ret = bh_node_pwrite(s->file, tbl->data, tbl_at, tbl->len, 0, errp);
    }
    if (ret == 0)
        ret = qcow2_new_refs_write(refs, errp);
    if (ret == 0)
        ret = bh_node_flush(s->file, errp);
    if (ret < 0)
        goto fail;

    /* Step 5. */
    rt_at = qcow2_new_refs_table_offset(refs, &rt_clusters);
    qcow2_put_be64(hdr, new_size);
    qcow2_put_be32(hdr + 8, 0);                  /* crypt_method */
    qcow2_put_be32(hdr + 12, (uint32_t)l1_n);
    qcow2_put_be64(hdr + 16, l1_n ? l1_at : 0);
    qcow2_put_be64(hdr + 24, rt_at);
    qcow2_put_be32(hdr + 32, rt_clusters);
    qcow2_put_be32(hdr + 36, t->len);
    qcow2_put_be64(hdr + 40, t->len ? tbl_at : 0);
    ret = qcow2_header_write_field(s, QH_SIZE, hdr, 48, errp);
    if (ret < 0)
        return ret;  /* the switch may be on disk: keep what it points to */

    /* Step 6, then the new state in memory. */
    lowest = qcow2_new_refs_switched(refs);
    qcow2_cache_forget_all(s->l2_cache);
    g_free(s->l1);
    s->l1 = g_steal_pointer(&new_l1);
    s->l1_size = (uint32_t)l1_n;
    s->l1_offset = l1_n ? l1_at : 0;
    s->size = new_size;
    s->free_hint = MAX(MIN(s->free_hint, lowest), 1);
    qcow2_sn_table_refresh(s, t, t->len ? tbl_at : 0, tbl_bytes);
    qcow2_overlap_tables_replaced(s);
    return 0;

fail:
    qcow2_new_refs_abandon(refs);
    return ret;
}
