/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 snapshot commit, the refcount side: the refcounts of the state a
 * commit switches to, built as changes to the committed ones.
 *
 * Only the refcount blocks that change are copied (into memory, later to
 * new clusters); the new refcount table points at those copies and at the
 * untouched blocks of the committed table.  Clusters for anything new (L2
 * copies, L1 table, snapshot table, refcount blocks, refcount table) are
 * taken among those free in the committed refcounts and not yet taken in
 * the new ones: the committed state never uses them, so writing them
 * before the header switch cannot harm it, and a cluster the commit frees
 * is never reused by the same commit.  Once the switch is on disk,
 * qcow2_new_refs_reclaim punches out what only the old state used and cuts
 * the free tail off the file.
 *
 * The refcount rebuild of a dirty image (rebuild.c) uses the same
 * machinery from scratch: every count starts at 0 instead of the committed
 * value (those may lag behind the tables), a cluster is free when nothing
 * counted uses it and it holds no committed refcount structure, and the new
 * table points at new blocks only.
 *
 * Memory: one cluster per refcount block that changes plus one scratch
 * block.  At 1 TiB with 64 KiB clusters and 16-bit refcounts that is at
 * most 32 MiB (every block changes when a snapshot of a fully allocated
 * image is made or deleted); nothing is kept per cluster.
 */
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <blkhost/glib.h>

typedef struct {
    uint64_t index;
    uint64_t old_off;      /* 0: the committed table has no block here */
    uint64_t new_off;      /* 0: not placed yet */
    uint8_t *buf;          /* the new content */
} RefBlock;

struct Qcow2NewRefs {
    Qcow2State *s;
    bool scratch;          /* counting from 0, not from the committed */
    GHashTable *old_meta;  /* scratch: clusters of the committed structure */
    uint64_t flen;         /* the file's length at the start */
    uint8_t *l2;           /* one L2 table, for the counting walks */
    GHashTable *blocks;    /* index -> RefBlock* */
    RefBlock *last;        /* the last one looked up */
    GPtrArray *unplaced;   /* RefBlock* without a new cluster yet */
    uint64_t cursor;       /* no cluster below is free */
    uint64_t top;          /* highest block index touched + 1 */
    uint64_t rt_offset;    /* the new refcount table */
    uint64_t rt_clusters;
    uint64_t *rt;          /* its entries (host endian), once written */
    uint8_t *old;          /* one committed block ... */
    uint64_t old_index;    /* ... this one (UINT64_MAX: none) */
};

static void refs_block_free(gpointer p)
{
    RefBlock *b = p;
    g_free(b->buf);
    g_free(b);
}

Qcow2NewRefs *qcow2_new_refs_new(Qcow2State *s, bool from_scratch)
{
    Qcow2NewRefs *r = g_new0(Qcow2NewRefs, 1);
    int64_t flen = bh_node_size(s->file);

    r->s = s;
    r->scratch = from_scratch;
    r->flen = flen > 0 ? (uint64_t)flen : 0;
    r->l2 = g_malloc(s->cluster_size);
    r->old_meta = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free,
                                        NULL);
    if (from_scratch) {
        uint64_t first = s->reftable_offset >> s->cluster_bits;
        for (uint64_t c = first; c < first + s->reftable_clusters; c++)
            g_hash_table_add(r->old_meta, g_memdup2(&c, 8));
        for (uint64_t i = 0; i < s->reftable_size; i++) {
            uint64_t c = (s->reftable[i] & REFT_OFFSET_MASK) >> s->cluster_bits;
            if (c)
                g_hash_table_add(r->old_meta, g_memdup2(&c, 8));
        }
    }
    r->blocks = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
                                      refs_block_free);
    r->unplaced = g_ptr_array_new();
    r->cursor = MAX(s->free_hint, 1);   /* cluster 0: the header */
    r->old = g_malloc(s->cluster_size);
    r->old_index = UINT64_MAX;
    return r;
}

