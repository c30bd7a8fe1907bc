/*
 * Internal snapshots: the per-node calls that reach the driver's snapshot
 * callbacks, a BhStream over a node's vmstate area, and the operations
 * across every open image that QEMU calls savevm, loadvm, delvm and
 * "info snapshots" (see snapshot.h for the contract).
 *
 * The multi-node operations check everything they can before changing
 * anything: savevm refuses when a writable node cannot snapshot, loadvm
 * when any node lacks the snapshot.  savevm undoes the snapshots it made
 * if a later node fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "core-priv.h"

BhSnapshotInfo *bh_snapshot_info_new(void)
{
    BhSnapshotInfo *i = g_new0(BhSnapshotInfo, 1);
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

bool bh_node_can_snapshot(const BhNode *bs)
{
    return bs->drv->snapshot_list && bs->drv->snapshot_create &&
           bs->drv->snapshot_apply && bs->drv->snapshot_delete;
}

static int no_snapshots(BhNode *bs, GError **errp)
{
    return bh_error_set(errp, ENOTSUP, "'%s' (driver %s) does not support "
                        "internal snapshots", bs->filename,
                        bh_node_driver_name(bs));
}

static int need_writable(BhNode *bs, GError **errp)
{
    if (bs->readonly)
        return bh_error_set(errp, EPERM, "'%s' is open read-only",
                            bs->filename);
    return 0;
}

GPtrArray *bh_node_snapshot_list(BhNode *bs, GError **errp)
{
    GPtrArray *out;

    if (!bh_node_can_snapshot(bs)) {
        no_snapshots(bs, errp);
        return NULL;
    }
    out = g_ptr_array_new_with_free_func((GDestroyNotify)bh_snapshot_info_free);
    if (bs->drv->snapshot_list(bs, out, errp) < 0) {
        g_ptr_array_free(out, TRUE);
        return NULL;
    }
    return out;
}

BhSnapshotInfo *bh_node_snapshot_find(BhNode *bs, const char *id_or_name,
                                      GError **errp)
{
    g_autoptr(GPtrArray) l = bh_node_snapshot_list(bs, errp);

    if (!l)
        return NULL;
    for (int pass = 0; pass < 2; pass++)
        for (guint i = 0; i < l->len; i++) {
            BhSnapshotInfo *sn = l->pdata[i];
            if (!strcmp(pass ? sn->name : sn->id, id_or_name))
                return bh_snapshot_info_copy(sn);
        }
    bh_error_set(errp, ENOENT, "'%s' has no snapshot with id or name '%s'",
                 bs->filename, id_or_name);
    return NULL;
}

int bh_node_snapshot_create(BhNode *bs, BhSnapshotInfo *info, GError **errp)
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
    return bs->drv->snapshot_create(bs, info, errp);
}

int bh_node_snapshot_apply(BhNode *bs, const char *id_or_name, GError **errp)
{
    if (!bh_node_can_snapshot(bs))
        return no_snapshots(bs, errp);
    if (need_writable(bs, errp) < 0)
        return -EPERM;
    int r = bs->drv->snapshot_apply(bs, id_or_name, errp);
    if (r == 0)
        bh_node_refresh_size(bs);
    return r;
}

int bh_node_snapshot_delete(BhNode *bs, const char *id_or_name, GError **errp)
{
    if (!bh_node_can_snapshot(bs))
        return no_snapshots(bs, errp);
    if (need_writable(bs, errp) < 0)
        return -EPERM;
    return bs->drv->snapshot_delete(bs, id_or_name, errp);
}

BhNode *bh_node_snapshot_open(BhNode *bs, const char *id, const char *name,
                              GError **errp)
{
    g_autoptr(GPtrArray) l = NULL;
    g_autoptr(BhOpts) opts = NULL;
    const BhSnapshotInfo *found = NULL;
    BhNode *file = bh_node_child(bs, "file");

    if (!bh_node_can_snapshot(bs) || !file) {
        no_snapshots(bs, errp);
        return NULL;
    }
    if (!id && !name) {
        bh_error_set(errp, EINVAL, "a snapshot id or name is needed");
        return NULL;
    }
    l = bh_node_snapshot_list(bs, errp);
    if (!l)
        return NULL;
    /* Both given: both must match.  One: id first, then name. */
    for (int pass = 0; pass < 2 && !found; pass++)
        for (guint i = 0; i < l->len && !found; i++) {
            const BhSnapshotInfo *sn = l->pdata[i];
            if (id && name) {
                if (!pass && !strcmp(sn->id, id) && !strcmp(sn->name, name))
                    found = sn;
            } else if (!strcmp(pass ? sn->name : sn->id, id ? id : name)) {
                found = sn;
            }
        }
    if (!found) {
        bh_error_set(errp, ENOENT, "'%s' has no snapshot with %s%s%s%s%s%s",
                     bs->filename, id ? "id '" : "", id ? id : "",
                     id && name ? "' and " : id ? "'" : "",
                     name ? "name '" : "", name ? name : "",
                     name ? "'" : "");
        return NULL;
    }
    opts = bh_opts_new();
    bh_opts_set(opts, "snapshot", found->id);
    bh_opts_set(opts, "readonly", "on");
    return bh_node_open_over(file, bh_node_driver_name(bs), opts, errp);
}

