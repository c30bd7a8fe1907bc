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
 *
 * Every call that reaches a driver's snapshot or vmstate callback runs
 * with the node drained (drain.c): no guest request is in flight on it
 * or above it, while the driver's own metadata I/O, made on this thread,
 * goes through.  savevm and loadvm keep all their nodes drained from the
 * first step to the last, so the state and every disk are one moment.
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

/* Index in l of the first snapshot (at or after start) whose id is id
 * and whose name is name; a NULL criterion matches anything. */
static int snapshot_match(GPtrArray *l, const char *id, const char *name,
                          guint start)
{
    for (guint i = start; i < l->len; i++) {
        const BhSnapshotInfo *sn = l->pdata[i];
        if ((!id || !strcmp(sn->id, id)) && (!name || !strcmp(sn->name, name)))
            return (int)i;
    }
    return -1;
}

BhSnapshotInfo *bh_node_snapshot_find(BhNode *bs, const char *id_or_name,
                                      GError **errp)
{
    g_autoptr(GPtrArray) l = bh_node_snapshot_list(bs, errp);
    int i;

    if (!l)
        return NULL;
    i = snapshot_match(l, id_or_name, NULL, 0);
    if (i < 0)
        i = snapshot_match(l, NULL, id_or_name, 0);
    if (i >= 0)
        return bh_snapshot_info_copy(l->pdata[i]);
    bh_error_set(errp, ENOENT, "'%s' has no snapshot with id or name '%s'",
                 bs->filename, id_or_name);
    return NULL;
}

BhSnapshotInfo *bh_node_snapshot_lookup(BhNode *bs, const char *id,
                                        const char *name, GError **errp)
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
    i = snapshot_match(l, id, name, 0);
    if (i >= 0)
        return bh_snapshot_info_copy(l->pdata[i]);
    bh_error_set(errp, ENOENT, "'%s' has no snapshot with %s%s%s%s%s%s",
                 bs->filename, id ? "id '" : "", id ? id : "",
                 id && name ? "' and " : id ? "'" : "",
                 name ? "name '" : "", name ? name : "", name ? "'" : "");
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
    bh_node_drain_begin(bs);
    int r = bs->drv->snapshot_create(bs, info, errp);
    bh_node_drain_end(bs);
    return r;
}

int bh_node_snapshot_apply(BhNode *bs, const char *id_or_name, GError **errp)
{
    if (!bh_node_can_snapshot(bs))
        return no_snapshots(bs, errp);
    if (need_writable(bs, errp) < 0)
        return -EPERM;
    bh_node_drain_begin(bs);
    int r = bs->drv->snapshot_apply(bs, id_or_name, errp);
    if (r == 0)
        bh_node_refresh_size(bs);
    bh_node_drain_end(bs);
    return r;
}

int bh_node_snapshot_delete(BhNode *bs, const char *id_or_name, GError **errp)
{
    if (!bh_node_can_snapshot(bs))
        return no_snapshots(bs, errp);
    if (need_writable(bs, errp) < 0)
        return -EPERM;
    bh_node_drain_begin(bs);
    int r = bs->drv->snapshot_delete(bs, id_or_name, errp);
    bh_node_drain_end(bs);
    return r;
}