void qcow2_new_refs_free(Qcow2NewRefs *r)
{
    if (!r)
        return;
    g_ptr_array_free(r->unplaced, TRUE);
    g_hash_table_destroy(r->blocks);
    g_hash_table_destroy(r->old_meta);
    g_free(r->rt);
    g_free(r->l2);
    g_free(r->old);
    g_free(r);
}

/* The committed refcount block index (NULL when it has none).  Read from
 * the file: the caches were flushed and are not used by the commit. */
static int refs_old_block(Qcow2NewRefs *r, uint64_t index,
                          const uint8_t **out, BhError **errp)
{
    Qcow2State *s = r->s;
    uint64_t e;
    int ret;

    *out = NULL;
    if (index >= s->reftable_size || !s->reftable[index])
        return 0;
    e = s->reftable[index];
    if ((e & ~REFT_OFFSET_MASK) || (e & (s->cluster_size - 1)))
        return bh_error_set(errp, EIO, "qcow2: refcount table entry %" PRIu64
                            " (0x%" PRIx64 ") is invalid", index, e);
    if (r->old_index != index) {
        r->old_index = UINT64_MAX;
        ret = bh_node_pread(s->file, r->old, e, s->cluster_size, 0, errp);
        if (ret < 0)
            return ret;
        r->old_index = index;
    }
    *out = r->old;
    return 0;
}

static RefBlock *refs_lookup(Qcow2NewRefs *r, uint64_t index)
{
    if (!r->last || r->last->index != index) {
        RefBlock *b = g_hash_table_lookup(r->blocks, &index);
        if (!b)
            return NULL;
        r->last = b;
    }
    return r->last;
}

static int refs_block_get(Qcow2NewRefs *r, uint64_t index, RefBlock **out,
                          BhError **errp)
{
    Qcow2State *s = r->s;
    const uint8_t *old;
    RefBlock *b = refs_lookup(r, index);
    int ret;

    if (b) {
        *out = b;
        return 0;
    }
    ret = refs_old_block(r, index, &old, errp);
    if (ret < 0)
        return ret;
    b = g_new0(RefBlock, 1);
    b->index = index;
    b->old_off = old ? s->reftable[index] : 0;
    b->buf = old && !r->scratch ? g_memdup2(old, s->cluster_size)
                                : g_malloc0(s->cluster_size);
    g_hash_table_insert(r->blocks, &b->index, b);
    g_ptr_array_add(r->unplaced, b);
    r->top = MAX(r->top, index + 1);
    r->last = b;
    *out = b;
    return 0;
}

/* Add delta to the refcount of every cluster of [offset, offset+bytes). */
int qcow2_new_refs_add(Qcow2NewRefs *r, uint64_t offset, uint64_t bytes,
                       int64_t delta, BhError **errp)
{
    Qcow2State *s = r->s;
    uint64_t mask = (1ull << s->rb_bits) - 1, end = offset + bytes, v;
    RefBlock *b;
    int ret;

    for (uint64_t c = offset >> s->cluster_bits; c << s->cluster_bits < end;
         c++) {
        ret = refs_block_get(r, c >> s->rb_bits, &b, errp);
        if (ret < 0)
            return ret;
        qcow2_rb_get(s, b->buf, c & mask, &v);
        if (delta < 0 && v < (uint64_t)-delta)
            return bh_error_set(errp, EIO, "qcow2: cluster %" PRIu64 " has "
                                "refcount %" PRIu64 " but loses %" PRId64
                                " references: the refcounts disagree with the"
                                " tables (qemu-img check -r all repairs "
                                "that)", c, v, -delta);
        if (delta > 0 && s->refcount_max - v < (uint64_t)delta)
            return bh_error_set(errp, ERANGE, "qcow2: cluster %" PRIu64
                                " would have %" PRIu64 " references, more "
                                "than refcount_bits %d allows", c,
                                v + (uint64_t)delta, s->refcount_bits);
        qcow2_rb_set(s, b->buf, c & mask, v + delta);
    }
    return 0;
}

