/*
 * qcow2 consistency check, as `qemu-img check` runs it.
 * SPDX-License-Identifier: BSD-3-Clause
 *
 * Every reference is counted from zero (header, active L1 and its L2
 * tables and data, snapshot table, snapshot L1 tables and what they reach,
 * refcount table and blocks) and compared with the refcounts on disk: a
 * refcount higher than the references is a leak (space wasted, no harm),
 * a lower one a corruption (the cluster may be handed out twice).  Then
 * the COPIED flags of the active tables are compared with the refcounts
 * (set exactly when the refcount is 1, or a write would go in place into
 * a shared cluster, or copy needlessly).  The cluster statistics of the
 * active image come from the same walk.
 *
 * Repair rebuilds the refcounts from the references (rebuild.c), which
 * fixes leaks and refcounts that are too low alike; so -r leaks refuses
 * (as qemu-img does) when a refcount is too low.  -r all then rewrites
 * the COPIED flags that still disagree with the (rebuilt) refcounts.
 * Persistent bitmaps (directory, tables, data clusters) are counted while
 * the autoclear bit says they are valid (bitmaps.c).
 */
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <blkhost/glib.h>

/* Count every reference into r, the refcount structure's own too. */
static int check_count(Qcow2State *s, Qcow2NewRefs *r, BhError **errp)
{
    int ret = qcow2_count_references(s, r, errp);

    if (ret == 0)
        ret = qcow2_new_refs_add(r, s->reftable_offset,
                                 (uint64_t)s->reftable_clusters <<
                                 s->cluster_bits, 1, errp);
    for (uint64_t i = 0; ret == 0 && i < s->reftable_size; i++) {
        uint64_t off = s->reftable[i] & REFT_OFFSET_MASK;
        if (off)
            ret = qcow2_new_refs_add(r, off, s->cluster_size, 1, errp);
    }
    return ret;
}

/* Compare the counted references with the refcounts on disk, for every
 * cluster of the file. */
static int check_compare(Qcow2State *s, Qcow2NewRefs *r, BhCheckResult *res,
                         uint64_t *refcount_leaks,
                         uint64_t *refcount_corruptions, BhError **errp)
{
    int64_t flen = bh_node_size(s->file);
    uint64_t n, highest = 0;
    bool any = false;

    if (flen < 0)
        return bh_error_set(errp, (int)-flen, "cannot get the file's size");
    n = qcow2_align_up((uint64_t)flen, s->cluster_size) >> s->cluster_bits;
    for (uint64_t c = 0; c < n; c++) {
        uint64_t want, have;
        int ret = qcow2_new_refs_get(r, c, &want, errp);
        if (ret == 0)
            ret = qcow2_get_refcount_locked(s, c, &have, errp);
        if (ret < 0)
            return ret;
        if (want || have) {
            highest = c;
            any = true;
        }
        if (have > want) {
            bh_check_result_say(res, "Leaked cluster %" PRIu64 " refcount=%"
                                PRIu64 " reference=%" PRIu64, c, have, want);
            (*refcount_leaks)++;
        } else if (have < want) {
            bh_check_result_say(res, "ERROR cluster %" PRIu64 " refcount=%"
                                PRIu64 " reference=%" PRIu64, c, have, want);
            (*refcount_corruptions)++;
        }
    }
    res->image_end_offset = any ? (highest + 1) << s->cluster_bits : 0;
    return 0;
}

/* Whether the COPIED flag of an entry pointing at cluster off agrees with
 * its refcount on disk; *refcount gets that refcount. */
static int check_copied(Qcow2State *s, uint64_t entry, uint64_t off,
                        uint64_t *refcount, bool *agrees, BhError **errp)
{
    int ret = qcow2_get_refcount_locked(s, off >> s->cluster_bits, refcount,
                                        errp);
    if (ret == 0)
        *agrees = (*refcount == 1) == ((entry & QCOW_OFLAG_COPIED) != 0);
    return ret;
}

/* -r all: give an active L1 entry the COPIED flag its refcount asks for. */
static int check_fix_l1e(Qcow2State *s, uint32_t i, uint64_t v, BhError **errp)
{
    uint8_t be[8];
    int ret;

    qcow2_put_be64(be, v);
    ret = bh_node_pwrite(s->file, be, s->l1_offset + (uint64_t)i * 8, 8, 0,
                         errp);
    if (ret == 0) {
        qcow2_overlap_entry_set(s, true, s->l1[i], v);
        s->l1[i] = v;
    }
    return ret;
}

/* The same for entry j of the L2 table at l2_off, through the L2 cache so
 * that a cached copy stays current. */
static int check_fix_l2e(Qcow2State *s, uint64_t l2_off, uint64_t j,
                         uint64_t v, BhError **errp)
{
    void *t;
    int ret = qcow2_cache_get(s->l2_cache, l2_off, &t, errp);

    if (ret < 0)
        return ret;
    ((uint64_t *)t)[j] = GUINT64_TO_BE(v);
    qcow2_cache_mark_dirty(s->l2_cache, t);
    qcow2_cache_put(s->l2_cache, t);
    return 0;
}

/* The active L1 and L2 tables: COPIED flags (repaired with fix) and
 * cluster statistics. */
