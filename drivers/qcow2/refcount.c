/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 refcounts and cluster allocation.
 *
 * A cluster's refcount says how many tables point at it: 0 free, 1 owned
 * by the active image alone (the COPIED flag is set exactly then), 2 or
 * more shared with internal snapshots, so a write must copy it first.
 *
 * Crash safety rests on three rules, the ones QEMU follows:
 *  1. A refcount is raised on disk before anything that points at the
 *     cluster reaches the disk: the L2 cache's before_write hook
 *     (qcow2_l2_before_write) writes the refcount blocks and flushes the
 *     file before any L2 table is written, and a new refcount block, L2
 *     table or refcount table is written and flushed before the pointer to
 *     it is written.
 *  2. Guest data goes to a newly allocated cluster before the L2 entry that
 *     links it; the same flush in the hook makes that data durable first.
 *  3. A refcount is lowered only after every table that stopped pointing
 *     at the cluster is on disk: frees are queued (qcow2_free_later_locked)
 *     and applied by qcow2_meta_flush_locked after the L2 tables are flushed.
 * A crash between any two steps leaves at worst a cluster whose refcount
 * is too high (a leak, which `qemu-img check` reports with exit code 3),
 * never a pointer to a cluster that is free or reused.
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>

void qcow2_rb_get(Qcow2State *s, const void *block, uint64_t i, uint64_t *v)
{
    const uint8_t *b = block;

    switch (s->refcount_order) {
    case 0: case 1: case 2: {
        int bits = s->refcount_bits, per = 8 / bits;
        *v = (b[i / per] >> ((i % per) * bits)) & ((1u << bits) - 1);
        break;
    }
    case 3: *v = b[i]; break;
    case 4: *v = (uint64_t)b[2 * i] << 8 | b[2 * i + 1]; break;
    case 5: *v = qcow2_be32(b + 4 * i); break;
    default: *v = qcow2_be64(b + 8 * i); break;
    }
}

void qcow2_rb_set(Qcow2State *s, void *block, uint64_t i, uint64_t v)
{
    uint8_t *b = block;

    switch (s->refcount_order) {
    case 0: case 1: case 2: {
        int bits = s->refcount_bits, per = 8 / bits;
        int shift = (i % per) * bits;
        uint8_t mask = ((1u << bits) - 1) << shift;
        b[i / per] = (b[i / per] & ~mask) | ((v << shift) & mask);
        break;
    }
    case 3: b[i] = v; break;
    case 4: b[2 * i] = v >> 8; b[2 * i + 1] = v; break;
    case 5: qcow2_put_be32(b + 4 * i, v); break;
    default: qcow2_put_be64(b + 8 * i, v); break;
    }
}

static int refblock_offset(Qcow2State *s, uint64_t rt_index,
                           uint64_t *offset, BhError **errp)
{
    uint64_t e;

    if (rt_index >= s->reftable_size) {
        *offset = 0;
        return 0;
    }
    e = s->reftable[rt_index];
    if (e & ~REFT_OFFSET_MASK)
        return bh_error_set(errp, EIO, "qcow2: refcount table entry %"
                            PRIu64 " (0x%" PRIx64 ") has reserved bits set",
                            rt_index, e);
    e &= REFT_OFFSET_MASK;
    if (e & (s->cluster_size - 1))
        return bh_error_set(errp, EIO, "qcow2: refcount block %" PRIu64
                            " at 0x%" PRIx64 " is not cluster aligned",
                            rt_index, e);
    *offset = e;
    return 0;
}

int qcow2_get_refcount_locked(Qcow2State *s, uint64_t cluster,
                              uint64_t *refcount, BhError **errp)
{
    uint64_t rt_index = cluster >> s->rb_bits, off = 0;
    void *block;
    int ret;

    ret = refblock_offset(s, rt_index, &off, errp);
    if (ret < 0)
        return ret;
    if (!off) {
        *refcount = 0;
        return 0;
    }
    ret = qcow2_cache_get(s->rb_cache, off, &block, errp);
    if (ret < 0)
        return ret;
    qcow2_rb_get(s, block, cluster & ((1ull << s->rb_bits) - 1), refcount);
    qcow2_cache_put(s->rb_cache, block);
    return 0;
}