int bh_node_save_vmstate(BhNode *bs, const void *buf, uint64_t pos,
                         size_t len, GError **errp)
{
    if (!bs->drv->save_vmstate)
        return bh_error_set(errp, ENOTSUP, "'%s' (driver %s) cannot store "
                            "vmstate", bs->filename, bh_node_driver_name(bs));
    if (need_writable(bs, errp) < 0)
        return -EPERM;
    return bs->drv->save_vmstate(bs, buf, pos, len, errp);
}

int bh_node_load_vmstate(BhNode *bs, void *buf, uint64_t pos, size_t len,
                         GError **errp)
{
    if (!bs->drv->load_vmstate)
        return bh_error_set(errp, ENOTSUP, "'%s' (driver %s) holds no "
                            "vmstate", bs->filename, bh_node_driver_name(bs));
    return bs->drv->load_vmstate(bs, buf, pos, len, errp);
}

/* ---- a stream over the vmstate area ---- */

typedef struct {
    BhNode *bs;
    uint64_t limit;
} VmStream;

static ssize_t vm_read_at(void *opaque, void *buf, uint64_t pos, size_t len,
                          GError **errp)
{
    VmStream *v = opaque;
    if (pos >= v->limit)
        return 0;
    len = (size_t)MIN((uint64_t)len, v->limit - pos);
    int r = bh_node_load_vmstate(v->bs, buf, pos, len, errp);
    return r < 0 ? r : (ssize_t)len;
}

static int vm_write_at(void *opaque, const void *buf, uint64_t pos,
                       size_t len, GError **errp)
{
    VmStream *v = opaque;
    return bh_node_save_vmstate(v->bs, buf, pos, len, errp);
}

static int vm_flush(void *opaque, GError **errp)
{
    VmStream *v = opaque;
    return bh_node_flush(v->bs, errp);
}

static void vm_close(void *opaque)
{
    VmStream *v = opaque;
    bh_node_unref(v->bs);
    g_free(v);
}

static const BhStreamOps vm_ops = {
    .read_at = vm_read_at,
    .write_at = vm_write_at,
    .flush = vm_flush,
    .close = vm_close,
};

BhStream *bh_node_vmstate_stream(BhNode *bs, bool writable, uint64_t limit)
{
    VmStream *v = g_new0(VmStream, 1);
    v->bs = bh_node_ref(bs);
    v->limit = limit;
    return bh_stream_new_callbacks(&vm_ops, v, writable);
}

/* ---- every open node ---- */

static void unref_all(GPtrArray *nodes)
{
    for (guint i = 0; i < nodes->len; i++)
        bh_node_unref(nodes->pdata[i]);
    g_ptr_array_free(nodes, TRUE);
}

/* The writable nodes a multi-node operation works on; a writable node
 * that cannot snapshot makes it fail, naming that node. */
static GPtrArray *capable_nodes(const char *what, GError **errp)
{
    GPtrArray *all = bh_open_nodes(), *out = g_ptr_array_new();

    for (guint i = 0; i < all->len; i++) {
        BhNode *bs = all->pdata[i];
        if (bs->readonly)
            continue;
        if (!bh_node_can_snapshot(bs)) {
            bh_error_set(errp, ENOTSUP, "%s: device '%s' (driver %s) is "
                         "writable but does not support snapshots", what,
                         bs->filename, bh_node_driver_name(bs));
            unref_all(out);
            unref_all(all);
            return NULL;
        }
        g_ptr_array_add(out, bh_node_ref(bs));
    }
    unref_all(all);
    if (out->len == 0) {
        bh_error_set(errp, ENOTSUP, "%s: no open writable image supports "
                     "snapshots", what);
        unref_all(out);
        return NULL;
    }
    return out;
}

