/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 internal snapshots: list, create, apply (revert to), delete, and
 * the snapshot=ID_OR_NAME open option that shows one read-only.
 *
 * A snapshot is a copy of the active L1 table; the L2 tables and data
 * clusters it reaches are shared with the active image, and a cluster's
 * refcount counts every L1 table that reaches it (so the active image
 * copies on write whatever has a refcount above 1, and its COPIED flags
 * say "refcount is exactly 1").  Create, apply and delete each decide the
 * new active L1, size and snapshot table, and qcow2_snapshot_commit_locked
 * (snapshot-commit.c, where the crash-safety ordering is explained)
 * switches the image to them in one header write.  They run with the
 * metadata lock held; callers should not run guest I/O at the same time.
 */
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <blkhost/glib.h>

static Qcow2State *state(BhNode *bs)
{
    return bh_node_get_opaque(bs);
}

int qcow2_snapshot_read_l1(Qcow2State *s, uint64_t offset, uint32_t n,
                           uint64_t **out, BhError **errp)
{
    uint64_t *t = g_new0(uint64_t, n ? n : 1);
    int ret = n ? bh_node_pread(s->file, t, offset, (size_t)n * 8, 0, errp)
                : 0;
    if (ret < 0) {
        g_free(t);
        return ret;
    }
    for (uint32_t i = 0; i < n; i++)
        t[i] = GUINT64_FROM_BE(t[i]);
    *out = t;
    return 0;
}

static uint64_t next_id(GArray *t)
{
    uint64_t max = 0;
    for (guint i = 0; i < t->len; i++) {
        const char *id = g_array_index(t, Qcow2SnEntry, i).id, *end;
        guint64 v = g_ascii_strtoull(id, (char **)&end, 10);
        if (*id && !*end && v > max)
            max = v;
    }
    return max + 1;
}

int qcow2_snapshot_list(BhNode *bs, BhSnapshotList *out, BhError **errp)
{
    Qcow2State *s = state(bs);
    GArray *t;

    g_mutex_lock(&s->lock);
    t = qcow2_sn_table_read(s, errp);
    g_mutex_unlock(&s->lock);
    if (!t)
        return -EINVAL;
    for (guint i = 0; i < t->len; i++) {
        Qcow2SnEntry *e = &g_array_index(t, Qcow2SnEntry, i);
        BhSnapshotInfo *info = bh_snapshot_info_new();
        info->id = g_strdup(e->id);
        info->name = g_strdup(e->name);
        info->vm_state_size = e->vm_state_size;
        info->date_sec = e->date_sec;
        info->date_nsec = e->date_nsec;
        info->vm_clock_nsec = e->vm_clock;
        info->disk_size = e->disk_size;
        info->icount = e->icount;
        bh_snapshot_list_add(out, info);
    }
    qcow2_sn_table_free(t);
    return 0;
}

static int check_writable(Qcow2State *s, BhError **errp)
{
    if (s->readonly)
        return bh_error_set(errp, EPERM, "qcow2: '%s' is open read-only",
                            bh_node_filename(s->file));
    return qcow2_prepare_first_write_locked(s, errp);
}

/* What every table-changing operation starts with, under s->lock: the
 * image must be writable, cached metadata on disk (the commit builds on
 * the refcounts and tables on disk), and the current table read. */
static int sn_begin_locked(Qcow2State *s, GArray **tp, BhError **errp)
{
    int ret = check_writable(s, errp);
    if (ret == 0)
        ret = qcow2_meta_flush_locked(s, errp);
    if (ret < 0)
        return ret;
    *tp = qcow2_sn_table_read(s, errp);
    return *tp ? 0 : -EINVAL;
}

/*
 * Create: the new snapshot takes the active L1 table as it is on disk
 * (with the vmstate area), and the active image keeps the L2 tables below
 * the vmstate area; the commit raises their refcounts and copies those
 * whose COPIED flags must be cleared.  See snapshot-commit.c for the
 * order of the writes.
 */
