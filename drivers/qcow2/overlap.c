/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 metadata overlap checks: nothing the driver writes (guest data,
 * L2 tables, refcount blocks, table entries, header fields) may land on a
 * piece of metadata it does not mean to change.  A corrupt refcount (a
 * zeroed refcount block, say) would otherwise hand out a cluster that holds
 * the refcount table or an L2 table, and the next write would silently
 * destroy the image.  On a hit the image is marked corrupt (incompatible
 * bit 1), as QEMU does, so that later read-write opens refuse it until
 * `qemu-img check -r all` repairs it, and the request fails with EIO
 * before a byte reaches the file.
 *
 * The set checked is QEMU's default ("cached"): everything the driver
 * keeps in memory, so a check reads nothing.  Inactive L2 tables (those of
 * snapshots) would need their L1 tables read and are not checked.
 *
 * Cost: L2 tables and refcount blocks are found by binary search in sorted
 * copies of the L1 and refcount table entries.  A copy is rebuilt when its
 * table is replaced (snapshot apply, refcount rebuild, table growth: a new
 * array, offset or size) and updated when one entry changes in place
 * (qcow2_overlap_entry_set, called by cluster.c and refcount.c).  Code
 * that replaces a table may call qcow2_overlap_tables_replaced; a hit is
 * always confirmed on the live table, so a stale copy cannot raise a false
 * alarm.
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

static const char *const overlap_names[] = {
    "header",
    "active L1 table",
    "active L2 table",
    "refcount table",
    "refcount block",
    "snapshot table",
    "inactive L1 table",
    "inactive L2 table",
    "bitmap directory",
};

const char *qcow2_overlap_name(int section)
{
    for (size_t i = 0; i < G_N_ELEMENTS(overlap_names); i++)
        if (section == (1 << i))
            return overlap_names[i];
    return "metadata";
}

