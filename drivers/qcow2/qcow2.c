/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 format driver: open, close, probe, info and the plugin descriptor.
 *
 * Open reads and validates the header, the L1 table, the refcount table
 * and the snapshot table; nothing is written until the first guest write
 * (then unknown autoclear bits are cleared and, with lazy refcounts, the
 * dirty bit set), except that a dirty image opened read-write gets its
 * refcounts rebuilt first, as QEMU does.
 *
 * Options: l2-cache-size and refcount-cache-size (bytes, rounded to whole
 * clusters), backing.KEY passed to the backing file's node, and
 * backing=null to open the image without its backing file.
 */
#include "qcow2.h"
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>

static void qcow2_state_free(Qcow2State *s)
{
    qcow2_cache_free(s->l2_cache);
    qcow2_cache_free(s->rb_cache);
    g_free(s->l1);
    g_free(s->reftable);
    for (uint32_t i = 0; s->snapshots && i < s->nb_snapshots; i++) {
        g_free(s->snapshots[i].id);
        g_free(s->snapshots[i].name);
    }
    g_free(s->snapshots);
    qcow2_bitmaps_free(s);
    qcow2_overlap_free(s);
    g_free(s->backing_file);
    g_free(s->backing_format);
    g_free(s->data_file_name);
    if (s->pending_free)
        g_array_free(s->pending_free, TRUE);
    if (s->in_flight)
        g_ptr_array_free(s->in_flight, TRUE);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->cond);
    g_cond_clear(&s->drain_cond);
    g_free(s);
}

static int read_u64_table(Qcow2State *s, uint64_t offset, uint64_t n,
                          uint64_t **out, BhError **errp)
{
    uint64_t *t = g_new0(uint64_t, n ? n : 1);
    int ret = n ? bh_node_pread(s->file, t, offset, n * 8, 0, errp) : 0;
    if (ret < 0) {
        g_free(t);
        return ret;
    }
    for (uint64_t i = 0; i < n; i++)
        t[i] = GUINT64_FROM_BE(t[i]);
    *out = t;
    return 0;
}

/* The backing file name relative to the image's folder, spelled as QEMU
 * spells it (the image name up to its last '/', then the backing name: no
 * "./" for an image in the current folder), since `blkhost map` prints
 * it where qemu-img map does. */
static char *backing_path(Qcow2State *s)
{
    const char *image = bh_node_filename(s->file);
    const char *slash = strrchr(image, '/');
    if (g_path_is_absolute(s->backing_file) || strstr(s->backing_file, "://"))
        return g_strdup(s->backing_file);
    if (!slash)
        return g_strdup(s->backing_file);
    return g_strdup_printf("%.*s%s", (int)(slash - image + 1), image,
                           s->backing_file);
}

static int open_backing(Qcow2State *s, BhOpts *opts, BhError **errp)
{
    g_autoptr(BhOpts) bo = bh_opts_take_prefix(opts, "backing.");
    g_autofree char *path = NULL;
    const char *choice = bh_opts_get(opts, "backing");

    /* backing=null (QEMU's spelling): the image alone, as if it had no
     * backing file, for tools that rewrite the chain (blkhost rebase -u
     * over a missing file, commit emptying the overlay). */
    if (choice && strcmp(choice, "null") != 0)
        return bh_error_set(errp, EINVAL, "qcow2: backing=%s: only "
                            "backing=null (no backing file) is taken", choice);
    if (!s->backing_file || choice)
        return 0;
    path = backing_path(s);
    if (s->backing_format && !bh_opts_has(bo, "format"))
        bh_opts_set(bo, "format", s->backing_format);
    s->backing = bh_node_open_child(s->bs, "backing", path, bo, errp);
    if (!s->backing) {
        bh_error_prefix(errp, "qcow2: cannot open backing file '%s': ", path);
        return -ENOENT;
    }
    return 0;
}