BhNode *bh_node_snapshot_open(BhNode *bs, const char *id, const char *name,
                              GError **errp)
{
    g_autoptr(BhSnapshotInfo) found = NULL;
    g_autoptr(BhOpts) opts = NULL;
    BhNode *file = bh_node_child(bs, "file");

    if (!bh_node_can_snapshot(bs) || !file) {
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
    bh_node_drain_begin(bs);
    int r = bs->drv->save_vmstate(bs, buf, pos, len, errp);
    bh_node_drain_end(bs);
    return r;
}

int bh_node_load_vmstate(BhNode *bs, void *buf, uint64_t pos, size_t len,
                         GError **errp)
{
    if (!bs->drv->load_vmstate)
        return bh_error_set(errp, ENOTSUP, "'%s' (driver %s) holds no "
                            "vmstate", bs->filename, bh_node_driver_name(bs));
    bh_node_drain_begin(bs);
    int r = bs->drv->load_vmstate(bs, buf, pos, len, errp);
    bh_node_drain_end(bs);
    return r;
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

/* Drain (or end the drain of) every node of a multi-node operation, so
 * that the state and the disks are taken at one point for all of them. */
static void drain_all(GPtrArray *nodes, bool begin)
{
    for (guint i = 0; i < nodes->len; i++) {
        if (begin)
            bh_node_drain_begin(nodes->pdata[i]);
        else
            bh_node_drain_end(nodes->pdata[nodes->len - 1 - i]);
    }
}

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

/* Each node's snapshot list (a GPtrArray of lists, in node order), read
 * before a multi-node operation changes anything. */
static GPtrArray *snapshot_lists(GPtrArray *nodes, const char *what,
                             GError **errp)
{
    GPtrArray *lists = g_ptr_array_new_with_free_func(
        (GDestroyNotify)g_ptr_array_unref);

    for (guint i = 0; i < nodes->len; i++) {
        GPtrArray *l = bh_node_snapshot_list(nodes->pdata[i], errp);
        if (!l) {
            g_prefix_error(errp, "%s: listing the snapshots of '%s' "
                           "(nothing was changed): ", what,
                           bh_node_filename(nodes->pdata[i]));
            g_ptr_array_free(lists, TRUE);
            return NULL;
        }
        g_ptr_array_add(lists, l);
    }
    return lists;
}

/* The ids of every snapshot called name in l (by name only, never by id),
 * a NULL-terminated array. */
static char **snapshot_ids_named(GPtrArray *l, const char *name)
{
    GPtrArray *ids = g_ptr_array_new();

    for (int i = snapshot_match(l, NULL, name, 0); i >= 0;
         i = snapshot_match(l, NULL, name, (guint)i + 1))
        g_ptr_array_add(ids, g_strdup(((BhSnapshotInfo *)l->pdata[i])->id));
    g_ptr_array_add(ids, NULL);
    return (char **)g_ptr_array_free(ids, FALSE);
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

/* Write the state collected in mem to the vmstate area of bs. */
static int snapshot_store_state(BhNode *bs, BhStream *mem, GError **errp)
{
    size_t len;
    const uint8_t *data = bh_stream_mem_data(mem, &len);
    BhStream *st = bh_node_vmstate_stream(bs, true, UINT64_MAX);

    bh_stream_put_buffer(st, data, len);
    bh_stream_flush(st);
    int r = bh_stream_take_error(st, errp);
    if (r < 0) {
        bh_stream_close(st, NULL);
        return r;
    }
    return bh_stream_close(st, errp);
}

/*
 * Replacing a snapshot without ever having neither the old nor the new one:
 *   1. list every node and note the ids of the snapshots called name;
 *   2. collect the state in memory (a failing getter stops here);
 *   3. store it in the first node's vmstate area (not yet in a snapshot);
 *   4. create the new snapshot on every node under the same name (qcow2
 *      does not require names to be unique; the driver gives a new id);
 *      a failure deletes, by id, the new ones made so far;
 *   5. delete the old ones by the ids noted in 1.
 * Until 4 ends, every node still has the old snapshot; from then on,
 * every node has the new one.  A crash during 4 or 5 leaves some nodes
 * with two snapshots of that name (the new one last in the table);
 * loadvm then refuses the name as ambiguous until one is deleted, and
 * running savevm again with the name removes both old copies.
 */
int bh_savevm_nodes(BhNode *const *given, size_t n, const char *name,
                    const BhSnapshotInfo *tmpl, GError **errp)
{
    GPtrArray *nodes = savevm_nodes(given, n, errp);
    g_autoptr(GPtrArray) lists = NULL;
    g_autoptr(GPtrArray) old = NULL;
    g_autoptr(GPtrArray) made = NULL;
    g_autofree char *def = NULL;
    BhSnapshotInfo info = { 0 };
    gint64 now = g_get_real_time();
    int r = 0;

    if (!nodes)
        return -ENOTSUP;
    drain_all(nodes, true);
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
    lists = snapshot_lists(nodes, "savevm", errp);
    if (!lists) {
        r = -EIO;
        goto out;
    }
    old = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    for (guint i = 0; i < nodes->len; i++)
        g_ptr_array_add(old, snapshot_ids_named(lists->pdata[i], name));

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
        BhStream *mem = bh_stream_new_mem_writer();
        r = bh_savevm_write_state(mem, errp);
        if (r < 0) {
            g_prefix_error(errp, "savevm: collecting the state (nothing was "
                           "changed): ");
        } else {
            info.vm_state_size = bh_stream_tell(mem);
            r = snapshot_store_state(nodes->pdata[0], mem, errp);
            if (r < 0)
                g_prefix_error(errp, "savevm: writing the state to '%s' "
                               "(no snapshot was changed): ",
                               bh_node_filename(nodes->pdata[0]));
        }
        bh_stream_close(mem, NULL);
        if (r < 0)
            goto out;
    }
    made = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < nodes->len; i++) {
        BhSnapshotInfo sn = info;
        BhNode *bs = nodes->pdata[i];
        sn.id = NULL;
        sn.name = g_strdup(name);
        if (i > 0)
            sn.vm_state_size = 0;
        r = bh_node_snapshot_create(bs, &sn, errp);
        g_free(sn.name);
        if (r < 0) {
            g_free(sn.id);
            g_prefix_error(errp, "savevm: snapshot of '%s' (the old snapshots "
                           "are kept): ", bs->filename);
            break;
        }
        g_ptr_array_add(made, sn.id);
    }
    /* All or nothing: take back, by id, what was made before the failure. */
    for (guint i = 0; r < 0 && i < made->len; i++)
        bh_node_snapshot_delete(nodes->pdata[i], made->pdata[i], NULL);
    if (r < 0)
        goto out;
    /* The new snapshot is on every node: now the old ones can go.  Go on
     * past a failure so that as few nodes as possible keep two. */
    for (guint i = 0; i < nodes->len; i++)
        for (char **id = old->pdata[i]; *id; id++) {
            BhNode *bs = nodes->pdata[i];
            GError *e = NULL;
            if (bh_node_snapshot_delete(bs, *id, &e) == 0)
                continue;
            if (r == 0)
                r = bh_error_set(errp, bh_error_errno(e), "savevm: '%s' was "
                                 "saved on every image, but the old snapshot "
                                 "(id %s) of that name on '%s' could not be "
                                 "deleted, so that image has two: %s", name,
                                 *id, bs->filename, e->message);
            g_error_free(e);
        }
out:
    drain_all(nodes, false);
    unref_all(nodes);
    return r;
}

/* The one snapshot that name picks on each node (its id in *ids), by name
 * only: a node without it, or with two of that name, refuses the lot. */
static int snapshot_pick_named(GPtrArray *nodes, const char *name, char ***ids,
                       BhSnapshotInfo **first, GError **errp)
{
    g_autoptr(GPtrArray) lists = snapshot_lists(nodes, "loadvm", errp);
    GPtrArray *out;

    if (!lists)
        return -EIO;
    out = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < nodes->len; i++) {
        GPtrArray *l = lists->pdata[i];
        const char *file = bh_node_filename(nodes->pdata[i]);
        int k = snapshot_match(l, NULL, name, 0), again;
        if (k < 0) {
            g_ptr_array_free(out, TRUE);
            return bh_error_set(errp, ENOENT, "loadvm: '%s' has no snapshot "
                                "named '%s' (nothing was changed)", file,
                                name);
        }
        again = snapshot_match(l, NULL, name, (guint)k + 1);
        if (again >= 0) {
            g_ptr_array_free(out, TRUE);
            return bh_error_set(errp, EEXIST, "loadvm: '%s' has more than one "
                                "snapshot named '%s' (ids %s and %s), so the "
                                "name does not pick one (nothing was changed);"
                                " delete one ('blkhost snapshot -d %s' "
                                "deletes the first listed)", file, name,
                                ((BhSnapshotInfo *)l->pdata[k])->id,
                                ((BhSnapshotInfo *)l->pdata[again])->id,
                                name);
        }
        if (i == 0)
            *first = bh_snapshot_info_copy(l->pdata[k]);
        g_ptr_array_add(out, g_strdup(((BhSnapshotInfo *)l->pdata[k])->id));
    }
    g_ptr_array_add(out, NULL);
    *ids = (char **)g_ptr_array_free(out, FALSE);
    return 0;
}