static bool has_name(BhNode *bs, const char *name, GError **errp,
                     bool *found)
{
    g_autoptr(GPtrArray) l = bh_node_snapshot_list(bs, errp);
    *found = false;
    if (!l)
        return false;
    for (guint i = 0; i < l->len; i++)
        if (!strcmp(((BhSnapshotInfo *)l->pdata[i])->name, name))
            *found = true;
    return true;
}

/* Delete every snapshot called name on bs (by name only, never by id). */
static int delete_by_name(BhNode *bs, const char *name, bool *any,
                          GError **errp)
{
    for (;;) {
        g_autoptr(GPtrArray) l = bh_node_snapshot_list(bs, errp);
        const BhSnapshotInfo *hit = NULL;
        if (!l)
            return -EIO;
        for (guint i = 0; i < l->len && !hit; i++)
            if (!strcmp(((BhSnapshotInfo *)l->pdata[i])->name, name))
                hit = l->pdata[i];
        if (!hit)
            return 0;
        int r = bh_node_snapshot_delete(bs, hit->id, errp);
        if (r < 0)
            return r;
        if (any)
            *any = true;
    }
}

/* The given nodes (each writable and snapshot-capable, named if not),
 * referenced, or with given == NULL every open writable node. */
static GPtrArray *savevm_nodes(BhNode *const *given, size_t n, GError **errp)
{
    if (!given)
        return capable_nodes("savevm", errp);
    if (n == 0) {
        bh_error_set(errp, EINVAL, "savevm: no images given");
        return NULL;
    }
    GPtrArray *out = g_ptr_array_new();
    for (size_t i = 0; i < n; i++) {
        BhNode *bs = given[i];
        if (bs->readonly || !bh_node_can_snapshot(bs)) {
            bh_error_set(errp, bs->readonly ? EPERM : ENOTSUP,
                         "savevm: '%s' (driver %s) %s", bs->filename,
                         bh_node_driver_name(bs),
                         bs->readonly ? "is read-only"
                                      : "does not support snapshots");
            unref_all(out);
            return NULL;
        }
        g_ptr_array_add(out, bh_node_ref(bs));
    }
    return out;
}

int bh_savevm(const char *name, GError **errp)
{
    return bh_savevm_nodes(NULL, 0, name, NULL, errp);
}

int bh_savevm_nodes(BhNode *const *given, size_t n, const char *name,
                    const BhSnapshotInfo *tmpl, GError **errp)
{
    GPtrArray *nodes = savevm_nodes(given, n, errp);
    g_autofree char *def = NULL;
    BhSnapshotInfo info = { 0 };
    gint64 now = g_get_real_time();
    guint done = 0;
    int r = 0;

    if (!nodes)
        return -ENOTSUP;
    if (!name || !*name) {
        g_autoptr(GDateTime) t = g_date_time_new_now_local();
        def = g_date_time_format(t, "vm-%Y%m%d%H%M%S");
        name = def;
    }
    if (strlen(name) > BH_SNAPSHOT_MAX_NAME) {
        r = bh_error_set(errp, EINVAL, "savevm: a snapshot name has at most "
                         "%d bytes", BH_SNAPSHOT_MAX_NAME);
        goto out;
    }
    for (guint i = 0; i < nodes->len && r == 0; i++)
        r = delete_by_name(nodes->pdata[i], name, NULL, errp);
    if (r < 0)
        goto out;

    info.date_sec = (uint32_t)(now / G_USEC_PER_SEC);
    info.date_nsec = (uint32_t)(now % G_USEC_PER_SEC) * 1000;
    info.icount = BH_SNAPSHOT_NO_ICOUNT;
    if (tmpl && tmpl->date_sec) {
        /* A caller with its own clock (a rotation, a test) dates it. */
        info.date_sec = tmpl->date_sec;
        info.date_nsec = tmpl->date_nsec;
    }
    if (tmpl)
        info.vm_clock_nsec = tmpl->vm_clock_nsec;
    if (bh_savevm_count() > 0) {
        BhNode *first = nodes->pdata[0];
        BhStream *st = bh_node_vmstate_stream(first, true, UINT64_MAX);
        r = bh_savevm_write_state(st, errp);
        info.vm_state_size = bh_stream_tell(st);
        if (r < 0) {
            bh_stream_close(st, NULL);
            g_prefix_error(errp, "savevm: writing the state: ");
            goto out;
        }
        r = bh_stream_close(st, errp);
        if (r < 0)
            goto out;
    }
    for (done = 0; done < nodes->len; done++) {
        BhSnapshotInfo sn = info;
        BhNode *bs = nodes->pdata[done];
        sn.id = NULL;
        sn.name = g_strdup(name);
        if (done > 0)
            sn.vm_state_size = 0;
        r = bh_node_snapshot_create(bs, &sn, errp);
        g_free(sn.id);
        g_free(sn.name);
        if (r < 0) {
            g_prefix_error(errp, "savevm: snapshot of '%s': ", bs->filename);
            break;
        }
    }
    /* All or nothing: take back what was made before the failure. */
    for (guint i = 0; r < 0 && i < done; i++)
        delete_by_name(nodes->pdata[i], name, NULL, NULL);
out:
    unref_all(nodes);
    return r;
}