static bool overlap_meets(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

static int overlap_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Index of the first sorted entry >= v. */
static uint64_t overlap_lower_bound(const Qcow2OverlapIndex *ix, uint64_t v)
{
    uint64_t lo = 0, hi = ix->n;

    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (ix->sorted[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void overlap_index_sync(Qcow2OverlapIndex *ix, const uint64_t *table,
                               uint64_t offset, uint64_t size, uint64_t mask)
{
    if (ix->valid && ix->table == table && ix->offset == offset &&
        ix->size == size)
        return;
    ix->n = 0;
    for (uint64_t i = 0; i < size; i++) {
        uint64_t off = table[i] & mask;
        if (!off)
            continue;
        if (ix->n == ix->cap) {
            ix->cap = MAX(ix->cap * 2, 64);
            ix->sorted = g_renew(uint64_t, ix->sorted, ix->cap);
        }
        ix->sorted[ix->n++] = off;
    }
    if (ix->n)      /* sorted is NULL while empty: qsort(NULL) is UB */
        qsort(ix->sorted, ix->n, sizeof(uint64_t), overlap_cmp);
    ix->table = table;
    ix->offset = offset;
    ix->size = size;
    ix->valid = true;
}

/* Whether a cluster-sized table in the index meets [offset, offset+size). */
static bool overlap_index_meets(const Qcow2OverlapIndex *ix, uint64_t offset,
                                uint64_t size, uint64_t cs)
{
    uint64_t i = overlap_lower_bound(ix, offset >= cs ? offset - cs + 1 : 0);
    return i < ix->n && ix->sorted[i] < offset + size;
}

/* The live table itself: confirms a hit of the index, so that an index out
 * of step with its table (a table replaced in place of a freed one at the
 * same address) can never mark a healthy image corrupt. */
static bool overlap_table_meets(const uint64_t *table, uint64_t n,
                                uint64_t mask, uint64_t offset, uint64_t size,
                                uint64_t cs)
{
    for (uint64_t i = 0; i < n; i++) {
        uint64_t off = table[i] & mask;
        if (off && overlap_meets(offset, size, off, cs))
            return true;
    }
    return false;
}

/* One entry of the live table changed from old_entry to new_entry (masked
 * offsets; 0 means none).  Duplicates are kept, as a corrupt table may
 * point twice at one cluster. */
static void overlap_index_update(Qcow2OverlapIndex *ix, uint64_t old_off,
                                 uint64_t new_off)
{
    uint64_t i;

    if (!ix->valid || old_off == new_off)
        return;
    if (old_off) {
        i = overlap_lower_bound(ix, old_off);
        if (i == ix->n || ix->sorted[i] != old_off) {
            ix->valid = false;      /* out of step: rebuild at next use */
            return;
        }
        memmove(ix->sorted + i, ix->sorted + i + 1,
                (ix->n - i - 1) * sizeof(uint64_t));
        ix->n--;
    }
    if (new_off) {
        if (ix->n == ix->cap) {
            ix->cap = MAX(ix->cap * 2, 64);
            ix->sorted = g_renew(uint64_t, ix->sorted, ix->cap);
        }
        i = overlap_lower_bound(ix, new_off);
        memmove(ix->sorted + i + 1, ix->sorted + i,
                (ix->n - i) * sizeof(uint64_t));
        ix->sorted[i] = new_off;
        ix->n++;
    }
}

/* Called by whoever changes one entry of the active L1 table (l1) or of
 * the refcount table in place; replacing a whole table needs no call. */
void qcow2_overlap_entry_set(Qcow2State *s, bool l1, uint64_t old_entry,
                             uint64_t new_entry)
{
    if (l1)
        overlap_index_update(&s->ol_l2, old_entry & L1E_OFFSET_MASK,
                             new_entry & L1E_OFFSET_MASK);
    else
        overlap_index_update(&s->ol_rb, old_entry & REFT_OFFSET_MASK,
                             new_entry & REFT_OFFSET_MASK);
}

void qcow2_overlap_tables_replaced(Qcow2State *s)
{
    s->ol_l2.valid = false;
    s->ol_rb.valid = false;
}

void qcow2_overlap_free(Qcow2State *s)
{
    g_clear_pointer(&s->ol_l2.sorted, g_free);
    g_clear_pointer(&s->ol_rb.sorted, g_free);
}

int qcow2_overlap_check(Qcow2State *s, unsigned ignore, uint64_t offset,
                        uint64_t size)
{
    unsigned chk = QCOW2_OL_CACHED & ~ignore;
    uint64_t cs = s->cluster_size;

    if (!size)
        return 0;
    if ((chk & QCOW2_OL_MAIN_HEADER) && offset < cs)
        return QCOW2_OL_MAIN_HEADER;
    if ((chk & QCOW2_OL_ACTIVE_L1) && s->l1_size &&
        overlap_meets(offset, size, s->l1_offset,
                      qcow2_align_up((uint64_t)s->l1_size * 8, cs)))
        return QCOW2_OL_ACTIVE_L1;
    if ((chk & QCOW2_OL_REFCOUNT_TABLE) &&
        overlap_meets(offset, size, s->reftable_offset,
                      (uint64_t)s->reftable_clusters * cs))
        return QCOW2_OL_REFCOUNT_TABLE;
    if ((chk & QCOW2_OL_SNAPSHOT_TABLE) && s->nb_snapshots &&
        overlap_meets(offset, size, s->snapshots_offset,
                      qcow2_align_up(s->snapshots_bytes, cs)))
        return QCOW2_OL_SNAPSHOT_TABLE;
    if ((chk & QCOW2_OL_BITMAP_DIRECTORY) && s->bitmap_dir_size &&
        (s->autoclear & QCOW2_AUTOCLEAR_BITMAPS) &&
        overlap_meets(offset, size, s->bitmap_dir_offset,
                      qcow2_align_up(s->bitmap_dir_size, cs)))
        return QCOW2_OL_BITMAP_DIRECTORY;
    if ((chk & QCOW2_OL_INACTIVE_L1) && s->snapshots) {
        for (uint32_t i = 0; i < s->nb_snapshots; i++)
            if (overlap_meets(offset, size, s->snapshots[i].l1_offset,
                              qcow2_align_up((uint64_t)s->snapshots[i].l1_size
                                             * 8, cs)))
                return QCOW2_OL_INACTIVE_L1;
    }
    /* L2 tables and refcount blocks are one cluster each. */
    if ((chk & QCOW2_OL_ACTIVE_L2) && s->l1) {
        overlap_index_sync(&s->ol_l2, s->l1, s->l1_offset, s->l1_size,
                           L1E_OFFSET_MASK);
        if (overlap_index_meets(&s->ol_l2, offset, size, cs)) {
            if (overlap_table_meets(s->l1, s->l1_size, L1E_OFFSET_MASK,
                                    offset, size, cs))
                return QCOW2_OL_ACTIVE_L2;
            s->ol_l2.valid = false;
        }
    }
    if ((chk & QCOW2_OL_REFCOUNT_BLOCK) && s->reftable) {
        overlap_index_sync(&s->ol_rb, s->reftable, s->reftable_offset,
                           s->reftable_size, REFT_OFFSET_MASK);
        if (overlap_index_meets(&s->ol_rb, offset, size, cs)) {
            if (overlap_table_meets(s->reftable, s->reftable_size,
                                    REFT_OFFSET_MASK, offset, size, cs))
                return QCOW2_OL_REFCOUNT_BLOCK;
            s->ol_rb.valid = false;
        }
    }
    return 0;
}

int qcow2_mark_corrupt_locked(Qcow2State *s, const char *why)
{
    g_autoptr(BhError) err = NULL;
    bool first = !s->corrupt_reported;
    int ret = 0;

    s->corrupt_reported = true;
    if (s->readonly || s->version < 3) {
        /* Nothing to write (read-only, or v2 has no feature bits): the
         * flag still stops every further write of this open. */
        s->incompat |= QCOW2_INCOMPAT_CORRUPT;
    } else {
        ret = qcow2_header_set_incompat(s, QCOW2_INCOMPAT_CORRUPT, true, &err);
        s->incompat |= QCOW2_INCOMPAT_CORRUPT;
    }
    if (first && !s->readonly)
        g_printerr("qcow2: %s: marking the image as corrupt: %s%s%s\n",
                   bh_node_filename(s->file), why,
                   ret < 0 ? "; could not set the corrupt bit: " : "",
                   ret < 0 ? bh_error_message(err) : "");
    return ret;
}

int qcow2_overlap_refuse_locked(Qcow2State *s, unsigned ignore,
                                uint64_t offset, uint64_t size,
                                const char *what, BhError **errp)
{
    int hit = qcow2_overlap_check(s, ignore, offset, size);
    g_autofree char *why = NULL;

    if (!hit)
        return 0;
    why = g_strdup_printf("refusing to write %s at 0x%" PRIx64 " (%" PRIu64
                          " bytes): it overlaps the %s", what, offset, size,
                          qcow2_overlap_name(hit));
    qcow2_mark_corrupt_locked(s, why);
    return bh_error_set(errp, EIO, "qcow2: %s: %s; image marked corrupt",
                        bh_node_filename(s->file), why);
}

const char *qcow2_metadata_overlap(Qcow2State *s, uint64_t offset,
                                   uint64_t bytes)
{
    int hit = qcow2_overlap_check(s, 0, offset, bytes);
    return hit ? qcow2_overlap_name(hit) : NULL;
}