int bh_loadvm(const char *name, bool *had_state, GError **errp)
{
    GPtrArray *nodes = capable_nodes("loadvm", errp);
    g_autoptr(BhSnapshotInfo) first_sn = NULL;
    g_auto(GStrv) ids = NULL;
    BhSavevmLoad *load = NULL;
    int r = 0;

    if (had_state)
        *had_state = false;
    if (!nodes)
        return -ENOTSUP;
    drain_all(nodes, true);
    r = snapshot_pick_named(nodes, name, &ids, &first_sn, errp);
    if (r < 0)
        goto out;
    /* The state is read from the snapshot itself (a read-only view of it)
     * before any disk changes, so that a bad stream changes nothing; it is
     * committed only once every disk is reverted. */
    if (first_sn->vm_state_size > 0) {
        BhNode *view = bh_node_snapshot_open(nodes->pdata[0], ids[0], NULL,
                                             errp);
        if (!view) {
            g_prefix_error(errp, "loadvm: ");
            r = -EIO;
            goto out;
        }
        BhStream *st = bh_node_vmstate_stream(view, false,
                                              first_sn->vm_state_size);
        bh_node_unref(view);
        r = bh_savevm_load_begin(st, &load, errp);
        bh_stream_close(st, NULL);
        if (r < 0) {
            g_prefix_error(errp, "loadvm: the state stored in '%s' of '%s' "
                           "cannot be loaded (nothing was changed): ", name,
                           bh_node_filename(nodes->pdata[0]));
            goto out;
        }
    }
    for (guint i = 0; i < nodes->len; i++) {
        BhNode *bs = nodes->pdata[i];
        /* By id: the driver would take a name for some other id. */
        r = bh_node_snapshot_apply(bs, ids[i], errp);
        if (r < 0) {
            g_prefix_error(errp, "loadvm: reverting '%s' to '%s' (id %s) "
                           "failed; %u image(s) before it were reverted, the "
                           "rest were not, and the state was not loaded: ",
                           bs->filename, name, ids[i], i);
            bh_savevm_load_finish(load, false);
            goto out;
        }
    }
    if (load) {
        bh_savevm_load_finish(load, true);
        if (had_state)
            *had_state = true;
    }
out:
    drain_all(nodes, false);
    unref_all(nodes);
    return r;
}

