/*
 * Internal snapshots and savevm/loadvm/delvm across every open image.
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
 * that are still referenced; bh_savevm() snapshots every writable one
 * under one name and stores the registered state (savevm.h) in the
 * vmstate area of the first; bh_loadvm() checks all of them before
 * reverting any; bh_delvm() deletes everywhere; bh_snapshots_common()
 * lists what every one of them has.
 */
#ifndef BLKHOST_SNAPSHOT_H
#define BLKHOST_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include <blkhost/glib.h>
#include <blkhost/node.h>
#include <blkhost/snapshot-info.h>
#include <blkhost/stream.h>

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
/* A BhStream over the node's vmstate area (reading stops at limit bytes). */
BhStream *bh_node_vmstate_stream(BhNode *bs, bool writable, uint64_t limit);

/* ---- every open top-level node ---- */
/* Referenced copies of the open top-level nodes (unref each, free array). */
GPtrArray *bh_open_nodes(void);
/* Snapshot every writable node under name (NULL or "":
 * vm-%Y%m%d%H%M%S), replacing snapshots of that name; the registered
 * state (savevm.h) goes to the first node's vmstate area, none when
 * nothing is registered.  Refused, naming it, when a writable node cannot
 * snapshot; read-only nodes are left out.  All or nothing: the state is
 * collected before anything changes, the new snapshots are made on every
 * node before the old ones of that name are deleted (by id), so at any
 * moment either the old or the new one exists on every node (see
 * snapshot.c for the crash windows).  An error after the new snapshot
 * exists everywhere (an old one could not be deleted) says so. */
int bh_savevm(const char *name, BhError **errp);
/* The same over the n given nodes only (each must be writable and able to
 * snapshot; given == NULL means every open node, as bh_savevm).  tmpl,
 * if not NULL, supplies date_sec/date_nsec (used when date_sec != 0) and
 * vm_clock_nsec for every snapshot made. */
int bh_savevm_nodes(BhNode *const *given, size_t n, const char *name,
                    const BhSnapshotInfo *tmpl, BhError **errp);
/* Find the snapshot called name on every node (by name only; a node
 * without one, or with two, is refused with nothing changed), read and
 * check the state stored in the first node's (a bad stream is refused
 * with nothing changed), revert every node, and only then commit the
 * state; if a node fails to revert, the state is not committed (nodes
 * before it stay reverted: a revert cannot be undone).  *had_state (may
 * be NULL): false for a disk-only snapshot (no state was stored). */
int bh_loadvm(const char *name, bool *had_state, BhError **errp);
/* Delete every snapshot called name (by name only) on every node; the
 * lists are all read first.  ENOENT if no node has one. */
int bh_delvm(const char *name, BhError **errp);
/* Snapshots (of the first snapshot-capable node) that every capable node
 * has by the same name; BhSnapshotInfo*, NULL on error. */
GPtrArray *bh_snapshots_common(BhError **errp);

G_END_DECLS

#endif