int bh_loadvm(const char *name, bool *had_state, GError **errp)
{
    GPtrArray *nodes = capable_nodes("loadvm", errp);
    g_autoptr(BhSnapshotInfo) first_sn = NULL;
    int r = 0;

    if (had_state)
        *had_state = false;
    if (!nodes)
        return -ENOTSUP;
    for (guint i = 0; i < nodes->len; i++) {
        BhSnapshotInfo *sn = bh_node_snapshot_find(nodes->pdata[i], name,
                                                   errp);
        if (!sn) {
            g_prefix_error(errp, "loadvm: ");
            r = -ENOENT;
            goto out;
        }
        if (i == 0)
            first_sn = sn;
        else
            bh_snapshot_info_free(sn);
    }
    /* The state is read from the snapshot itself (a read-only view of it)
     * before any disk changes, so that a bad stream changes nothing. */
    if (first_sn->vm_state_size > 0) {
        BhNode *view = bh_node_snapshot_open(nodes->pdata[0], first_sn->id,
                                             NULL, errp);
        if (!view) {
            g_prefix_error(errp, "loadvm: ");
            r = -EIO;
            goto out;
        }
        BhStream *st = bh_node_vmstate_stream(view, false,
                                              first_sn->vm_state_size);
        bh_node_unref(view);
        r = bh_savevm_read_state(st, errp);
        bh_stream_close(st, NULL);
        if (r < 0) {
            g_prefix_error(errp, "loadvm: the state stored in '%s' of '%s' "
                           "cannot be loaded (nothing was changed): ", name,
                           bh_node_filename(nodes->pdata[0]));
            goto out;
        }
        if (had_state)
            *had_state = true;
    }
    for (guint i = 0; i < nodes->len; i++) {
        BhNode *bs = nodes->pdata[i];
        r = bh_node_snapshot_apply(bs, first_sn->id && i == 0 ? first_sn->id
                                   : name, errp);
        if (r < 0) {
            g_prefix_error(errp, "loadvm: reverting '%s': ", bs->filename);
            goto out;
        }
    }
out:
    unref_all(nodes);
    return r;
}

int bh_delvm(const char *name, GError **errp)
{
    GPtrArray *nodes = capable_nodes("delvm", errp);
    bool any = false;
    int r = 0;

    if (!nodes)
        return -ENOTSUP;
    for (guint i = 0; i < nodes->len && r == 0; i++)
        r = delete_by_name(nodes->pdata[i], name, &any, errp);
    if (r == 0 && !any)
        r = bh_error_set(errp, ENOENT, "delvm: no open image has a snapshot "
                         "named '%s'", name);
    unref_all(nodes);
    return r;
}

GPtrArray *bh_snapshots_common(GError **errp)
{
    GPtrArray *nodes = capable_nodes("snapshots", errp);
    GPtrArray *l, *out;

    if (!nodes)
        return NULL;
    l = bh_node_snapshot_list(nodes->pdata[0], errp);
    if (!l) {
        unref_all(nodes);
        return NULL;
    }
    out = g_ptr_array_new_with_free_func((GDestroyNotify)bh_snapshot_info_free);
    for (guint i = 0; i < l->len; i++) {
        BhSnapshotInfo *sn = l->pdata[i];
        bool everywhere = true;
        for (guint j = 1; j < nodes->len && everywhere; j++) {
            bool found = false;
            if (!has_name(nodes->pdata[j], sn->name, errp, &found)) {
                g_ptr_array_free(out, TRUE);
                out = NULL;
                goto done;
            }
            everywhere = found;
        }
        if (everywhere)
            g_ptr_array_add(out, bh_snapshot_info_copy(sn));
    }
done:
    g_ptr_array_free(l, TRUE);
    unref_all(nodes);
    return out;
}