static int setup_caches(Qcow2State *s, BhOpts *opts, BhError **errp)
{
    uint64_t per_l2 = s->cluster_size * s->l2_entries;
    uint64_t l2_needed = (s->size + per_l2 - 1) / per_l2;
    uint64_t def_l2 = MIN(MAX(l2_needed, 2) * s->cluster_size, 32ull << 20);
    uint64_t l2_bytes, rb_bytes;

    if (!bh_opts_get_size(opts, "l2-cache-size", def_l2, &l2_bytes, errp) ||
        !bh_opts_get_size(opts, "refcount-cache-size",
                          MAX(l2_bytes / 4, 4 * s->cluster_size), &rb_bytes,
                          errp))
        return -EINVAL;
    if (l2_bytes > (1ull << 32) || rb_bytes > (1ull << 32))
        return bh_error_set(errp, EINVAL, "qcow2: cache sizes are limited to "
                            "4 GiB");
    s->l2_cache = qcow2_cache_new(s, "L2 table",
                                  MAX(2, l2_bytes / s->cluster_size),
                                  qcow2_l2_before_write);
    s->rb_cache = qcow2_cache_new(s, "refcount block",
                                  MAX(2, rb_bytes / s->cluster_size), NULL);
    return 0;
}

static int qcow2_open(BhNode *bs, const char *filename, BhOpts *opts,
                      uint32_t flags, BhError **errp)
{
    Qcow2State *s = g_new0(Qcow2State, 1);
    int ret;

    g_mutex_init(&s->lock);
    g_cond_init(&s->cond);
    g_cond_init(&s->drain_cond);
    s->bs = bs;
    s->file = bh_node_child(bs, "file");
    s->readonly = !(flags & BH_OPEN_RDWR);
    s->pending_free = g_array_new(FALSE, FALSE, sizeof(Qcow2PendingFree));
    s->in_flight = g_ptr_array_new();
    s->free_hint = 1;
    if (!s->file) {
        ret = bh_error_set(errp, EINVAL, "qcow2: no file child");
        goto fail;
    }
    ret = qcow2_read_header(s, errp);
    if (ret < 0)
        goto fail;
    if ((s->incompat & QCOW2_INCOMPAT_CORRUPT) && !s->readonly) {
        ret = bh_error_set(errp, EACCES, "qcow2: '%s' is marked corrupt; it "
                           "can only be opened read-only (qemu-img check -r "
                           "all repairs it)", filename);
        goto fail;
    }
    ret = read_u64_table(s, s->l1_offset, s->l1_size, &s->l1, errp);
    if (ret == 0) {
        s->reftable_size = (uint64_t)s->reftable_clusters * s->cluster_size / 8;
        ret = read_u64_table(s, s->reftable_offset, s->reftable_size,
                             &s->reftable, errp);
    }
    if (ret == 0)
        ret = qcow2_read_snapshot_table(s, errp);
    if (ret == 0)   /* snapshot=ID_OR_NAME: show that snapshot (snapshot.c) */
        ret = qcow2_snapshot_open_option(s, opts, errp);
    if (ret == 0)
        ret = setup_caches(s, opts, errp);
    if (ret < 0)
        goto fail;
    s->lazy = s->version >= 3 && (s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS);

    if ((s->incompat & QCOW2_INCOMPAT_DIRTY) && !s->readonly) {
        ret = qcow2_rebuild_refcounts_locked(s, errp);
        if (ret == 0)
            ret = qcow2_header_set_incompat(s, QCOW2_INCOMPAT_DIRTY, false,
                                            errp);
        if (ret < 0) {
            bh_error_prefix(errp, "qcow2: repairing the refcounts of dirty "
                           "image '%s': ", filename);
            goto fail;
        }
    }
    ret = open_backing(s, opts, errp);
    if (ret < 0)
        goto fail;

    bh_node_set_opaque(bs, s);
    bh_node_set_caps(bs, BH_CAP_DISCARD | (s->version >= 3 ? BH_CAP_ZERO : 0));
    bh_node_set_block_limits(bs, 1, s->cluster_size, 32u << 20);
    return 0;

fail:
    qcow2_state_free(s);
    return ret;
}

static void qcow2_close(BhNode *bs)
{
    Qcow2State *s = bh_node_get_opaque(bs);
    g_autoptr(BhError) err = NULL;

    if (!s)
        return;
    /* An image marked corrupt during this open gets nothing more written,
     * not even cached tables: they may be what the overlap check caught. */
    if (!s->readonly && !(s->incompat & QCOW2_INCOMPAT_CORRUPT)) {
        g_mutex_lock(&s->lock);
        int ret = qcow2_meta_flush_locked(s, &err);
        if (ret == 0 && (s->incompat & QCOW2_INCOMPAT_DIRTY))
            ret = qcow2_header_set_incompat(s, QCOW2_INCOMPAT_DIRTY, false,
                                            &err);
        g_mutex_unlock(&s->lock);
        if (ret < 0)
            g_warning("qcow2: closing '%s': %s", bh_node_filename(s->file),
                      err ? bh_error_message(err) : g_strerror(-ret));
    }
    bh_node_set_opaque(bs, NULL);
    qcow2_state_free(s);
}