int qcow2_new_refs_get(Qcow2NewRefs *r, uint64_t cluster, uint64_t *v,
                       BhError **errp)
{
    Qcow2State *s = r->s;
    uint64_t i = cluster & ((1ull << s->rb_bits) - 1);
    RefBlock *b = refs_lookup(r, cluster >> s->rb_bits);
    const uint8_t *old;
    int ret;

    if (b) {
        qcow2_rb_get(s, b->buf, i, v);
        return 0;
    }
    *v = 0;
    if (r->scratch)
        return 0;
    ret = refs_old_block(r, cluster >> s->rb_bits, &old, errp);
    if (ret == 0 && old)
        qcow2_rb_get(s, old, i, v);
    return ret;
}

/* A reference the committed state holds must lie inside the file's
 * clusters (a compressed cluster's sector count may reach a little past
 * the last byte written, within its last cluster). */
static int refs_check_range(Qcow2NewRefs *r, const char *what,
                            uint64_t offset, uint64_t bytes, BhError **errp)
{
    uint64_t limit = qcow2_align_up(r->flen, r->s->cluster_size);
    if (offset + bytes > limit || offset + bytes < offset)
        return bh_error_set(errp, EIO, "qcow2: %s at 0x%" PRIx64 " lies "
                            "past the end of the file", what, offset);
    return 0;
}

int qcow2_new_refs_check_l1e(Qcow2NewRefs *r, uint64_t i, uint64_t e,
                             BhError **errp)
{
    uint64_t off = e & L1E_OFFSET_MASK;
    if ((e & L1E_RESERVED) || (off & (r->s->cluster_size - 1)) ||
        off + r->s->cluster_size > r->flen)
        return bh_error_set(errp, EIO, "qcow2: L1 entry %" PRIu64 " (0x%"
                            PRIx64 ") is invalid (reserved bits, unaligned, or"
                            " past the end of the file)", i, e);
    return 0;
}

int qcow2_new_refs_count_l2(Qcow2NewRefs *r, uint64_t l2_off, int64_t delta,
                            BhError **errp)
{
    Qcow2State *s = r->s;
    const uint64_t *t = (const uint64_t *)r->l2;
    int ret = qcow2_new_refs_add(r, l2_off, s->cluster_size, delta, errp);

    if (ret == 0)
        ret = bh_node_pread(s->file, r->l2, l2_off, s->cluster_size, 0, errp);
    for (uint64_t j = 0; ret == 0 && j < s->l2_entries; j++) {
        uint64_t e = GUINT64_FROM_BE(t[j]), start, bytes;
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
        ret = refs_check_range(r, "a data cluster", start, bytes, errp);
        if (ret == 0)
            ret = qcow2_new_refs_add(r, start, bytes, delta, errp);
    }
    return ret;
}

int qcow2_new_refs_count_l1(Qcow2NewRefs *r, uint64_t offset, uint32_t n,
                            const uint64_t *mem, int64_t delta, BhError **errp)
{
    g_autofree uint64_t *l1 = NULL;
    int ret = refs_check_range(r, "an L1 table", offset, (uint64_t)n * 8,
                               errp);
    if (ret == 0)
        ret = qcow2_new_refs_add(r, offset, (uint64_t)n * 8, delta, errp);
    if (ret == 0 && !mem) {
        ret = qcow2_snapshot_read_l1(r->s, offset, n, &l1, errp);
        mem = l1;
    }
    for (uint32_t i = 0; ret == 0 && i < n; i++) {
        if (!(mem[i] & L1E_OFFSET_MASK))
            continue;
        ret = qcow2_new_refs_check_l1e(r, i, mem[i], errp);
        if (ret == 0)
            ret = qcow2_new_refs_count_l2(r, mem[i] & L1E_OFFSET_MASK, delta,
                                          errp);
    }
    return ret;
}

