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
 * Cost: the active L1 table and the refcount table are scanned up to their
 * last used entry, remembered per table and recomputed only when the table
 * itself is replaced (snapshot apply, refcount rebuild, table growth).
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>

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

/* How many leading entries of table may be non-zero; cached while the
 * table stays the same array at the same offset with the same size. */
static uint64_t overlap_used(Qcow2OverlapUsed *u, const uint64_t *table,
                             uint64_t offset, uint64_t size)
{
    if (u->table != table || u->offset != offset || u->size != size) {
        uint64_t n = size;
        while (n && !table[n - 1])
            n--;
        u->table = table;
        u->offset = offset;
        u->size = size;
        u->used = n;
    }
    return u->used;
}

void qcow2_overlap_entry_set(Qcow2State *s, bool l1, uint64_t index)
{
    Qcow2OverlapUsed *u = l1 ? &s->ol_l1 : &s->ol_reftable;
    const uint64_t *table = l1 ? s->l1 : s->reftable;

    /* Only raise the bound of the table we know; any other array gets a
     * full scan at the next check anyway. */
    if (u->table == table && index + 1 > u->used)
        u->used = index + 1;
}

int qcow2_overlap_check(Qcow2State *s, unsigned ignore, uint64_t offset,
                        uint64_t size)
{
    unsigned chk = QCOW2_OL_CACHED & ~ignore;
    uint64_t cs = s->cluster_size, n;

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
    /* Table entries are cluster aligned: compare whole clusters. */
    if ((chk & QCOW2_OL_ACTIVE_L2) && s->l1) {
        n = overlap_used(&s->ol_l1, s->l1, s->l1_offset, s->l1_size);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t off = s->l1[i] & L1E_OFFSET_MASK;
            if (off && overlap_meets(offset, size, off, cs))
                return QCOW2_OL_ACTIVE_L2;
        }
    }
    if ((chk & QCOW2_OL_REFCOUNT_BLOCK) && s->reftable) {
        n = overlap_used(&s->ol_reftable, s->reftable, s->reftable_offset,
                         s->reftable_size);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t off = s->reftable[i] & REFT_OFFSET_MASK;
            if (off && overlap_meets(offset, size, off, cs))
                return QCOW2_OL_REFCOUNT_BLOCK;
        }
    }
    return 0;
}

int qcow2_mark_corrupt_locked(Qcow2State *s, const char *why)
{
    g_autoptr(GError) err = NULL;
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
                   ret < 0 ? err->message : "");
    return ret;
}

int qcow2_overlap_refuse_locked(Qcow2State *s, unsigned ignore,
                                uint64_t offset, uint64_t size,
                                const char *what, GError **errp)
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