static int write_reftable_entry(Qcow2State *s, uint64_t rt_index,
                                uint64_t value, BhError **errp)
{
    uint8_t be[8];
    int ret;

    qcow2_put_be64(be, value);
    ret = qcow2_overlap_refuse_locked(s, QCOW2_OL_REFCOUNT_TABLE,
                                      s->reftable_offset + rt_index * 8, 8,
                                      "a refcount table entry", errp);
    if (ret < 0)
        return ret;
    return bh_node_pwrite(s->file, be, s->reftable_offset + rt_index * 8, 8,
                          0, errp);
}

/*
 * Grow the refcount table so that it has an entry rt_index.  The new table
 * and the refcount blocks that describe it go together in a fresh area
 * starting at the first cluster covered by rt_index (nothing there is
 * allocated, since that range has no refcount block yet); the blocks cover
 * the area itself, so no refcount outside it changes until the header
 * points at the new table.  Order: write blocks and table, flush, switch
 * the header in one write, flush, then free the old table.
 */
static int grow_reftable_locked(Qcow2State *s, uint64_t rt_index,
                                BhError **errp)
{
    uint64_t per_block = 1ull << s->rb_bits, cs = s->cluster_size;
    uint64_t area = rt_index << s->rb_bits;   /* cluster index */
    uint64_t want = MAX(rt_index + 1, s->reftable_size * 2);
    uint64_t nb = 1, nt = 1, old_off = s->reftable_offset;
    uint32_t old_clusters = s->reftable_clusters;
    g_autofree uint8_t *blocks = NULL;
    g_autofree uint8_t *table = NULL;
    uint8_t hdr[12];
    int ret;

    for (;;) {
        uint64_t end = area + nb + nt;
        uint64_t last_rt = (end - 1) >> s->rb_bits;
        uint64_t entries = MAX(want, last_rt + 1);
        uint64_t nb2 = last_rt - rt_index + 1;
        uint64_t nt2 = qcow2_align_up(entries * 8, cs) / cs;
        if (nb2 == nb && nt2 == nt)
            break;
        nb = nb2;
        nt = nt2;
    }
    if (nt * cs > QCOW2_MAX_REFTABLE_BYTES)
        return bh_error_set(errp, EFBIG, "qcow2: the refcount table would "
                            "exceed %u bytes", QCOW2_MAX_REFTABLE_BYTES);
    if ((area + nb + nt) * cs > L2E_OFFSET_MASK)
        return bh_error_set(errp, EFBIG, "qcow2: image file too large");

    blocks = g_malloc0(nb * cs);
    for (uint64_t c = area; c < area + nb + nt; c++) {
        uint64_t b = (c >> s->rb_bits) - rt_index;
        qcow2_rb_set(s, blocks + b * cs, c & (per_block - 1), 1);
    }
    table = g_malloc0(nt * cs);
    for (uint64_t i = 0; i < s->reftable_size; i++)
        qcow2_put_be64(table + i * 8, s->reftable[i]);
    for (uint64_t b = 0; b < nb; b++)
        qcow2_put_be64(table + (rt_index + b) * 8, (area + b) * cs);

    ret = qcow2_overlap_refuse_locked(s, 0, area * cs, (nb + nt) * cs,
                                      "a new refcount table", errp);
    if (ret == 0)
        ret = bh_node_pwrite(s->file, blocks, area * cs, nb * cs, 0, errp);
    if (ret == 0)
        ret = bh_node_pwrite(s->file, table, (area + nb) * cs, nt * cs, 0,
                             errp);
    if (ret == 0)
        ret = bh_node_flush(s->file, errp);
    if (ret < 0)
        return ret;
    qcow2_put_be64(hdr, (area + nb) * cs);
    qcow2_put_be32(hdr + 8, nt);
    ret = qcow2_header_write_field(s, QH_REFTABLE_OFFSET, hdr, 12, errp);
    if (ret < 0)
        return ret;

    g_free(s->reftable);
    s->reftable_size = nt * cs / 8;
    s->reftable = g_new0(uint64_t, s->reftable_size);
    for (uint64_t i = 0; i < s->reftable_size; i++)
        s->reftable[i] = qcow2_be64(table + i * 8);
    s->reftable_offset = (area + nb) * cs;
    s->reftable_clusters = nt;
    return qcow2_free_now_locked(s, old_off, (uint64_t)old_clusters * cs,
                                 errp);
}

/*
 * Give refcount table entry rt_index a block.  Nothing in the range it
 * covers is allocated, so the block goes in the range's first cluster and
 * counts itself.  Written and flushed before the table points at it.
 */