/* n contiguous clusters free before and after, now counted once; returns
 * the byte offset of the first. */
int64_t qcow2_new_refs_alloc(Qcow2NewRefs *r, uint64_t n, BhError **errp)
{
    Qcow2State *s = r->s;
    uint64_t per = 1ull << s->rb_bits, x = r->cursor, start = x, run = 0;
    uint64_t first_free = UINT64_MAX;
    int ret;

    while (run < n) {
        uint64_t index = x >> s->rb_bits, end = (index + 1) << s->rb_bits;
        RefBlock *b = refs_lookup(r, index);
        const uint8_t *old;

        if (x + n > (L2E_OFFSET_MASK >> s->cluster_bits))
            return bh_error_set(errp, ENOSPC, "qcow2: no room left in the "
                                "image file for %" PRIu64 " clusters", n);
        ret = r->scratch ? 0 : refs_old_block(r, index, &old, errp);
        if (ret < 0)
            return ret;
        if (r->scratch)
            old = NULL;
        for (; x < end && run < n; x++) {
            uint64_t vo = 0, vn;
            if (old)
                qcow2_rb_get(s, old, x & (per - 1), &vo);
            vn = vo;
            if (b)
                qcow2_rb_get(s, b->buf, x & (per - 1), &vn);
            if (r->scratch && !vn)
                vo = g_hash_table_contains(r->old_meta, &x);
            if (vo || vn) {
                run = 0;
                continue;
            }
            if (first_free == UINT64_MAX)
                first_free = x;
            if (!run++)
                start = x;
        }
    }
    /* Free in the refcounts is not proof: a damaged refcount block reads
     * as free while the live tables sit there.  Writing the new tables
     * over them would wreck the old state before the header switch. */
    ret = qcow2_overlap_refuse_locked(s, 0, start << s->cluster_bits,
                                      n << s->cluster_bits,
                                      "new snapshot metadata", errp);
    if (ret == 0)
        ret = qcow2_new_refs_add(r, start << s->cluster_bits,
                                 n << s->cluster_bits, 1, errp);
    if (ret < 0)
        return ret;
    r->cursor = first_free == start ? start + n : first_free;
    return (int64_t)(start << s->cluster_bits);
}

static int refs_release(Qcow2NewRefs *r, uint64_t offset, uint64_t n,
                        BhError **errp)
{
    r->cursor = MIN(r->cursor, offset >> r->s->cluster_bits);
    return qcow2_new_refs_add(r, offset, n << r->s->cluster_bits, -1, errp);
}

/*
 * Give every changed block a cluster and the table room for every block.
 * Placing a block changes refcounts (its new cluster, its old one), which
 * may change more blocks; a larger table may too: repeat until stable.
 * The committed refcount table is freed here, so call this once, after
 * every other change.
 */
int qcow2_new_refs_place(Qcow2NewRefs *r, BhError **errp)
{
    Qcow2State *s = r->s;
    uint64_t cs = s->cluster_size;
    int64_t off;
    int ret;

    if (!r->scratch) {
        ret = qcow2_new_refs_add(r, s->reftable_offset,
                                 (uint64_t)s->reftable_clusters * cs, -1,
                                 errp);
        if (ret < 0)
            return ret;
    }
    for (;;) {
        uint64_t need, nt;
        while (r->unplaced->len) {
            RefBlock *b = g_ptr_array_steal_index_fast(r->unplaced,
                                                       r->unplaced->len - 1);
            off = qcow2_new_refs_alloc(r, 1, errp);
            if (off < 0)
                return (int)off;
            b->new_off = (uint64_t)off;
            if (b->old_off && !r->scratch) {
                ret = qcow2_new_refs_add(r, b->old_off, cs, -1, errp);
                if (ret < 0)
                    return ret;
            }
        }
        need = MAX(s->reftable_size, r->top);
        nt = qcow2_align_up(need * 8, cs) / cs;
        if (nt * cs > QCOW2_MAX_REFTABLE_BYTES)
            return bh_error_set(errp, EFBIG, "qcow2: the refcount table "
                                "would exceed %u bytes",
                                QCOW2_MAX_REFTABLE_BYTES);
        if (r->rt_clusters >= nt) {
            if (!r->unplaced->len)
                return 0;
            continue;
        }
        if (r->rt_clusters) {
            ret = refs_release(r, r->rt_offset, r->rt_clusters, errp);
            if (ret < 0)
                return ret;
        }
        off = qcow2_new_refs_alloc(r, nt, errp);
        if (off < 0)
            return (int)off;
        r->rt_offset = (uint64_t)off;
        r->rt_clusters = nt;
    }
}