int qcow2_snapshot_create(BhNode *bs, BhSnapshotInfo *info, BhError **errp)
{
    Qcow2State *s = state(bs);
    Qcow2SnEntry e = { 0 };
    GArray *t = NULL;
    int ret;

    if (!info->name || strlen(info->name) > BH_SNAPSHOT_MAX_NAME ||
        (info->id && strlen(info->id) > BH_SNAPSHOT_MAX_NAME))
        return bh_error_set(errp, EINVAL, "qcow2: a snapshot id or name may "
                            "have at most %d bytes", BH_SNAPSHOT_MAX_NAME);
    g_mutex_lock(&s->lock);
    ret = sn_begin_locked(s, &t, errp);
    if (ret < 0)
        goto out;
    if (t->len >= QCOW2_MAX_SNAPSHOTS) {
        ret = bh_error_set(errp, EFBIG, "qcow2: '%s' already has %u "
                           "snapshots, the most a qcow2 image can hold",
                           bh_node_filename(s->file), t->len);
        goto out;
    }
    for (guint i = 0; info->id && i < t->len; i++)
        if (!strcmp(g_array_index(t, Qcow2SnEntry, i).id, info->id)) {
            ret = bh_error_set(errp, EEXIST, "qcow2: a snapshot with id '%s' "
                               "already exists", info->id);
            goto out;
        }
    if (!info->id)
        info->id = g_strdup_printf("%" PRIu64, next_id(t));
    if (!info->date_sec) {
        gint64 now = g_get_real_time();
        info->date_sec = (uint32_t)(now / G_USEC_PER_SEC);
        info->date_nsec = (uint32_t)(now % G_USEC_PER_SEC) * 1000;
    }
    e.l1_offset = s->l1_offset;
    e.l1_size = s->l1_size;
    e.id = g_strdup(info->id);
    e.name = g_strdup(info->name);
    e.date_sec = info->date_sec;
    e.date_nsec = info->date_nsec;
    e.vm_clock = info->vm_clock_nsec;
    e.vm_state_size = info->vm_state_size;
    e.disk_size = info->disk_size = s->size;
    e.icount = info->icount;
    e.extra = g_malloc0(1);
    g_array_append_val(t, e);
    {
        /* The active image keeps the disk part only: the vmstate area
         * now belongs to the snapshot. */
        uint64_t keep = MIN(qcow2_vmstate_l1_index(s), s->l1_size);
        g_autofree uint64_t *src = g_memdup2(s->l1, MAX(s->l1_size, 1) * 8);
        for (uint64_t i = keep; i < s->l1_size; i++)
            src[i] = 0;
        ret = qcow2_snapshot_commit_locked(s, src, s->l1_size, s->size, t,
                                           errp);
    }
out:
    qcow2_sn_table_free(t);
    g_mutex_unlock(&s->lock);
    return ret;
}

static int find_or_fail(Qcow2State *s, GArray *t, const char *id_or_name,
                        BhError **errp)
{
    int i = qcow2_sn_find(t, id_or_name);
    if (i < 0)
        return bh_error_set(errp, ENOENT, "qcow2: '%s' has no snapshot with "
                            "id or name '%s'", bh_node_filename(s->file),
                            id_or_name);
    return i;
}

/* Delete: the same active image, the table without the entry; whatever
 * only the snapshot used is free in the new refcounts. */
int qcow2_snapshot_delete(BhNode *bs, const char *id_or_name, BhError **errp)
{
    Qcow2State *s = state(bs);
    GArray *t = NULL;
    int ret, i;

    g_mutex_lock(&s->lock);
    ret = sn_begin_locked(s, &t, errp);
    if (ret < 0)
        goto out;
    ret = i = find_or_fail(s, t, id_or_name, errp);
    if (ret < 0)
        goto out;
    qcow2_sn_entry_clear(&g_array_index(t, Qcow2SnEntry, i));
    g_array_remove_index(t, i);
    ret = qcow2_snapshot_commit_locked(s, s->l1, s->l1_size, s->size, t,
                                       errp);
out:
    qcow2_sn_table_free(t);
    g_mutex_unlock(&s->lock);
    return ret;
}

