/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internal snapshots: the per-node calls that reach the driver's snapshot
 * callbacks and its vmstate area (see snapshot.h for the contract).  The
 * operations across every open image (savevm, loadvm, delvm) are the
 * state library's: state/savevm-nodes.c.
 *
 * Every call that reaches a driver's snapshot or vmstate callback runs
 * with the node drained (drain.c): no guest request is in flight on it
 * or above it, while the driver's own metadata I/O, made on this thread,
 * goes through.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "core-priv.h"

BhSnapshotInfo *bh_snapshot_info_new(void)
{
    BhSnapshotInfo *i = g_new0(BhSnapshotInfo, 1);
    i->struct_size = sizeof(*i);
    i->icount = BH_SNAPSHOT_NO_ICOUNT;
    return i;
}

void bh_snapshot_info_free(BhSnapshotInfo *info)
{
    if (!info)
        return;
    g_free(info->id);
    g_free(info->name);
    g_free(info);
}

BhSnapshotInfo *bh_snapshot_info_copy(const BhSnapshotInfo *info)
{
    BhSnapshotInfo *c = g_memdup2(info, sizeof(*info));
    c->id = g_strdup(info->id);
    c->name = g_strdup(info->name);
    return c;
}

void bh_snapshot_info_set_id(BhSnapshotInfo *info, const char *id)
{
    g_free(info->id);
    info->id = g_strdup(id);
}

void bh_snapshot_info_set_name(BhSnapshotInfo *info, const char *name)
{
    g_free(info->name);
    info->name = g_strdup(name);
}

void bh_snapshot_list_add(BhSnapshotList *list, BhSnapshotInfo *info)
{
    g_ptr_array_add(list->items, info);
}

/* The child a filter passes the snapshot calls it has no callback for
 * to (driver.h, BH_DRIVER_FILTER), or NULL.  A format with no metadata
 * of its own (raw) passes them on too, as QEMU's raw does: raw over an
 * RBD image snapshots the RBD image. */
static BhNode *snapshot_filtered(const BhNode *bs)
{
    return (bs->drv->flags & (BH_DRIVER_FILTER | BH_DRIVER_DATA_ONLY))
           ? bh_node_child(bs, "file") : NULL;
}

bool bh_node_can_snapshot(const BhNode *bs)
{
    BhNode *child = snapshot_filtered(bs);
    if (child)
        return bh_node_can_snapshot(child);
    return bs->drv->snapshot_list && bs->drv->snapshot_create &&
           bs->drv->snapshot_apply && bs->drv->snapshot_delete;
}

static int no_snapshots(BhNode *bs, BhError **errp)
{
    return bh_error_set(errp, ENOTSUP, "'%s' (driver %s) does not support "
                        "internal snapshots", bs->filename,
                        bh_node_driver_name(bs));
}

static int need_writable(BhNode *bs, BhError **errp)
{
    if (bs->readonly)
        return bh_error_set(errp, EPERM, "'%s' is open read-only",
                            bs->filename);
    return 0;
}

GPtrArray *bh_node_snapshot_list(BhNode *bs, BhError **errp)
{
    GPtrArray *out;

    if (!bh_node_can_snapshot(bs)) {
        no_snapshots(bs, errp);
        return NULL;
    }
    if (snapshot_filtered(bs) && !bs->drv->snapshot_list)
        return bh_node_snapshot_list(snapshot_filtered(bs), errp);
    out = g_ptr_array_new_with_free_func((GDestroyNotify)bh_snapshot_info_free);
    BhSnapshotList list = { .items = out };
    if (bs->drv->snapshot_list(bs, &list, errp) < 0) {
        g_ptr_array_free(out, TRUE);
        return NULL;
    }
    return out;
}

/* Index in l of the first snapshot (at or after start) whose id is id
 * and whose name is name; a NULL criterion matches anything. */
int bh_snapshots_match(GPtrArray *l, const char *id, const char *name,
                       unsigned start)
{
    for (guint i = start; i < l->len; i++) {
        const BhSnapshotInfo *sn = l->pdata[i];
        if ((!id || !strcmp(sn->id, id)) && (!name || !strcmp(sn->name, name)))
            return (int)i;
    }
    return -1;
}

BhSnapshotInfo *bh_node_snapshot_find(BhNode *bs, const char *id_or_name,
                                      BhError **errp)
{
    g_autoptr(GPtrArray) l = bh_node_snapshot_list(bs, errp);
    int i;

    if (!l)
        return NULL;
    i = bh_snapshots_match(l, id_or_name, NULL, 0);
    if (i < 0)
        i = bh_snapshots_match(l, NULL, id_or_name, 0);
    if (i >= 0)
        return bh_snapshot_info_copy(l->pdata[i]);
    bh_error_set(errp, ENOENT, "'%s' has no snapshot with id or name '%s'",
                 bs->filename, id_or_name);
    return NULL;
}

BhSnapshotInfo *bh_node_snapshot_lookup(BhNode *bs, const char *id,
                                        const char *name, BhError **errp)
{
    g_autoptr(GPtrArray) l = NULL;
    int i;

    if (!id && !name) {
        bh_error_set(errp, EINVAL, "a snapshot id or name is needed");
        return NULL;
    }
    l = bh_node_snapshot_list(bs, errp);
    if (!l)
        return NULL;
    i = bh_snapshots_match(l, id, name, 0);
    if (i >= 0)
        return bh_snapshot_info_copy(l->pdata[i]);
    bh_error_set(errp, ENOENT, "'%s' has no snapshot with %s%s%s%s%s%s",
                 bs->filename, id ? "id '" : "", id ? id : "",
                 id && name ? "' and " : id ? "'" : "",
                 name ? "name '" : "", name ? name : "", name ? "'" : "");
    return NULL;
}

