/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The operations across every open image that QEMU calls savevm, loadvm,
 * delvm and "info snapshots" (see savevm.h for the contract), over the
 * core's per-node snapshot calls.
 *
 * They check everything they can before changing anything: savevm refuses
 * when a writable node cannot snapshot, loadvm when any node lacks the
 * snapshot.  savevm undoes the snapshots it made if a later node fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <blkhost/blkhost.h>


/* Drain (or end the drain of) every node of savevm or loadvm, so that the
 * state and the disks are taken at one moment for all of them even while
 * other threads write (node.h). */
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
static GPtrArray *capable_nodes(const char *what, BhError **errp)
{
    GPtrArray *all = bh_open_nodes(), *out = g_ptr_array_new();

    for (guint i = 0; i < all->len; i++) {
        BhNode *bs = all->pdata[i];
        if (bh_node_is_readonly(bs))
            continue;
        if (!bh_node_can_snapshot(bs)) {
            bh_error_set(errp, ENOTSUP, "%s: device '%s' (driver %s) is "
                         "writable but does not support snapshots", what,
                         bh_node_filename(bs), bh_node_driver_name(bs));
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
                             BhError **errp)
{
    GPtrArray *lists = g_ptr_array_new_with_free_func(
        (GDestroyNotify)g_ptr_array_unref);

    for (guint i = 0; i < nodes->len; i++) {
        GPtrArray *l = bh_node_snapshot_list(nodes->pdata[i], errp);
        if (!l) {
            bh_error_prefix(errp, "%s: listing the snapshots of '%s' "
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

    for (int i = bh_snapshots_match(l, NULL, name, 0); i >= 0;
         i = bh_snapshots_match(l, NULL, name, (guint)i + 1))
        g_ptr_array_add(ids, g_strdup(((BhSnapshotInfo *)l->pdata[i])->id));
    g_ptr_array_add(ids, NULL);
    return (char **)g_ptr_array_free(ids, FALSE);
}

/* The given nodes (each writable and snapshot-capable, named if not),
 * referenced, or with given == NULL every open writable node. */
static GPtrArray *savevm_nodes(BhNode *const *given, size_t n, BhError **errp)
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
        if (bh_node_is_readonly(bs) || !bh_node_can_snapshot(bs)) {
            bh_error_set(errp, bh_node_is_readonly(bs) ? EPERM : ENOTSUP,
                         "savevm: '%s' (driver %s) %s", bh_node_filename(bs),
                         bh_node_driver_name(bs),
                         bh_node_is_readonly(bs) ? "is read-only"
                                      : "does not support snapshots");
            unref_all(out);
            return NULL;
        }
        g_ptr_array_add(out, bh_node_ref(bs));
    }
    return out;
}

int bh_savevm(const char *name, BhError **errp)
{
    return bh_savevm_nodes(NULL, 0, name, NULL, errp);
}

/* Write the state collected in mem to the vmstate area of bs. */
static int snapshot_store_state(BhNode *bs, BhStream *mem, BhError **errp)
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
                    const BhSnapshotInfo *tmpl, BhError **errp)
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
            bh_error_prefix(errp, "savevm: collecting the state (nothing was "
                           "changed): ");
        } else {
            info.vm_state_size = bh_stream_tell(mem);
            r = snapshot_store_state(nodes->pdata[0], mem, errp);
            if (r < 0)
                bh_error_prefix(errp, "savevm: writing the state to '%s' "
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
            bh_error_prefix(errp, "savevm: snapshot of '%s' (the old snapshots "
                           "are kept): ", bh_node_filename(bs));
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
            BhError *e = NULL;
            if (bh_node_snapshot_delete(bs, *id, &e) == 0)
                continue;
            if (r == 0)
                r = bh_error_set(errp, bh_error_errno(e), "savevm: '%s' was "
                                 "saved on every image, but the old snapshot "
                                 "(id %s) of that name on '%s' could not be "
                                 "deleted, so that image has two: %s", name,
                                 *id, bh_node_filename(bs), bh_error_message(e));
            bh_error_free(e);
        }
out:
    drain_all(nodes, false);
    unref_all(nodes);
    return r;
}

/* The one snapshot that name picks on each node (its id in *ids), by name
 * only: a node without it, or with two of that name, refuses the lot. */
static int snapshot_pick_named(GPtrArray *nodes, const char *name, char ***ids,
                       BhSnapshotInfo **first, BhError **errp)
{
    g_autoptr(GPtrArray) lists = snapshot_lists(nodes, "loadvm", errp);
    GPtrArray *out;

    if (!lists)
        return -EIO;
    out = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < nodes->len; i++) {
        GPtrArray *l = lists->pdata[i];
        const char *file = bh_node_filename(nodes->pdata[i]);
        int k = bh_snapshots_match(l, NULL, name, 0), again;
        if (k < 0) {
            g_ptr_array_free(out, TRUE);
            return bh_error_set(errp, ENOENT, "loadvm: '%s' has no snapshot "
                                "named '%s' (nothing was changed)", file,
                                name);
        }
        again = bh_snapshots_match(l, NULL, name, (guint)k + 1);
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

int bh_loadvm(const char *name, bool *had_state, BhError **errp)
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
            bh_error_prefix(errp, "loadvm: ");
            r = -EIO;
            goto out;
        }
        BhStream *st = bh_node_vmstate_stream(view, false,
                                              first_sn->vm_state_size);
        bh_node_unref(view);
        r = bh_savevm_load_begin(st, &load, errp);
        bh_stream_close(st, NULL);
        if (r < 0) {
            bh_error_prefix(errp, "loadvm: the state stored in '%s' of '%s' "
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
            bh_error_prefix(errp, "loadvm: reverting '%s' to '%s' (id %s) "
                           "failed; %u image(s) before it were reverted, the "
                           "rest were not, and the state was not loaded: ",
                           bh_node_filename(bs), name, ids[i], i);
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

int bh_delvm(const char *name, BhError **errp)
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
                bh_error_prefix(errp, "delvm: deleting '%s' (id %s) of '%s': ",
                               name, *id, bh_node_filename(nodes->pdata[i]));
        }
    unref_all(nodes);
    return r;
}

GPtrArray *bh_snapshots_common(BhError **errp)
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
            everywhere = bh_snapshots_match(lists->pdata[j], NULL, sn->name, 0) >= 0;
        if (everywhere)
            g_ptr_array_add(out, bh_snapshot_info_copy(sn));
    }
    unref_all(nodes);
    return out;
}