int bh_delvm(const char *name, GError **errp)
{
    GPtrArray *nodes = capable_nodes("delvm", errp);
    g_autoptr(GPtrArray) lists = NULL;
    g_autoptr(GPtrArray) ids = NULL;
    bool any = false;
    int r = 0;

    if (!nodes)
        return -ENOTSUP;
    lists = snapshot_lists(nodes, "delvm", errp);
    if (!lists) {
        unref_all(nodes);
        return -EIO;
    }
    ids = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    for (guint i = 0; i < nodes->len; i++) {
        g_ptr_array_add(ids, snapshot_ids_named(lists->pdata[i], name));
        any = any || *(char **)ids->pdata[i];
    }
    if (!any)
        r = bh_error_set(errp, ENOENT, "delvm: no open image has a snapshot "
                         "named '%s'", name);
    for (guint i = 0; i < nodes->len && r == 0; i++)
        for (char **id = ids->pdata[i]; *id && r == 0; id++) {
            /* By id: the driver would take a name for some other id. */
            r = bh_node_snapshot_delete(nodes->pdata[i], *id, errp);
            if (r < 0)
                g_prefix_error(errp, "delvm: deleting '%s' (id %s) of '%s': ",
                               name, *id, bh_node_filename(nodes->pdata[i]));
        }
    unref_all(nodes);
    return r;
}

GPtrArray *bh_snapshots_common(GError **errp)
{
    GPtrArray *nodes = capable_nodes("snapshots", errp);
    g_autoptr(GPtrArray) lists = NULL;
    GPtrArray *first, *out;

    if (!nodes)
        return NULL;
    lists = snapshot_lists(nodes, "snapshots", errp);
    if (!lists) {
        unref_all(nodes);
        return NULL;
    }
    first = lists->pdata[0];
    out = g_ptr_array_new_with_free_func((GDestroyNotify)bh_snapshot_info_free);
    for (guint i = 0; i < first->len; i++) {
        BhSnapshotInfo *sn = first->pdata[i];
        bool everywhere = true;
        for (guint j = 1; j < nodes->len && everywhere; j++)
            everywhere = snapshot_match(lists->pdata[j], NULL, sn->name, 0) >= 0;
        if (everywhere)
            g_ptr_array_add(out, bh_snapshot_info_copy(sn));
    }
    unref_all(nodes);
    return out;
}