static int create_refblock_locked(Qcow2State *s, uint64_t rt_index,
                                  BhError **errp)
{
    uint64_t cs = s->cluster_size, off;
    g_autofree uint8_t *block = NULL;
    int ret, hit;

    if (rt_index >= s->reftable_size) {
        ret = grow_reftable_locked(s, rt_index, errp);
        if (ret < 0)
            return ret;
        if (s->reftable[rt_index])
            return 0;
    }
    off = (rt_index << s->rb_bits) * cs;
    if (off > L2E_OFFSET_MASK)
        return bh_error_set(errp, EFBIG, "qcow2: image file too large");
    hit = qcow2_overlap_check(s, 0, off, cs);
    if (hit) {
        g_autofree char *why = g_strdup_printf("refcount table entry %"
            PRIu64 " is empty but its range holds the %s", rt_index,
            qcow2_overlap_name(hit));
        qcow2_mark_corrupt_locked(s, why);
        return bh_error_set(errp, EIO, "qcow2: %s; image marked corrupt", why);
    }
    block = g_malloc0(cs);
    qcow2_rb_set(s, block, 0, 1);
    ret = bh_node_pwrite(s->file, block, off, cs, 0, errp);
    if (ret == 0)
        ret = bh_node_flush(s->file, errp);
    if (ret == 0)
        ret = write_reftable_entry(s, rt_index, off, errp);
    if (ret < 0)
        return ret;
    qcow2_overlap_entry_set(s, false, s->reftable[rt_index], off);
    s->reftable[rt_index] = off;
    return 0;
}

int qcow2_update_refcount_locked(Qcow2State *s, uint64_t cluster,
                                 int64_t delta, BhError **errp)
{
    uint64_t rt_index = cluster >> s->rb_bits, off = 0, v, nv;
    void *block;
    int ret;

    ret = refblock_offset(s, rt_index, &off, errp);
    if (ret < 0)
        return ret;
    if (!off) {
        if (delta < 0)
            return bh_error_set(errp, EIO, "qcow2: freeing cluster %" PRIu64
                                " which has no refcount block", cluster);
        ret = create_refblock_locked(s, rt_index, errp);
        if (ret < 0)
            return ret;
        off = s->reftable[rt_index];
    }
    ret = qcow2_cache_get(s->rb_cache, off, &block, errp);
    if (ret < 0)
        return ret;
    qcow2_rb_get(s, block, cluster & ((1ull << s->rb_bits) - 1), &v);
    if (delta < 0 ? v < (uint64_t)-delta : s->refcount_max - v < (uint64_t)delta) {
        qcow2_cache_put(s->rb_cache, block);
        return bh_error_set(errp, delta < 0 ? EIO : ERANGE,
                            "qcow2: refcount of cluster %" PRIu64 " is %" PRIu64
                            ", cannot %s it by %" PRIu64 " (refcount_bits %d)",
                            cluster, v, delta < 0 ? "lower" : "raise",
                            (uint64_t)(delta < 0 ? -delta : delta),
                            s->refcount_bits);
    }
    nv = v + delta;
    qcow2_rb_set(s, block, cluster & ((1ull << s->rb_bits) - 1), nv);
    qcow2_cache_mark_dirty(s->rb_cache, block);
    qcow2_cache_put(s->rb_cache, block);
    if (nv == 0) {
        if (cluster < s->free_hint)
            s->free_hint = cluster;
        qcow2_cache_forget(s->l2_cache, cluster * s->cluster_size);
    }
    return 0;
}

/* Is cluster c free?  A cluster in a range with no refcount block is:
 * nothing in such a range is allocated. */
static int cluster_free_locked(Qcow2State *s, uint64_t c, bool *is_free,
                               BhError **errp)
{
    uint64_t off = 0, v;
    int ret = refblock_offset(s, c >> s->rb_bits, &off, errp);

    if (ret < 0)
        return ret;
    if (!off) {
        *is_free = true;
        return 0;
    }
    ret = qcow2_get_refcount_locked(s, c, &v, errp);
    if (ret < 0)
        return ret;
    *is_free = v == 0;
    return 0;
}

/* How many ranges in [first, last] (refcount table indexes) lack a block. */
static int count_missing_locked(Qcow2State *s, uint64_t first, uint64_t last,
                                uint64_t *missing, BhError **errp)
{
    *missing = 0;
    for (uint64_t r = first; r <= last; r++) {
        uint64_t off = 0;
        int ret = refblock_offset(s, r, &off, errp);
        if (ret < 0)
            return ret;
        *missing += !off;
    }
    return 0;
}