/* Apply (revert): the active image takes the snapshot's L2 tables
 * (shared, or copied where their COPIED flags are wrong), at the
 * snapshot's disk size; the table is unchanged. */
int qcow2_snapshot_apply(BhNode *bs, const char *id_or_name, BhError **errp)
{
    Qcow2State *s = state(bs);
    g_autofree uint64_t *l1 = NULL;
    uint64_t per_l1 = s->cluster_size * s->l2_entries, need, n;
    Qcow2SnEntry *e;
    GArray *t = NULL;
    int ret, i;

    g_mutex_lock(&s->lock);
    ret = sn_begin_locked(s, &t, errp);
    if (ret < 0)
        goto out;
    ret = i = find_or_fail(s, t, id_or_name, errp);
    if (ret < 0)
        goto out;
    e = &g_array_index(t, Qcow2SnEntry, i);
    need = e->disk_size / per_l1 + (e->disk_size % per_l1 != 0);
    if (e->disk_size > INT64_MAX || need * 8 > QCOW2_MAX_L1_BYTES) {
        ret = bh_error_set(errp, EFBIG, "qcow2: snapshot '%s' has a disk "
                           "size of %" PRIu64 " bytes, too large", e->name,
                           e->disk_size);
        goto out;
    }
    n = MAX(need, e->l1_size);
    ret = qcow2_snapshot_read_l1(s, e->l1_offset, e->l1_size, &l1, errp);
    if (ret < 0)
        goto out;
    l1 = g_renew(uint64_t, l1, MAX(n, 1));
    for (uint64_t k = e->l1_size; k < n; k++)
        l1[k] = 0;
    ret = qcow2_snapshot_commit_locked(s, l1, n, e->disk_size, t, errp);
out:
    qcow2_sn_table_free(t);
    g_mutex_unlock(&s->lock);
    if (ret == 0)
        bh_node_refresh_size(bs);
    return ret;
}

int qcow2_snapshot_open_option(Qcow2State *s, BhOpts *opts, BhError **errp)
{
    const char *want = bh_opts_get(opts, "snapshot");
    uint64_t *l1 = NULL;
    GArray *t;
    Qcow2SnEntry *e;
    int i, ret;

    if (!want)
        return 0;
    if (!s->readonly)
        return bh_error_set(errp, EINVAL, "qcow2: a snapshot can only be "
                            "opened read-only (snapshot=%s)", want);
    t = qcow2_sn_table_read(s, errp);
    if (!t)
        return -EINVAL;
    i = find_or_fail(s, t, want, errp);
    if (i < 0) {
        qcow2_sn_table_free(t);
        return i;
    }
    e = &g_array_index(t, Qcow2SnEntry, i);
    ret = qcow2_snapshot_read_l1(s, e->l1_offset, e->l1_size, &l1, errp);
    if (ret == 0) {
        uint64_t per_l1 = s->cluster_size * s->l2_entries;
        if (e->disk_size > INT64_MAX ||
            e->disk_size / per_l1 + (e->disk_size % per_l1 != 0) >
            e->l1_size) {
            ret = bh_error_set(errp, EINVAL, "qcow2: snapshot '%s' has %u L1 "
                               "entries, too few for its disk size %" PRIu64,
                               e->name, e->l1_size, e->disk_size);
            g_free(l1);
        } else {
            g_free(s->l1);
            s->l1 = l1;
            s->l1_size = e->l1_size;
            s->l1_offset = e->l1_offset;
            s->size = e->disk_size;
            qcow2_overlap_tables_replaced(s);
        }
    }
    qcow2_sn_table_free(t);
    return ret;
}