static gint refs_by_offset(gconstpointer a, gconstpointer b)
{
    const RefBlock *x = *(RefBlock *const *)a, *y = *(RefBlock *const *)b;
    return x->new_off < y->new_off ? -1 : x->new_off > y->new_off;
}

/* Write the changed blocks and the new table (not flushed). */
int qcow2_new_refs_write(Qcow2NewRefs *r, BhError **errp)
{
    Qcow2State *s = r->s;
    uint64_t cs = s->cluster_size, n = r->rt_clusters * cs / 8;
    g_autoptr(GPtrArray) order = g_ptr_array_new();
    g_autofree uint64_t *rt = g_new0(uint64_t, n);
    g_autofree uint64_t *be = g_new0(uint64_t, n);
    GHashTableIter it;
    gpointer k, v;
    int ret = 0;

    if (!r->scratch)
        memcpy(rt, s->reftable, MIN(s->reftable_size, n) * 8);
    g_hash_table_iter_init(&it, r->blocks);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        RefBlock *b = v;
        rt[b->index] = b->new_off;
        g_ptr_array_add(order, b);
    }
    g_ptr_array_sort(order, refs_by_offset);   /* sequential writes */
    for (guint i = 0; ret == 0 && i < order->len; i++) {
        RefBlock *b = order->pdata[i];
        ret = bh_node_pwrite(s->file, b->buf, b->new_off, cs, 0, errp);
    }
    for (uint64_t i = 0; i < n; i++)
        be[i] = GUINT64_TO_BE(rt[i]);
    if (ret == 0)
        ret = bh_node_pwrite(s->file, be, r->rt_offset, n * 8, 0, errp);
    if (ret < 0)
        return ret;
    g_free(r->rt);
    r->rt = g_steal_pointer(&rt);
    return 0;
}

uint64_t qcow2_new_refs_table_offset(Qcow2NewRefs *r, uint32_t *clusters)
{
    *clusters = (uint32_t)r->rt_clusters;
    return r->rt_offset;
}

/* The new content of block index (NULL: none), the committed one when
 * the commit did not change it. */
static int refs_new_block(Qcow2NewRefs *r, uint64_t index,
                          const uint8_t **out, BhError **errp)
{
    RefBlock *b = refs_lookup(r, index);
    if (b || r->scratch) {
        *out = b ? b->buf : NULL;
        return 0;
    }
    return refs_old_block(r, index, out, errp);
}

static void refs_discard(Qcow2NewRefs *r, uint64_t first, uint64_t n)
{
    if (n)
        bh_node_discard(r->s->file, first << r->s->cluster_bits,
                        n << r->s->cluster_bits, NULL);
}

/*
 * After the header switch is on disk, while s->reftable is still the old
 * table: punch out every cluster the old state used and the new one does
 * not, and cut off the end of the file that no cluster in use reaches.
 * Space only: a failure here loses nothing and is not reported.  Old
 * refcount blocks are punched last, since they are read on the way.
 * Returns the lowest cluster freed (UINT64_MAX: none).
 */