/*
 * Give blocks to the m ranges without one among those that [a, at + m)
 * touches, placing them at clusters at .. at+m-1, just after the run a
 * caller is allocating.  They go together, like the blocks of a grown
 * refcount table: a block that lands in a range of the group counts it,
 * one that lands in a range that already had a block is counted there.
 * Blocks and counts reach the disk, flushed, before any refcount table
 * entry points at them.
 *
 * Why not each block at the start of its own range, as
 * create_refblock_locked does: with small clusters and wide refcounts a
 * range is 64 clusters, so no run longer than 63 clusters would ever fit
 * in fresh ranges, and an allocation of a 64 KiB write in 512-byte
 * clusters would make blocks for ever.
 */
static int place_refblocks_locked(Qcow2State *s, uint64_t a, uint64_t at,
                                  uint64_t m, BhError **errp)
{
    uint64_t cs = s->cluster_size, per_block = 1ull << s->rb_bits;
    uint64_t first = a >> s->rb_bits, last = (at + m - 1) >> s->rb_bits;
    g_autofree uint64_t *ranges = g_new(uint64_t, m);
    g_autofree uint8_t *blocks = g_malloc0(m * cs);
    uint64_t k = 0;
    int ret;

    for (uint64_t r = first; r <= last; r++) {
        uint64_t off = 0;
        ret = refblock_offset(s, r, &off, errp);
        if (ret < 0)
            return ret;
        if (!off)
            ranges[k++] = r;
    }
    g_assert(k == m);
    ret = qcow2_overlap_refuse_locked(s, 0, at * cs, m * cs,
                                      "new refcount blocks", errp);
    if (ret < 0)
        return ret;
    for (uint64_t c = at; c < at + m; c++) {
        uint64_t r = c >> s->rb_bits, j;
        for (j = 0; j < m && ranges[j] != r; j++)
            ;
        if (j < m) {
            qcow2_rb_set(s, blocks + j * cs, c & (per_block - 1), 1);
        } else {
            ret = qcow2_update_refcount_locked(s, c, 1, errp);
            if (ret < 0)
                return ret;
        }
    }
    ret = bh_node_pwrite(s->file, blocks, at * cs, m * cs, 0, errp);
    if (ret == 0)
        ret = qcow2_cache_flush(s->rb_cache, errp);
    if (ret == 0)
        ret = bh_node_flush(s->file, errp);
    for (uint64_t j = 0; j < m && ret == 0; j++) {
        uint64_t off = (at + j) * cs;
        ret = write_reftable_entry(s, ranges[j], off, errp);
        if (ret == 0) {
            qcow2_overlap_entry_set(s, false, s->reftable[ranges[j]], off);
            s->reftable[ranges[j]] = off;
        }
    }
    return ret;
}

/*
 * n contiguous free clusters, their refcounts raised to 1 (in the cache).
 * The run may cross ranges that have no refcount block yet; their blocks
 * go right after the run (place_refblocks_locked).
 */
