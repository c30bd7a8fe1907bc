/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 cluster mapping: from a guest offset through the L1 and L2 tables
 * to what the guest cluster is (unallocated, zero, data at a host offset,
 * compressed), and updating L2 entries, which may first need a new L2 table
 * or a private copy of a shared one.
 *
 * Every pointer read from the image is checked before use; a pointer into
 * the header, the L1 table or the refcount table means the metadata is
 * corrupt, and the image is marked so (as QEMU does) before refusing.
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>

Qcow2ClusterType qcow2_entry_type(Qcow2State *s, uint64_t l2e)
{
    if (l2e & QCOW_OFLAG_COMPRESSED)
        return QCOW2_COMPRESSED;
    if (l2e & QCOW_OFLAG_ZERO)
        return (l2e & L2E_OFFSET_MASK) ? QCOW2_ZERO_ALLOC : QCOW2_ZERO_PLAIN;
    return (l2e & L2E_OFFSET_MASK) ? QCOW2_NORMAL : QCOW2_UNALLOCATED;
}

uint64_t qcow2_compressed_range(Qcow2State *s, uint64_t l2e, uint64_t *bytes)
{
    uint64_t off = l2e & s->coffset_mask;
    uint64_t nsec = ((l2e >> s->csize_shift) & s->csize_mask) + 1;
    *bytes = nsec * 512;
    return off & ~511ull;
}

static uint64_t file_end(Qcow2State *s)
{
    int64_t len = bh_node_size(s->file);
    return len < 0 ? 0 : (uint64_t)len;
}

