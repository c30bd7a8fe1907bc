/*
 * qcow2 resize (`blkhost resize`): growing and shrinking the virtual size.
 * SPDX-License-Identifier: BSD-3-Clause
 *
 * Growing is a snapshot commit (snapshot-commit.c) that keeps the
 * snapshot table and the active L2 tables as they are and switches to an
 * active L1 table long enough for the new size, with the new size, in one
 * header write; so a crash leaves either the old or the new image.  The
 * active vmstate area (L1 entries past the disk) is dropped first: it
 * would otherwise become disk content of the grown image.
 *
 * Shrinking first discards the whole clusters past the new end within the
 * last L2 table kept (so that growing again later shows no stale data),
 * then commits the shorter L1 table: the L2 tables and clusters only the
 * dropped entries reached are given back.  As in qemu-img, the bytes of
 * the cluster the new end falls in stay as they are.
 *
 * Refused: growing over a backing file longer than the current size (the
 * new area would show the backing file's bytes, where qemu-img writes
 * zeros over it), and shrinking a version 2 image with a backing file
 * (it has no zero flag, and its discard leaves the clusters in place).
 */
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <blkhost/glib.h>

static int resize_locked(Qcow2State *s, uint64_t size, BhError **errp)
{
    uint64_t per_l1 = s->cluster_size * s->l2_entries;
    uint64_t need = size / per_l1 + (size % per_l1 != 0);
    uint64_t keep = MIN(qcow2_vmstate_l1_index(s), s->l1_size);
    uint64_t n = MAX(need, keep);
    g_autofree uint64_t *l1 = NULL;
    GArray *t;
    int ret;

    if (size == s->size)
        return 0;
    keep = MIN(keep, need);
    n = MAX(need, keep);
    if (size > INT64_MAX || need * 8 > QCOW2_MAX_L1_BYTES)
        return bh_error_set(errp, EFBIG, "qcow2: size %" PRIu64 " is too "
                            "large", size);
    if (size % 512)
        return bh_error_set(errp, EINVAL, "qcow2: the size must be a "
                            "multiple of 512 bytes");
    if (s->backing && size > s->size) {
        int64_t blen = bh_node_size(s->backing);
        if (blen < 0 || (uint64_t)blen > s->size)
            return bh_error_set(errp, ENOTSUP, "qcow2: growing over a "
                                "backing file longer than the image is not "
                                "supported yet");
    }
    if (s->readonly)
        return bh_error_set(errp, EPERM, "qcow2: '%s' is open read-only",
                            bh_node_filename(s->file));
    ret = qcow2_prepare_first_write_locked(s, errp);
    if (ret == 0)
        ret = qcow2_meta_flush_locked(s, errp);
    if (ret < 0)
        return ret;
    t = qcow2_sn_table_read(s, errp);
    if (!t)
        return -EINVAL;
    l1 = g_new0(uint64_t, MAX(n, 1));
    memcpy(l1, s->l1, keep * 8);
    ret = qcow2_snapshot_commit_locked(s, l1, n, size, t, errp);
    qcow2_sn_table_free(t);
    return ret;
}

/* Shrinking: free the whole clusters from the new end to the end of the
 * last L2 table that stays (the ones past it go with their L1 entries). */
static int resize_discard_tail(BhNode *bs, Qcow2State *s, uint64_t size,
                               BhError **errp)
{
    uint64_t per_l1 = s->cluster_size * s->l2_entries;
    uint64_t start = qcow2_align_up(size, s->cluster_size);
    uint64_t end = MIN(qcow2_align_up(size, per_l1), s->size);

    if (s->backing && s->version < 3)
        return bh_error_set(errp, ENOTSUP, "qcow2: shrinking a version 2 "
                            "image with a backing file is not supported");
    if (s->readonly)
        return bh_error_set(errp, EPERM, "qcow2: '%s' is open read-only",
                            bh_node_filename(s->file));
    if (size % 512)
        return bh_error_set(errp, EINVAL, "qcow2: the size must be a "
                            "multiple of 512 bytes");
    if (end <= start)
        return 0;
    return qcow2_discard(bs, start, end - start, errp);
}

int qcow2_truncate(BhNode *bs, uint64_t size, BhError **errp)
{
    Qcow2State *s = bh_node_get_opaque(bs);
    int ret;

    if (size < s->size) {
        ret = resize_discard_tail(bs, s, size, errp);
        if (ret < 0)
            return ret;
    }
    g_mutex_lock(&s->lock);
    ret = resize_locked(s, size, errp);
    g_mutex_unlock(&s->lock);
    return ret;
}
