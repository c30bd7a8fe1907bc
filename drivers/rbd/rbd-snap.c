/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * RBD snapshots behind the core's snapshot callbacks, so that `blkhost
 * snapshot`, bh.savevm and the rotation policy treat an RBD image as
 * they treat a qcow2 one.  The differences, and why:
 *   - the id is RBD's snapshot id, given by the cluster: a caller's id
 *     is not kept (RBD has nowhere to put it);
 *   - names are unique in RBD.  savevm replaces a snapshot by creating
 *     the new one before deleting the old (state/savevm-nodes.c), so
 *     creating a name that exists first renames the old one to
 *     NAME.replaced-ID; savevm then deletes it by id;
 *   - there is no vmstate area: a savevm of an RBD image is disk-only,
 *     and one with device state is refused saying so;
 *   - the date is the cluster's creation time of the snapshot.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rbd.h"

/* The image's snapshots, ended by an entry with a NULL name;
 * rbd_snap_list_end and free release it.  NULL with -errno in *err. */
static rbd_snap_info_t *rbd_snaps(RbdState *s, int *n, int *err)
{
    int max = 16;
    for (;;) {
        rbd_snap_info_t *snaps = calloc((size_t)max + 1, sizeof(*snaps));
        if (!snaps) {
            *err = -ENOMEM;
            return NULL;
        }
        int r = rbd_snap_list(s->image, snaps, &max);
        if (r >= 0) {
            *n = r;
            return snaps;
        }
        free(snaps);
        if (r != -ERANGE) {
            *err = r;
            return NULL;
        }
    }
}

static void rbd_snaps_free(rbd_snap_info_t *snaps)
{
    rbd_snap_list_end(snaps);
    free(snaps);
}

/* The snapshot whose id, else whose name, is id_or_name: its name
 * (malloc'ed) or NULL with *errp set. */
static char *rbd_snap_find(RbdState *s, const char *id_or_name,
                           BhError **errp)
{
    int n = 0, err = 0;
    rbd_snap_info_t *snaps = rbd_snaps(s, &n, &err);
    char *found = NULL;
    if (!snaps) {
        bh_error_set(errp, -err, "rbd: cannot list the snapshots of '%s': %s",
                     s->label, rbd_cause(err));
        return NULL;
    }
    char *end;
    uint64_t id = strtoull(id_or_name, &end, 10);
    bool numeric = *id_or_name && !*end;
    for (int i = 0; numeric && !found && i < n; i++)
        if (snaps[i].id == id)
            found = strdup(snaps[i].name);
    for (int i = 0; !found && i < n; i++)
        if (!strcmp(snaps[i].name, id_or_name))
            found = strdup(snaps[i].name);
    rbd_snaps_free(snaps);
    if (!found)
        bh_error_set(errp, ENOENT, "rbd: '%s' has no snapshot with id or name "
                     "'%s' (`rbd snap ls %s`)", s->label, id_or_name,
                     s->label);
    return found;
}

int rbd_snapshot_list(BhNode *bs, BhSnapshotList *out, BhError **errp)
{
    RbdState *s = bh_node_get_opaque(bs);
    int n = 0, err = 0;
    rbd_snap_info_t *snaps = rbd_snaps(s, &n, &err);
    if (!snaps)
        return bh_error_set(errp, -err, "rbd: cannot list the snapshots of "
                            "'%s': %s", s->label, rbd_cause(err));
    for (int i = 0; i < n; i++) {
        BhSnapshotInfo *info = bh_snapshot_info_new();
        char id[24];
        struct timespec ts = { 0 };
        snprintf(id, sizeof(id), "%" PRIu64, snaps[i].id);
        bh_snapshot_info_set_id(info, id);
        bh_snapshot_info_set_name(info, snaps[i].name);
        if (rbd_snap_get_timestamp(s->image, snaps[i].id, &ts) == 0) {
            info->date_sec = (uint32_t)ts.tv_sec;
            info->date_nsec = (uint32_t)ts.tv_nsec;
        }
        info->disk_size = snaps[i].size;
        bh_snapshot_list_add(out, info);
    }
    rbd_snaps_free(snaps);
    return 0;
}

int rbd_snapshot_create(BhNode *bs, BhSnapshotInfo *info, BhError **errp)
{
    RbdState *s = bh_node_get_opaque(bs);
    const char *name = info->name;
    uint64_t id;
    int r;

    if (!name || !*name)
        return bh_error_set(errp, EINVAL, "rbd: a snapshot of '%s' needs a "
                            "name (RBD snapshots are known by name)",
                            s->label);
    if (info->vm_state_size)
        return rbd_save_vmstate(bs, NULL, 0, 0, errp);
    /* Data the cache holds belongs in the snapshot (librbd flushes too,
     * but an error is clearer here). */
    r = rbd_flush(s->image);
    if (r < 0)
        return bh_error_set(errp, -r, "rbd: flushing '%s' before a snapshot "
                            "failed: %s", s->label, rbd_cause(r));
    if (rbd_snap_get_id(s->image, name, &id) == 0) {
        char old[64 + BH_SNAPSHOT_MAX_NAME];
        snprintf(old, sizeof(old), "%s.replaced-%" PRIu64, name, id);
        r = rbd_snap_rename(s->image, name, old);
        if (r < 0)
            return bh_error_set(errp, -r, "rbd: '%s' has a snapshot '%s' "
                                "already, and renaming it to '%s' failed: %s",
                                s->label, name, old, rbd_cause(r));
    }
    r = rbd_snap_create(s->image, name);
    if (r < 0)
        return bh_error_set(errp, -r, "rbd: cannot snapshot '%s' as '%s': %s",
                            s->label, name, rbd_cause(r));
    r = rbd_snap_get_id(s->image, name, &id);
    if (r < 0)
        return bh_error_set(errp, -r, "rbd: snapshot '%s' of '%s' was made "
                            "but its id cannot be read: %s", name, s->label,
                            rbd_cause(r));
    char ids[24];
    snprintf(ids, sizeof(ids), "%" PRIu64, id);
    bh_snapshot_info_set_id(info, ids);
    return 0;
}

int rbd_snapshot_apply(BhNode *bs, const char *id_or_name, BhError **errp)
{
    RbdState *s = bh_node_get_opaque(bs);
    char *name = rbd_snap_find(s, id_or_name, errp);
    if (!name)
        return -ENOENT;
    int r = rbd_snap_rollback(s->image, name);
    if (r < 0)
        r = bh_error_set(errp, -r, "rbd: rolling '%s' back to snapshot '%s' "
                         "failed: %s", s->label, name, rbd_cause(r));
    free(name);
    return r;
}

int rbd_snapshot_delete(BhNode *bs, const char *id_or_name, BhError **errp)
{
    RbdState *s = bh_node_get_opaque(bs);
    char *name = rbd_snap_find(s, id_or_name, errp);
    if (!name)
        return -ENOENT;
    int r = rbd_snap_remove(s->image, name);
    if (r < 0)
        r = bh_error_set(errp, -r, "rbd: deleting snapshot '%s' of '%s' "
                         "failed: %s", name, s->label,
                         r == -EBUSY ? "it is protected or has clones "
                         "(`rbd snap unprotect`, `rbd children`)"
                                     : rbd_cause(r));
    free(name);
    return r;
}

int rbd_save_vmstate(BhNode *bs, const void *buf, uint64_t pos, size_t len,
                     BhError **errp)
{
    RbdState *s = bh_node_get_opaque(bs);
    return bh_error_set(errp, ENOTSUP, "rbd: '%s' cannot store VM state: RBD "
                        "images have no vmstate area, so their snapshots are "
                        "disk-only (savevm with no state registered works; "
                        "list a qcow2 image first to hold the state)",
                        s->label);
}

int rbd_load_vmstate(BhNode *bs, void *buf, uint64_t pos, size_t len,
                     BhError **errp)
{
    RbdState *s = bh_node_get_opaque(bs);
    return bh_error_set(errp, ENOTSUP, "rbd: '%s' holds no VM state: RBD "
                        "snapshots are disk-only", s->label);
}
