/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internal snapshots of one node, and the list of open nodes.
 *
 * Per node: bh_node_snapshot_list/create/apply/delete/open go to the
 * driver's snapshot callbacks (qcow2 has them; other drivers answer
 * ENOTSUP).  How a string picks a snapshot follows QEMU 7.2:
 *   - apply, delete, find (and the driver callbacks): id first, then name
 *     (qcow2's lookup; qemu-img snapshot -a, qemu-nbd -l STRING);
 *   - lookup and open: by the id and/or the name given, each one given
 *     must match (qemu-nbd -l snapshot.id=..,snapshot.name=..);
 *   - savevm, loadvm, delvm: by name only (QEMU's bdrv_snapshot_find), so
 *     a name that looks like another snapshot's id never picks that one;
 *     they pass the driver the id of what they picked.  qemu-img snapshot
 *     -d is by name only too (lua/cmd/snapshot.lua does that lookup).
 *
 * Across nodes (QEMU's savevm, loadvm, delvm and "info snapshots"): the
 * core keeps a list of the top-level nodes opened with bh_node_open()
 * that are still referenced (bh_open_nodes); the state library
 * (savevm.h) builds bh_savevm, bh_loadvm, bh_delvm and
 * bh_snapshots_common on it.
 */
#ifndef BLKHOST_SNAPSHOT_H
#define BLKHOST_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include <blkhost/glib.h>
#include <blkhost/node.h>
#include <blkhost/snapshot-info.h>

G_BEGIN_DECLS


/* ---- one node ---- */
bool bh_node_can_snapshot(const BhNode *bs);
/* A GPtrArray of BhSnapshotInfo* (freed with the array), NULL on error. */
GPtrArray *bh_node_snapshot_list(BhNode *bs, BhError **errp);
/* Find by id, then by name; NULL with ENOENT if neither matches. */
BhSnapshotInfo *bh_node_snapshot_find(BhNode *bs, const char *id_or_name,
                                      BhError **errp);
/* The first snapshot (in table order) whose id is id (unless NULL) and
 * whose name is name (unless NULL); at least one must be given.  NULL
 * with ENOENT (EINVAL: neither given). */
BhSnapshotInfo *bh_node_snapshot_lookup(BhNode *bs, const char *id,
                                        const char *name, BhError **errp);
/* info->id NULL: the driver picks max numeric id + 1 and fills it in.
 * info->date_sec 0: now.  info->disk_size is filled in. */
int bh_node_snapshot_create(BhNode *bs, BhSnapshotInfo *info, BhError **errp);
int bh_node_snapshot_apply(BhNode *bs, const char *id_or_name, BhError **errp);
int bh_node_snapshot_delete(BhNode *bs, const char *id_or_name,
                            BhError **errp);
/* A new read-only node showing the content of the snapshot that
 * bh_node_snapshot_lookup(id, name) picks. */
BhNode *bh_node_snapshot_open(BhNode *bs, const char *id, const char *name,
                              BhError **errp);
/* The vmstate area (state saved beside the disk). */
int bh_node_save_vmstate(BhNode *bs, const void *buf, uint64_t pos,
                         size_t len, BhError **errp);
int bh_node_load_vmstate(BhNode *bs, void *buf, uint64_t pos, size_t len,
                         BhError **errp);
/* The index in l (BhSnapshotInfo*, as bh_node_snapshot_list returns) of
 * the first snapshot from start on whose id and name match those given
 * (NULL matches anything), or -1. */
int bh_snapshots_match(GPtrArray *l, const char *id, const char *name,
                       unsigned start);

/* ---- every open top-level node ---- */
/* Referenced copies of the open top-level nodes (unref each, free array). */
GPtrArray *bh_open_nodes(void);
G_END_DECLS

#endif
