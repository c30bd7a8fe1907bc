/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 refcount rebuild: what opening a dirty image read-write does (the
 * dirty bit says refcounts may lag behind the L1/L2 tables, which is what
 * lazy refcounts trade for speed).
 *
 * Every reference is counted from zero by walking the header, the active
 * L1 table, the snapshot table and every snapshot's L1 table with the L2
 * tables they reach (the counting of a snapshot commit, snapshot-refs.c,
 * in its from-scratch mode).  The new refcount blocks and table go to
 * clusters that nothing counted uses and that hold no part of the old
 * refcount structure, are flushed, and the header is switched to them in
 * one write; so a crash at any point leaves either the old or the new set
 * in effect (and the dirty bit still set until the caller clears it).
 * Then the old structure and whatever nothing uses is punched out (with
 * discard=unmap) and the unused end of the file cut off.
 */
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>

int qcow2_count_references(Qcow2State *s, Qcow2NewRefs *r, BhError **errp)
{
    int ret = qcow2_new_refs_add(r, 0, s->cluster_size, 1, errp); /* header */

    if (ret == 0)
        ret = qcow2_new_refs_count_l1(r, s->l1_offset, s->l1_size, s->l1, 1,
                                      errp);
    if (ret == 0 && s->nb_snapshots)
        ret = qcow2_new_refs_add(r, s->snapshots_offset, s->snapshots_bytes,
                                 1, errp);
    for (uint32_t i = 0; ret == 0 && i < s->nb_snapshots; i++)
        ret = qcow2_new_refs_count_l1(r, s->snapshots[i].l1_offset,
                                      s->snapshots[i].l1_size, NULL, 1, errp);
    if (ret == 0)
        ret = qcow2_bitmaps_count_references(s, r, errp);
    return ret;
}

int qcow2_rebuild_refcounts_locked(Qcow2State *s, BhError **errp)
{
    g_autoptr(Qcow2NewRefs) r = qcow2_new_refs_new(s, true);
    uint64_t rt_at;
    uint32_t rt_clusters;
    uint8_t hdr[12];
    int ret;

    ret = qcow2_count_references(s, r, errp);
    if (ret == 0)
        ret = qcow2_new_refs_place(r, errp);
    if (ret == 0)
        ret = qcow2_new_refs_write(r, errp);
    if (ret == 0)
        ret = bh_node_flush(s->file, errp);
    if (ret < 0) {
        qcow2_new_refs_abandon(r);
        return ret;
    }
    rt_at = qcow2_new_refs_table_offset(r, &rt_clusters);
    qcow2_put_be64(hdr, rt_at);
    qcow2_put_be32(hdr + 8, rt_clusters);
    ret = qcow2_header_write_field(s, QH_REFTABLE_OFFSET, hdr, 12, errp);
    if (ret < 0)
        return ret;
    qcow2_new_refs_switched(r);
    s->free_hint = 1;
    return 0;
}