static int64_t qcow2_get_length(BhNode *bs)
{
    Qcow2State *s = bh_node_get_opaque(bs);
    return (int64_t)s->size;
}

static int qcow2_probe(const uint8_t *buf, size_t len, const char *filename)
{
    return len >= 4 && qcow2_be32(buf) == QCOW2_MAGIC ? 100 : 0;
}

static void qcow2_info(BhNode *bs, BhInfo *info)
{
    Qcow2State *s = bh_node_get_opaque(bs);

    bh_info_add_int(info, "cluster-size", (int64_t)s->cluster_size);
    bh_info_add_str(info, "compat", s->version >= 3 ? "1.1" : "0.10");
    bh_info_add_bool(info, "lazy-refcounts",
                     !!(s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS));
    /* Persistent bitmaps as flat keys bitmaps.N.{name,granularity,flags};
     * `blkhost info` turns them into qemu-img's list. */
    for (uint32_t i = 0; i < s->nb_bitmaps &&
         (s->autoclear & QCOW2_AUTOCLEAR_BITMAPS); i++) {
        const Qcow2Bitmap *b = &s->bitmaps[i];
        g_autofree char *kn = g_strdup_printf("bitmaps.%u.name", i);
        g_autofree char *kg = g_strdup_printf("bitmaps.%u.granularity", i);
        g_autofree char *kf = g_strdup_printf("bitmaps.%u.flags", i);
        g_autofree char *flags = g_strdup_printf("%s%s%s",
            (b->flags & 1) ? "in-use" : "",
            (b->flags & 3) == 3 ? "," : "", (b->flags & 2) ? "auto" : "");
        bh_info_add_str(info, kn, b->name);
        bh_info_add_int(info, kg, b->granularity_bits < 63 ?
                        (int64_t)1 << b->granularity_bits : 0);
        bh_info_add_str(info, kf, flags);
    }
    bh_info_add_int(info, "refcount-bits", s->refcount_bits);
    if (s->backing_file)
        bh_info_add_str(info, "backing-filename", s->backing_file);
    if (s->backing_format)
        bh_info_add_str(info, "backing-format", s->backing_format);
    if (s->compression_type)
        bh_info_add_str(info, "compression-type", "zstd");
    bh_info_add_int(info, "snapshots", s->nb_snapshots);
    bh_info_add_bool(info, "corrupt", !!(s->incompat & QCOW2_INCOMPAT_CORRUPT));
    bh_info_add_bool(info, "dirty", !!(s->incompat & QCOW2_INCOMPAT_DIRTY));
}

static const BhDriver qcow2_driver = {
    .probe = qcow2_probe,
    .open = qcow2_open,
    .close = qcow2_close,
    .get_length = qcow2_get_length,
    .pread = qcow2_pread,
    .pwrite = qcow2_pwrite,
    .flush = qcow2_flush,
    .discard = qcow2_discard,
    .write_zeroes = qcow2_write_zeroes,
    .block_status = qcow2_block_status,
    .block_map = qcow2_block_map,
    .truncate = qcow2_truncate,
    .info = qcow2_info,
    .create = qcow2_create,
    .snapshot_list = qcow2_snapshot_list,
    .snapshot_create = qcow2_snapshot_create,
    .snapshot_apply = qcow2_snapshot_apply,
    .snapshot_delete = qcow2_snapshot_delete,
    .save_vmstate = qcow2_save_vmstate,
    .load_vmstate = qcow2_load_vmstate,
    .create_check = qcow2_create_check,
    .create_options = qcow2_create_options,
    .check = qcow2_check,
    .request_flags = BH_IO_FUA | BH_IO_MAY_UNMAP | BH_IO_FAST_ZERO,
    .amend = qcow2_amend,
    .amend_options = qcow2_amend_options,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "qcow2",
    .version = BLKHOST_VERSION,
    .description = "QEMU copy-on-write image format, versions 2 and 3",
    .driver = &qcow2_driver,
};

BH_PLUGIN_REGISTER(desc)