static uint64_t refs_reclaim(Qcow2NewRefs *r)
{
    Qcow2State *s = r->s;
    uint64_t per = 1ull << s->rb_bits, cs = s->cluster_size;
    uint64_t top = MAX(s->reftable_size, r->top), end = 1;
    uint64_t lowest = UINT64_MAX;
    g_autoptr(GHashTable) old_blocks = g_hash_table_new(g_int64_hash,
                                                        g_int64_equal);
    g_autoptr(GPtrArray) order = g_ptr_array_new();
    GHashTableIter it;
    gpointer k, v;
    int64_t flen = bh_node_size(s->file);

    /* The end of the last cluster in use. */
    for (uint64_t idx = top; idx-- > 0 && end == 1;) {
        const uint8_t *nb;
        if (refs_new_block(r, idx, &nb, NULL) < 0)
            return UINT64_MAX;    /* unknown: leave the file as it is */
        for (uint64_t i = per; nb && i-- > 0;) {
            uint64_t val;
            qcow2_rb_get(s, nb, i, &val);
            if (val) {
                end = (idx << s->rb_bits) + i + 1;
                break;
            }
        }
    }

    g_hash_table_iter_init(&it, r->blocks);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        RefBlock *b = v;
        if (b->old_off)
            g_hash_table_add(old_blocks, &b->old_off);
        g_ptr_array_add(order, b);
    }
    for (guint j = 0; j < order->len; j++) {
        RefBlock *b = order->pdata[j];
        uint64_t base = b->index << s->rb_bits, run = 0, from = 0;
        const uint8_t *old;
        if (!b->old_off || refs_old_block(r, b->index, &old, NULL) < 0 ||
            !old)
            continue;
        for (uint64_t i = 0; i < per; i++) {
            uint64_t vo, vn, c = base + i, off = c * cs;
            bool freed;
            qcow2_rb_get(s, old, i, &vo);
            qcow2_rb_get(s, b->buf, i, &vn);
            freed = vo && !vn;
            if (freed)
                lowest = MIN(lowest, c);
            if (freed && c < end && !g_hash_table_contains(old_blocks, &off)) {
                if (!run++)
                    from = c;
                continue;
            }
            refs_discard(r, from, run);
            run = 0;
        }
        refs_discard(r, from, run);
    }
    for (guint j = 0; j < order->len; j++) {
        RefBlock *b = order->pdata[j];
        uint64_t c = b->old_off / cs, val;
        if (b->old_off && c < end &&
            qcow2_new_refs_get(r, c, &val, NULL) == 0 && !val)
            refs_discard(r, c, 1);
    }
    if (flen > 0 && (uint64_t)flen > end * cs)
        bh_node_truncate(s->file, end * cs, NULL);
    return lowest;
}

/* The header now points at the new table (on disk): reclaim, then make
 * the new table the one in memory. */
uint64_t qcow2_new_refs_switched(Qcow2NewRefs *r)
{
    Qcow2State *s = r->s;
    uint64_t lowest = refs_reclaim(r);

    g_free(s->reftable);
    s->reftable = g_steal_pointer(&r->rt);
    s->reftable_size = r->rt_clusters * s->cluster_size / 8;
    s->reftable_offset = r->rt_offset;
    s->reftable_clusters = (uint32_t)r->rt_clusters;
    qcow2_cache_forget_all(s->rb_cache);
    qcow2_overlap_tables_replaced(s);
    /* Refcounts were recounted: the partly filled cluster compressed
     * writes were packing into may be free now. */
    s->free_byte_offset = 0;
    return lowest;
}

/* The switch will not happen: what was written lies in clusters the image
 * does not use; give back what went past the old end of the file. */
void qcow2_new_refs_abandon(Qcow2NewRefs *r)
{
    if (bh_node_size(r->s->file) > (int64_t)r->flen)
        bh_node_truncate(r->s->file, r->flen, NULL);
}