int bh_node_snapshot_create(BhNode *bs, BhSnapshotInfo *info, BhError **errp)
{
    if (!bh_node_can_snapshot(bs))
        return no_snapshots(bs, errp);
    if (need_writable(bs, errp) < 0)
        return -EPERM;
    if (!info->name)
        info->name = g_strdup("");
    if (strlen(info->name) > BH_SNAPSHOT_MAX_NAME ||
        (info->id && strlen(info->id) > BH_SNAPSHOT_MAX_NAME))
        return bh_error_set(errp, EINVAL, "snapshot id or name of %zu bytes "
                            "is too long (at most %d)",
                            MAX(strlen(info->name),
                                info->id ? strlen(info->id) : 0),
                            BH_SNAPSHOT_MAX_NAME);
    bh_node_drain_begin(bs);
    int r;
    if (snapshot_filtered(bs) && !bs->drv->snapshot_create) {
        /* What was written through the filter (a write-back cache) is
         * part of the snapshot. */
        r = bh_node_flush(bs, errp);
        if (r == 0)
            r = bh_node_snapshot_create(snapshot_filtered(bs), info, errp);
    } else {
        r = bs->drv->snapshot_create(bs, info, errp);
    }
    bh_node_drain_end(bs);
    return r;
}

int bh_node_snapshot_apply(BhNode *bs, const char *id_or_name, BhError **errp)
{
    if (!bh_node_can_snapshot(bs))
        return no_snapshots(bs, errp);
    if (need_writable(bs, errp) < 0)
        return -EPERM;
    bh_node_drain_begin(bs);
    int r = snapshot_filtered(bs) && !bs->drv->snapshot_apply
            ? bh_node_snapshot_apply(snapshot_filtered(bs), id_or_name, errp)
            : bs->drv->snapshot_apply(bs, id_or_name, errp);
    if (r == 0)
        bh_node_refresh_size(bs);
    bh_node_drain_end(bs);
    return r;
}

int bh_node_snapshot_delete(BhNode *bs, const char *id_or_name, BhError **errp)
{
    if (!bh_node_can_snapshot(bs))
        return no_snapshots(bs, errp);
    if (need_writable(bs, errp) < 0)
        return -EPERM;
    bh_node_drain_begin(bs);
    int r = snapshot_filtered(bs) && !bs->drv->snapshot_delete
            ? bh_node_snapshot_delete(snapshot_filtered(bs), id_or_name, errp)
            : bs->drv->snapshot_delete(bs, id_or_name, errp);
    bh_node_drain_end(bs);
    return r;
}

BhNode *bh_node_snapshot_open(BhNode *bs, const char *id, const char *name,
                              BhError **errp)
{
    g_autoptr(BhSnapshotInfo) found = NULL;
    g_autoptr(BhOpts) opts = NULL;
    BhNode *file = bh_node_child(bs, "file");

    /* A snapshot is the image's: it opens without the filters over it. */
    if (snapshot_filtered(bs))
        return bh_node_snapshot_open(file, id, name, errp);
    /* A protocol with snapshots of its own (rbd) opens the snapshot by
     * its filename again. */
    bool protocol = bs->drv->flags & BH_DRIVER_PROTOCOL;
    if (!bh_node_can_snapshot(bs) || (!file && !protocol)) {
        no_snapshots(bs, errp);
        return NULL;
    }
    found = bh_node_snapshot_lookup(bs, id, name, errp);
    if (!found)
        return NULL;
    opts = bh_opts_new();
    /* The driver looks the option up by id first: the id found here is
     * what it sees, so the name cannot be mistaken for another's id. */
    bh_opts_set(opts, "snapshot", found->id);
    bh_opts_set(opts, "readonly", "on");
    if (!file) {
        bh_opts_set(opts, "format", bh_node_driver_name(bs));
        return bh_node_open(bs->filename, opts, errp);
    }
    return bh_node_open_over(file, bh_node_driver_name(bs), opts, errp);
}

int bh_node_save_vmstate(BhNode *bs, const void *buf, uint64_t pos,
                         size_t len, BhError **errp)
{
    if (snapshot_filtered(bs) && !bs->drv->save_vmstate)
        return bh_node_save_vmstate(snapshot_filtered(bs), buf, pos, len,
                                    errp);
    if (!bs->drv->save_vmstate)
        return bh_error_set(errp, ENOTSUP, "'%s' (driver %s) cannot store "
                            "vmstate", bs->filename, bh_node_driver_name(bs));
    if (need_writable(bs, errp) < 0)
        return -EPERM;
    bh_node_drain_begin(bs);
    int r = bs->drv->save_vmstate(bs, buf, pos, len, errp);
    bh_node_drain_end(bs);
    return r;
}

int bh_node_load_vmstate(BhNode *bs, void *buf, uint64_t pos, size_t len,
                         BhError **errp)
{
    if (snapshot_filtered(bs) && !bs->drv->load_vmstate)
        return bh_node_load_vmstate(snapshot_filtered(bs), buf, pos, len,
                                    errp);
    if (!bs->drv->load_vmstate)
        return bh_error_set(errp, ENOTSUP, "'%s' (driver %s) holds no "
                            "vmstate", bs->filename, bh_node_driver_name(bs));
    bh_node_drain_begin(bs);
    int r = bs->drv->load_vmstate(bs, buf, pos, len, errp);
    bh_node_drain_end(bs);
    return r;
}