static int check_active(Qcow2State *s, bool fix, BhCheckResult *res,
                        BhError **errp)
{
    g_autofree uint64_t *l2 = g_malloc(s->cluster_size);
    uint64_t next = 0;

    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t l1e = s->l1[i], l2_off = l1e & L1E_OFFSET_MASK, rc;
        bool agrees = true;
        int ret;

        if (!l2_off)
            continue;
        ret = check_copied(s, l1e, l2_off, &rc, &agrees, errp);
        if (ret < 0)
            return ret;
        if (!agrees) {
            bh_check_result_say(res, "%s OFLAG_COPIED L2 cluster: "
                                "l1_index=%" PRIu32 " l1_entry=%" PRIx64
                                " refcount=%" PRIu64,
                                fix ? "Repairing" : "ERROR", i, l1e, rc);
            if (fix) {
                l1e = rc == 1 ? l1e | QCOW_OFLAG_COPIED
                              : l1e & ~QCOW_OFLAG_COPIED;
                ret = check_fix_l1e(s, i, l1e, errp);
                if (ret < 0)
                    return ret;
                res->corruptions_fixed++;
            } else {
                res->corruptions++;
            }
        }
        ret = bh_node_pread(s->file, l2, l2_off, s->cluster_size, 0, errp);
        if (ret < 0)
            return ret;
        for (uint64_t j = 0; j < s->l2_entries; j++) {
            uint64_t e = GUINT64_FROM_BE(l2[j]), off = e & L2E_OFFSET_MASK;

            switch (qcow2_entry_type(s, e)) {
            case QCOW2_COMPRESSED:
                /* Compressed clusters are fragmented by nature. */
                res->allocated_clusters++;
                res->compressed_clusters++;
                res->fragmented_clusters++;
                continue;
            case QCOW2_NORMAL:
            case QCOW2_ZERO_ALLOC:
                break;
            default:
                continue;
            }
            res->allocated_clusters++;
            if (off & (s->cluster_size - 1)) {
                bh_check_result_say(res, "ERROR offset=%" PRIx64 ": Data "
                                    "cluster is not properly aligned; L2 "
                                    "entry corrupted.", off);
                res->corruptions++;
            }
            if (next && off != next)
                res->fragmented_clusters++;
            next = off + s->cluster_size;
            ret = check_copied(s, e, off, &rc, &agrees, errp);
            if (ret < 0)
                return ret;
            if (!agrees) {
                bh_check_result_say(res, "%s OFLAG_COPIED data cluster: "
                                    "l2_entry=%" PRIx64 " refcount=%" PRIu64,
                                    fix ? "Repairing" : "ERROR", e, rc);
                if (fix) {
                    e = rc == 1 ? e | QCOW_OFLAG_COPIED
                                : e & ~QCOW_OFLAG_COPIED;
                    ret = check_fix_l2e(s, l2_off, j, e, errp);
                    if (ret < 0)
                        return ret;
                    res->corruptions_fixed++;
                } else {
                    res->corruptions++;
                }
            }
        }
    }
    return 0;
}

/* One pass: refcounts, then (after a repair, on the repaired ones) the
 * active tables. */
static int check_locked(Qcow2State *s, uint32_t fix, BhCheckResult *res,
                        BhError **errp)
{
    g_autoptr(Qcow2NewRefs) r = qcow2_new_refs_new(s, true);
    uint64_t leaks = 0, corruptions = 0;
    bool rebuild;
    int ret;

    ret = qcow2_meta_flush_locked(s, errp);
    if (ret == 0)
        ret = check_count(s, r, errp);
    if (ret == 0)
        ret = check_compare(s, r, res, &leaks, &corruptions, errp);
    if (ret < 0)
        return ret;
    g_clear_pointer(&r, qcow2_new_refs_free);

    /* The rebuild would cure too-low refcounts as well, which -r leaks
     * does not ask for: refuse as qemu-img does. */
    if (corruptions && (fix & BH_CHECK_FIX_LEAKS) &&
        !(fix & BH_CHECK_FIX_ERRORS)) {
        bh_check_result_say(res, "ERROR need to rebuild refcount structures");
        return bh_error_set(errp, EIO, "Check failed: refcounts too low need "
                            "a rebuild of the refcount structures (-r all)");
    }
    rebuild = (leaks || corruptions) && fix;
    if (rebuild) {
        bh_check_result_say(res, "Rebuilding refcount structure");
        ret = qcow2_rebuild_refcounts_locked(s, errp);
        if (ret == 0)
            ret = qcow2_meta_flush_locked(s, errp);
        if (ret < 0) {
            res->check_errors++;
            return ret;
        }
        res->leaks_fixed = leaks;
        res->corruptions_fixed = corruptions;
    } else {
        res->leaks = leaks;
        res->corruptions = corruptions;
    }
    res->has_clusters = true;
    res->total_clusters = qcow2_align_up(s->size, s->cluster_size) >>
                          s->cluster_bits;
    ret = check_active(s, (fix & BH_CHECK_FIX_ERRORS) != 0, res, errp);
    if (ret == 0 && res->corruptions_fixed)
        ret = qcow2_meta_flush_locked(s, errp);
    return ret;
}

int qcow2_check(BhNode *bs, uint32_t fix, BhCheckResult *res, BhError **errp)
{
    Qcow2State *s = bh_node_get_opaque(bs);
    int ret;

    g_mutex_lock(&s->lock);
    ret = check_locked(s, fix, res, errp);
    g_mutex_unlock(&s->lock);
    return ret;
}