static int corrupt(Qcow2State *s, BhError **errp, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
static int corrupt(Qcow2State *s, BhError **errp, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;
    bool was_ro = s->readonly;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    qcow2_mark_corrupt_locked(s, msg);
    return bh_error_set(errp, EIO, "qcow2: %s%s", msg,
                        was_ro ? "" : "; image marked corrupt");
}

/* Check what an L2 entry says before anybody reads or writes through it. */
int qcow2_check_l2_entry(Qcow2State *s, uint64_t guest, uint64_t l2e,
                         BhError **errp)
{
    Qcow2ClusterType t = qcow2_entry_type(s, l2e);
    uint64_t off = l2e & L2E_OFFSET_MASK, end;
    int hit;

    if (t == QCOW2_UNALLOCATED)
        return 0;
    if (t == QCOW2_COMPRESSED) {
        uint64_t bytes, start = qcow2_compressed_range(s, l2e, &bytes);
        if (start >= file_end(s))
            return bh_error_set(errp, EIO, "qcow2: compressed cluster at "
                                "guest offset 0x%" PRIx64 " points at host "
                                "offset 0x%" PRIx64 ", past the end of the "
                                "file (%" PRIu64 " bytes)", guest, start,
                                file_end(s));
        return 0;
    }
    if ((t == QCOW2_ZERO_PLAIN || t == QCOW2_ZERO_ALLOC) && s->version < 3)
        return bh_error_set(errp, EIO, "qcow2: zero cluster at guest offset "
                            "0x%" PRIx64 " in a version 2 image", guest);
    if (t == QCOW2_ZERO_PLAIN)
        return 0;
    if (off & (s->cluster_size - 1))
        return bh_error_set(errp, EIO, "qcow2: L2 entry for guest offset 0x%"
                            PRIx64 " points at unaligned host offset 0x%"
                            PRIx64, guest, off);
    end = file_end(s);
    if (off >= end)
        return bh_error_set(errp, EIO, "qcow2: L2 entry for guest offset 0x%"
                            PRIx64 " points at host offset 0x%" PRIx64
                            ", past the end of the file (%" PRIu64 " bytes)",
                            guest, off, end);
    /* On every lookup, reads included: only the sections that cost no
     * table scan.  In-place writes check everything (io.c). */
    hit = qcow2_overlap_check(s, QCOW2_OL_ACTIVE_L2 | QCOW2_OL_REFCOUNT_BLOCK,
                              off, s->cluster_size);
    if (hit)
        return corrupt(s, errp, "L2 entry for guest offset 0x%" PRIx64
                       " points at the %s (0x%" PRIx64 ")", guest,
                       qcow2_overlap_name(hit), off);
    return 0;
}

static int check_l2_table(Qcow2State *s, uint64_t l1_index, uint64_t l1e,
                          BhError **errp)
{
    uint64_t off = l1e & L1E_OFFSET_MASK;
    bool cached;
    int hit;

    if (l1e & L1E_RESERVED)
        return corrupt(s, errp, "L1 entry %" PRIu64 " (0x%" PRIx64 ") has "
                       "reserved bits set", l1_index, l1e);
    if (off & (s->cluster_size - 1))
        return corrupt(s, errp, "L1 entry %" PRIu64 " points at unaligned "
                       "offset 0x%" PRIx64, l1_index, off);
    /* Refcount blocks take a scan of the refcount table: check them only
     * when the table is about to be loaded, not on every lookup. */
    cached = qcow2_cache_contains(s->l2_cache, off);
    hit = qcow2_overlap_check(s, QCOW2_OL_ACTIVE_L2 |
                              (cached ? QCOW2_OL_REFCOUNT_BLOCK : 0),
                              off, s->cluster_size);
    if (hit)
        return corrupt(s, errp, "L1 entry %" PRIu64 " points at the %s "
                       "(0x%" PRIx64 ")", l1_index, qcow2_overlap_name(hit),
                       off);
    if (cached)
        return 0;
    if (off + s->cluster_size > file_end(s))
        return bh_error_set(errp, EIO, "qcow2: L1 entry %" PRIu64 " points at"
                            " 0x%" PRIx64 ", past the end of the file (%"
                            PRIu64 " bytes)", l1_index, off, file_end(s));
    return 0;
}

static bool same_run(Qcow2State *s, uint64_t a, uint64_t b, uint64_t k)
{
    Qcow2ClusterType ta = qcow2_entry_type(s, a);
    if (qcow2_entry_type(s, b) != ta)
        return false;
    switch (ta) {
    case QCOW2_NORMAL:
        return (b & ~L2E_OFFSET_MASK) == (a & ~L2E_OFFSET_MASK) &&
               (b & L2E_OFFSET_MASK) ==
               (a & L2E_OFFSET_MASK) + k * s->cluster_size;
    case QCOW2_COMPRESSED:
        return false;
    case QCOW2_ZERO_ALLOC:
        return (b & QCOW_OFLAG_COPIED) == (a & QCOW_OFLAG_COPIED);
    default:
        return true;
    }
}

/* The L2 entry of guest cluster containing guest, and how many clusters
 * from there (within the same L2 table, looking at no more than the
 * bytes the caller cares about) map the same way. */
int qcow2_get_l2e_locked(Qcow2State *s, uint64_t guest, uint64_t bytes,
                         uint64_t *l2e, uint64_t *contiguous, BhError **errp)
{
    uint64_t cluster = guest >> s->cluster_bits;
    uint64_t l1_index = cluster >> s->l2_bits;
    uint64_t l2_index = cluster & (s->l2_entries - 1), l1e, n = 1;
    uint64_t want = ((guest & (s->cluster_size - 1)) + bytes +
                     s->cluster_size - 1) >> s->cluster_bits;
    uint64_t limit = MIN(s->l2_entries, l2_index + MAX(want, 1));
    const uint64_t *table;
    void *t;
    int ret;

    if (l1_index >= s->l1_size)
        return bh_error_set(errp, EIO, "qcow2: guest offset 0x%" PRIx64
                            " is beyond the L1 table", guest);
    l1e = s->l1[l1_index];
    if (!(l1e & L1E_OFFSET_MASK)) {
        *l2e = 0;
        if (contiguous)
            *contiguous = limit - l2_index;
        return 0;
    }
    ret = check_l2_table(s, l1_index, l1e, errp);
    if (ret < 0)
        return ret;
    ret = qcow2_cache_get(s->l2_cache, l1e & L1E_OFFSET_MASK, &t, errp);
    if (ret < 0)
        return ret;
    table = t;
    *l2e = GUINT64_FROM_BE(table[l2_index]);
    if (contiguous) {
        while (l2_index + n < limit &&
               same_run(s, *l2e, GUINT64_FROM_BE(table[l2_index + n]), n))
            n++;
        *contiguous = n;
    }
    qcow2_cache_put(s->l2_cache, t);
    return qcow2_check_l2_entry(s, guest, *l2e, errp);
}

static int write_l1_entry(Qcow2State *s, uint64_t l1_index, uint64_t v,
                          BhError **errp)
{
    uint8_t be[8];
    int ret;

    qcow2_put_be64(be, v);
    ret = qcow2_overlap_refuse_locked(s, QCOW2_OL_ACTIVE_L1,
                                      s->l1_offset + l1_index * 8, 8,
                                      "an L1 table entry", errp);
    if (ret == 0)
        ret = bh_node_pwrite(s->file, be, s->l1_offset + l1_index * 8, 8, 0,
                             errp);
    if (ret == 0) {
        qcow2_overlap_entry_set(s, true, s->l1[l1_index], v);
        s->l1[l1_index] = v;
    }
    return ret;
}

/*
 * Give L1 entry l1_index a writable L2 table: a new empty one, or a private
 * copy of a table shared with snapshots (L1 entry without COPIED).  The
 * table is written and, through the L2 hook, the refcount of its cluster
 * and the file are flushed before the L1 entry points at it; the shared
 * original loses its reference only after that (queued free).
 */
static int l2_make_writable(Qcow2State *s, uint64_t l1_index, BhError **errp)
{
    uint64_t l1e = s->l1[l1_index], old = l1e & L1E_OFFSET_MASK;
    g_autofree uint8_t *copy = NULL;
    int64_t new_off;
    void *t;
    int ret;

    if (old && (l1e & QCOW_OFLAG_COPIED))
        return 0;
    copy = g_malloc0(s->cluster_size);
    if (old) {
        ret = check_l2_table(s, l1_index, l1e, errp);
        if (ret < 0)
            return ret;
        ret = qcow2_cache_get(s->l2_cache, old, &t, errp);
        if (ret < 0)
            return ret;
        memcpy(copy, t, s->cluster_size);
        qcow2_cache_put(s->l2_cache, t);
    }
    new_off = qcow2_alloc_clusters_locked(s, 1, errp);
    if (new_off < 0)
        return (int)new_off;
    ret = qcow2_overlap_refuse_locked(s, 0, new_off, s->cluster_size,
                                      "a new L2 table", errp);
    if (ret == 0)
        ret = bh_node_pwrite(s->file, copy, new_off, s->cluster_size, 0,
                             errp);
    if (ret == 0)
        ret = qcow2_l2_before_write(s, errp);
    if (ret == 0)
        ret = write_l1_entry(s, l1_index, (uint64_t)new_off | QCOW_OFLAG_COPIED,
                             errp);
    if (ret < 0) {
        qcow2_free_later_locked(s, new_off, s->cluster_size);
        return ret;
    }
    if (old)
        qcow2_free_later_locked(s, old, s->cluster_size);
    return 0;
}

/* Set the L2 entry of the guest cluster containing guest; *old gets what
 * it was.  The caller frees what the old entry pointed to. */
int qcow2_set_l2e_locked(Qcow2State *s, uint64_t guest, uint64_t l2e,
                         uint64_t *old, BhError **errp)
{
    uint64_t cluster = guest >> s->cluster_bits;
    uint64_t l1_index = cluster >> s->l2_bits;
    uint64_t l2_index = cluster & (s->l2_entries - 1);
    uint64_t *table;
    void *t;
    int ret;

    if (l1_index >= s->l1_size)
        return bh_error_set(errp, EIO, "qcow2: guest offset 0x%" PRIx64
                            " is beyond the L1 table", guest);
    ret = l2_make_writable(s, l1_index, errp);
    if (ret < 0)
        return ret;
    ret = qcow2_cache_get(s->l2_cache, s->l1[l1_index] & L1E_OFFSET_MASK, &t,
                          errp);
    if (ret < 0)
        return ret;
    table = t;
    if (old)
        *old = GUINT64_FROM_BE(table[l2_index]);
    table[l2_index] = GUINT64_TO_BE(l2e);
    qcow2_cache_mark_dirty(s->l2_cache, t);
    qcow2_cache_put(s->l2_cache, t);
    return 0;
}

/* Queue the release of what an L2 entry pointed to (after it was replaced
 * and once the replacement is on disk). */
void qcow2_free_entry_later_locked(Qcow2State *s, uint64_t l2e)
{
    uint64_t bytes, start;

    switch (qcow2_entry_type(s, l2e)) {
    case QCOW2_NORMAL:
    case QCOW2_ZERO_ALLOC:
        qcow2_free_later_locked(s, l2e & L2E_OFFSET_MASK, s->cluster_size);
        break;
    case QCOW2_COMPRESSED:
        start = qcow2_compressed_range(s, l2e, &bytes);
        qcow2_free_later_locked(s, start, bytes);
        break;
    default:
        break;
    }
}