int64_t qcow2_alloc_clusters_locked(Qcow2State *s, uint64_t n, BhError **errp)
{
    uint64_t i, run_start, run, first_free, m;
    bool is_free;
    int ret;

retry:
    i = run_start = MAX(s->free_hint, 1);   /* cluster 0 is the header */
    run = 0;
    first_free = UINT64_MAX;
    for (;;) {
        while (run < n) {
            if ((i + 1) * s->cluster_size > L2E_OFFSET_MASK)
                return bh_error_set(errp, ENOSPC, "qcow2: no room left for "
                                    "%" PRIu64 " clusters", n);
            ret = cluster_free_locked(s, i, &is_free, errp);
            if (ret < 0)
                return ret;
            if (is_free) {
                if (first_free == UINT64_MAX)
                    first_free = i;
                if (run == 0)
                    run_start = i;
                run++;
            } else {
                run = 0;
            }
            i++;
        }
        /* The blocks the run's ranges lack, and the ranges those touch. */
        m = 0;
        for (;;) {
            uint64_t m2;
            ret = count_missing_locked(s, run_start >> s->rb_bits,
                                       (run_start + n + m - 1) >> s->rb_bits,
                                       &m2, errp);
            if (ret < 0)
                return ret;
            if (m2 == m)
                break;
            m = m2;
        }
        /* The clusters after the run must be free for those blocks. */
        while (run < n + m) {
            ret = cluster_free_locked(s, i, &is_free, errp);
            if (ret < 0)
                return ret;
            if (!is_free)
                break;
            run++;
            i++;
        }
        if (run >= n + m)
            break;
        run = 0;   /* not room after it: look further */
        i++;
    }
    if (m && ((run_start + n + m - 1) >> s->rb_bits) >= s->reftable_size) {
        /* The table has no entry for the last range: grow it (in fresh
         * ranges past the end) and look again, since its new blocks and
         * table may sit where this run was. */
        ret = grow_reftable_locked(s, (run_start + n + m - 1) >> s->rb_bits,
                                   errp);
        if (ret < 0)
            return ret;
        goto retry;
    }
    /* Free by its refcount, yet holding metadata: the refcounts are
     * corrupt (a zeroed refcount block, say).  Refuse before anything
     * changes, or the caller would write over that metadata. */
    ret = qcow2_overlap_refuse_locked(s, 0, run_start * s->cluster_size,
                                      n * s->cluster_size,
                                      "newly allocated clusters", errp);
    if (ret < 0)
        return ret;
    if (m) {
        ret = place_refblocks_locked(s, run_start, run_start + n, m, errp);
        if (ret < 0)
            return ret;
    }
    for (uint64_t c = run_start; c < run_start + n; c++) {
        ret = qcow2_update_refcount_locked(s, c, 1, errp);
        if (ret < 0)
            return ret;
    }
    /* Free clusters skipped because the run was too short stay findable. */
    s->free_hint = first_free == run_start ? run_start + n + m : first_free;
    return (int64_t)(run_start * s->cluster_size);
}

int qcow2_free_now_locked(Qcow2State *s, uint64_t offset, uint64_t bytes,
                          BhError **errp)
{
    uint64_t first, last;
    int ret;

    if (!bytes)
        return 0;
    first = offset >> s->cluster_bits;
    last = (offset + bytes - 1) >> s->cluster_bits;
    for (uint64_t c = first; c <= last; c++) {
        ret = qcow2_update_refcount_locked(s, c, -1, errp);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* Returns 1 when enough frees are queued that the caller should flush. */
int qcow2_free_later_locked(Qcow2State *s, uint64_t offset, uint64_t bytes)
{
    Qcow2PendingFree f = { offset, bytes };
    g_array_append_val(s->pending_free, f);
    return s->pending_free->len >= 4096;
}

int qcow2_l2_before_write(Qcow2State *s, BhError **errp)
{
    int ret;

    if (!s->lazy) {
        ret = qcow2_cache_flush(s->rb_cache, errp);
        if (ret < 0)
            return ret;
    }
    return bh_node_flush(s->file, errp);
}

/* Make every metadata change durable, in the order the file comment at the
 * top explains, then apply the frees that were queued before the L2
 * tables were written.  One flush at a time: draining I/O releases the
 * lock, and meanwhile other threads may only append to pending_free. */
int qcow2_meta_flush_locked(Qcow2State *s, BhError **errp)
{
    guint n;
    int ret;

    while (s->flushing)
        g_cond_wait(&s->drain_cond, &s->lock);
    s->flushing = true;
    ret = qcow2_cache_flush(s->l2_cache, errp);
    if (ret == 0)
        ret = qcow2_cache_flush(s->rb_cache, errp);
    if (ret == 0)
        ret = bh_node_flush(s->file, errp);
    n = s->pending_free->len;
    if (ret < 0 || n == 0)
        goto out;

    /* Nobody may still be reading or writing a cluster about to be freed
     * through a mapping looked up before it changed. */
    qcow2_io_drain_locked(s);
    for (guint i = 0; i < n; i++) {
        Qcow2PendingFree *f = &g_array_index(s->pending_free,
                                             Qcow2PendingFree, i);
        ret = qcow2_free_now_locked(s, f->offset, f->bytes, errp);
        if (ret < 0) {
            n = i;
            break;
        }
    }
    g_array_remove_range(s->pending_free, 0, n);
    if (ret == 0)
        ret = qcow2_cache_flush(s->rb_cache, errp);
    if (ret == 0)
        ret = bh_node_flush(s->file, errp);
out:
    s->flushing = false;
    g_cond_broadcast(&s->drain_cond);
    return ret;
}
