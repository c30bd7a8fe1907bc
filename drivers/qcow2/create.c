/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 image creation: lay out a new image on an empty file node.
 *
 * Layout: the header (with the backing format extension and the backing
 * file name) in cluster 0, then the refcount table, the refcount blocks
 * covering every cluster written here, the L1 table, and with
 * preallocation the L2 tables and data clusters too.  The header is
 * written last, after a flush, so a crash leaves no valid-looking image.
 *
 * Everything that can be wrong with the options (values, sizes, the
 * backing file, a layout too large for the limits) is found by
 * qcow2_create_check, which the core calls before it touches the file.
 *
 * Options (qemu-img's names, with blkhost's aliases):
 *   size (rounded up to 512), cluster_size, backing_file|backing,
 *   backing_fmt|backing_format, compat=1.1|0.10|v3|v2, lazy_refcounts,
 *   refcount_bits, compression_type=zlib|zstd,
 *   preallocation=off|metadata|falloc|full, unsafe (do not open the
 *   backing file: `create -u`).
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <glib/gstdio.h>

enum { PREALLOC_OFF, PREALLOC_METADATA, PREALLOC_FALLOC, PREALLOC_FULL };

typedef struct {
    uint64_t size, cluster_size;
    const char *backing, *backing_fmt;
    char *probed_fmt;       /* backing_fmt found by opening the backing file */
    int version;
    bool lazy;
    int refcount_order;
    int compression_type;   /* 0 zlib, 1 zstd */
    int prealloc;
} CreateOpts;

/* Where each part of the new image goes, in clusters and bytes. */
typedef struct {
    uint64_t l1_size, l1c, l2c, dc, nb, nt, total;
    uint64_t rt, rb, l1, l2, data;
} CreateLayout;

/* In qemu-img's order (alphabetical), for `create -o help`. */
const BhCreateOption qcow2_create_options[] = {
    { "backing_file", "str", "File name of a base image" },
    { "backing_fmt", "str", "Image format of the base image" },
    { "cluster_size", "size", "qcow2 cluster size" },
    { "compat", "str", "Compatibility level (v2 [0.10] or v3 [1.1])" },
    { "compression_type", "str", "Compression method used for image "
      "cluster compression (zlib, zstd)" },
    { "lazy_refcounts", "bool (on/off)", "Postpone refcount updates" },
    { "preallocation", "str", "Preallocation mode (allowed values: off, "
      "metadata, falloc, full)" },
    { "refcount_bits", "num", "Width of a reference count entry in bits" },
    { "size", "size", "Virtual disk size" },
    { "unsafe", "bool (on/off)", "Do not open the backing file (its size "
      "and format must be given)" },
    { NULL, NULL, NULL },
};

static void create_opts_clear(CreateOpts *o)
{
    g_clear_pointer(&o->probed_fmt, g_free);
}

static const char *opt_either(BhOpts *opts, const char *a, const char *b)
{
    const char *va = bh_opts_get(opts, a), *vb = bh_opts_get(opts, b);
    return va ? va : vb;
}

static char *resolve_backing(const char *image, const char *backing)
{
    g_autofree char *dir = NULL;
    if (g_path_is_absolute(backing) || strstr(backing, "://"))
        return g_strdup(backing);
    dir = g_path_get_dirname(image);
    return g_build_filename(dir, backing, NULL);
}

/* An image backed by itself would be emptied by its own creation and then
 * never open (qemu-img catches only the same spelling). */
static int check_not_self(const char *filename, const char *backing,
                          BhError **errp)
{
    g_autofree char *path = resolve_backing(filename, backing);
    GStatBuf a, b;
    if (g_stat(filename, &a) == 0 && g_stat(path, &b) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return bh_error_set(errp, EINVAL, "qcow2: the backing file '%s' is "
                            "the image itself", backing);
    return 0;
}

/* Open the backing file read-only, as qemu-img does unless -u: it must
 * exist, it gives the size when none was asked for, and when no
 * backing_fmt was given its probed format is recorded in the image, so
 * that the image never depends on probing again. */
static int check_backing(const char *filename, CreateOpts *o, bool have_size,
                         BhError **errp)
{
    g_autofree char *path = resolve_backing(filename, o->backing);
    g_autoptr(BhOpts) bo = bh_opts_new();
    BhNode *b;

    bh_opts_set(bo, "readonly", "on");
    bh_opts_set(bo, "locking", "off");
    if (o->backing_fmt)
        bh_opts_set(bo, "format", o->backing_fmt);
    b = bh_node_open(path, bo, errp);
    if (!b) {
        bh_error_prefix(errp, "qcow2: cannot open the backing file '%s': ",
                       path);
        return -ENOENT;
    }
    if (!have_size)
        o->size = (uint64_t)bh_node_size(b);
    if (!o->backing_fmt)
        o->probed_fmt = g_strdup(bh_node_driver_name(b));
    bh_node_unref(b);
    return 0;
}

static int parse_opts(const char *filename, BhOpts *opts, CreateOpts *o,
                      BhError **errp)
{
    static const char *const compat_names[] = { "1.1", "0.10", "v3", "v2",
                                                NULL };
    static const char *const prealloc_names[] = { "off", "metadata",
                                                  "falloc", "full", NULL };
    static const char *const compression_names[] = { "zlib", "zstd", NULL };
    uint64_t rbits;
    int compat;
    bool have_size = bh_opts_has(opts, "size"), unsafe;

    if (!bh_opts_get_size(opts, "size", 0, &o->size, errp) ||
        !bh_opts_get_size(opts, "cluster_size", 65536, &o->cluster_size,
                          errp) ||
        !bh_opts_get_enum(opts, "compat", compat_names, 0, &compat, errp) ||
        !bh_opts_get_bool(opts, "lazy_refcounts", false, &o->lazy, errp) ||
        !bh_opts_get_uint(opts, "refcount_bits", 16, 64, &rbits, errp) ||
        !bh_opts_get_enum(opts, "preallocation", prealloc_names, 0,
                          &o->prealloc, errp) ||
        !bh_opts_get_enum(opts, "compression_type", compression_names, 0,
                          &o->compression_type, errp) ||
        !bh_opts_get_bool(opts, "unsafe", false, &unsafe, errp))
        return -EINVAL;
    o->version = (compat == 0 || compat == 2) ? 3 : 2;
    o->backing = opt_either(opts, "backing_file", "backing");
    o->backing_fmt = opt_either(opts, "backing_fmt", "backing_format");
    if (o->backing && !*o->backing)
        o->backing = NULL;
    if (o->backing_fmt && !*o->backing_fmt)
        o->backing_fmt = NULL;

    if (o->cluster_size < 512 || o->cluster_size > (2u << 20) ||
        (o->cluster_size & (o->cluster_size - 1)))
        return bh_error_set(errp, EINVAL, "qcow2: cluster_size %" PRIu64
                            " must be a power of two from 512 to 2M",
                            o->cluster_size);
    if (!rbits || (rbits & (rbits - 1)))
        return bh_error_set(errp, EINVAL, "qcow2: refcount_bits %" PRIu64
                            " must be a power of two from 1 to 64", rbits);
    o->refcount_order = __builtin_ctzll(rbits);
    if (o->version == 2 && rbits != 16)
        return bh_error_set(errp, EINVAL, "qcow2: compat=0.10 images only "
                            "support refcount_bits=16");
    if (o->version == 2 && o->lazy)
        return bh_error_set(errp, EINVAL, "qcow2: lazy_refcounts need "
                            "compat=1.1");
    if (o->version == 2 && o->compression_type)
        return bh_error_set(errp, EINVAL, "qcow2: compression_type=zstd "
                            "needs compat=1.1 (the compression type is a "
                            "version 3 header field)");
#ifndef HAVE_ZSTD
    if (o->compression_type)
        return bh_error_set(errp, ENOTSUP, "qcow2: compression_type=zstd "
                            "needs libzstd, which this build lacks");
#endif
    if (o->backing_fmt && !o->backing)
        return bh_error_set(errp, EINVAL, "qcow2: backing_fmt '%s' without "
                            "a backing file", o->backing_fmt);
    if (o->backing && strlen(o->backing) > QCOW2_MAX_BACKING_NAME)
        return bh_error_set(errp, EINVAL, "qcow2: backing file name is longer"
                            " than %d bytes", QCOW2_MAX_BACKING_NAME);
    if (o->backing && o->prealloc != PREALLOC_OFF)
        return bh_error_set(errp, EINVAL, "qcow2: preallocation with a "
                            "backing file is not supported (qemu-img needs "
                            "extended_l2 for it)");

    if (o->backing && check_not_self(filename, o->backing, errp) < 0)
        return -EINVAL;
    if (o->backing && unsafe) {
        /* -u: nothing may be learnt from the backing file, so what it
         * would have told must be given. */
        if (!o->backing_fmt)
            return bh_error_set(errp, EINVAL, "qcow2: unsafe: the backing "
                                "file is not opened, so backing_fmt is "
                                "needed");
        if (!have_size)
            return bh_error_set(errp, EINVAL, "qcow2: unsafe: the backing "
                                "file is not opened, so the size is needed");
    } else if (o->backing) {
        int ret = check_backing(filename, o, have_size, errp);
        if (ret < 0)
            return ret;
    } else if (!have_size) {
        return bh_error_set(errp, EINVAL, "qcow2: the 'size' option is "
                            "needed (no backing file to take it from)");
    }
    if (!o->backing_fmt)
        o->backing_fmt = o->probed_fmt;
    if (o->size > INT64_MAX - 511)
        return bh_error_set(errp, EFBIG, "qcow2: size %" PRIu64 " is too "
                            "large (at most 8 EiB)", o->size);
    o->size = qcow2_align_up(o->size, 512);   /* as qemu-img rounds it */
    return 0;
}

/* Header, extensions and backing name must fit in cluster 0. */
static size_t header_bytes(const CreateOpts *o)
{
    size_t pos = o->version == 3 ? 112 : 72;
    if (o->backing_fmt)
        pos += 8 + qcow2_align_up(strlen(o->backing_fmt), 8);
    pos += 8;
    if (o->backing)
        pos += strlen(o->backing);
    return pos;
}

static int plan_layout(const CreateOpts *o, CreateLayout *l, BhError **errp)
{
    uint64_t cs = o->cluster_size, per_block;
    int refcount_bits = 1 << o->refcount_order;

    if (header_bytes(o) > cs)
        return bh_error_set(errp, EINVAL, "qcow2: the backing file name "
                            "does not fit in the first cluster");
    memset(l, 0, sizeof(*l));
    l->l1_size = (o->size + cs * (cs / 8) - 1) / (cs * (cs / 8));
    if (l->l1_size * 8 > QCOW2_MAX_L1_BYTES)
        return bh_error_set(errp, EFBIG, "qcow2: size %" PRIu64 " needs an L1"
                            " table over %u bytes; use a larger cluster_size",
                            o->size, QCOW2_MAX_L1_BYTES);
    l->l1c = MAX(1, qcow2_align_up(l->l1_size * 8, cs) / cs);
    if (o->prealloc != PREALLOC_OFF) {
        l->dc = (o->size + cs - 1) / cs;
        l->l2c = l->l1_size;
    }
    per_block = cs * 8 / refcount_bits;
    l->nb = l->nt = 1;
    for (;;) {
        uint64_t nb2, nt2;
        l->total = 1 + l->nt + l->nb + l->l1c + l->l2c + l->dc;
        nb2 = (l->total + per_block - 1) / per_block;
        nt2 = MAX(1, qcow2_align_up(nb2 * 8, cs) / cs);
        if (nb2 == l->nb && nt2 == l->nt)
            break;
        l->nb = nb2;
        l->nt = nt2;
    }
    if (l->nt * cs > QCOW2_MAX_REFTABLE_BYTES)
        return bh_error_set(errp, EFBIG, "qcow2: the image is too large for "
                            "refcount_bits=%d and cluster_size=%" PRIu64,
                            refcount_bits, cs);
    l->rt = cs;
    l->rb = l->rt + l->nt * cs;
    l->l1 = l->rb + l->nb * cs;
    l->l2 = l->l1 + l->l1c * cs;
    l->data = l->l2 + l->l2c * cs;
    return 0;
}

int qcow2_create_check(const char *filename, BhOpts *opts, BhError **errp)
{
    CreateOpts o = { 0 };
    CreateLayout l;
    int ret = parse_opts(filename, opts, &o, errp);
    if (ret == 0)
        ret = plan_layout(&o, &l, errp);
    create_opts_clear(&o);
    return ret;
}

/* The header cluster; plan_layout made sure that it fits. */
static void build_header(const CreateOpts *o, const CreateLayout *l,
                         uint8_t *h)
{
    size_t pos;
    int cluster_bits = __builtin_ctzll(o->cluster_size);

    qcow2_put_be32(h, QCOW2_MAGIC);
    qcow2_put_be32(h + QH_VERSION, o->version);
    qcow2_put_be32(h + QH_CLUSTER_BITS, cluster_bits);
    qcow2_put_be64(h + QH_SIZE, o->size);
    qcow2_put_be32(h + QH_L1_SIZE, l->l1_size);
    qcow2_put_be64(h + QH_L1_OFFSET, l->l1);
    qcow2_put_be64(h + QH_REFTABLE_OFFSET, l->rt);
    qcow2_put_be32(h + QH_REFTABLE_CLUSTERS, l->nt);
    pos = 72;
    if (o->version == 3) {
        /* A zstd image says so twice: the type byte, and an incompatible
         * bit so that readers that only know zlib refuse it. */
        qcow2_put_be64(h + QH_INCOMPAT, o->compression_type ?
                       QCOW2_INCOMPAT_COMPRESSION : 0);
        qcow2_put_be64(h + QH_COMPAT, o->lazy ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0);
        qcow2_put_be32(h + QH_REFCOUNT_ORDER, o->refcount_order);
        qcow2_put_be32(h + QH_HEADER_LENGTH, 112);
        h[QH_COMPRESSION_TYPE] = (uint8_t)o->compression_type;
        pos = 112;
    }
    if (o->backing_fmt) {
        size_t n = strlen(o->backing_fmt);
        qcow2_put_be32(h + pos, QCOW2_EXT_BACKING_FMT);
        qcow2_put_be32(h + pos + 4, n);
        memcpy(h + pos + 8, o->backing_fmt, n);
        pos += 8 + qcow2_align_up(n, 8);
    }
    pos += 8; /* end of extensions (zeros) */
    if (o->backing) {
        size_t n = strlen(o->backing);
        qcow2_put_be64(h + QH_BACKING_OFFSET, pos);
        qcow2_put_be32(h + QH_BACKING_SIZE, n);
        memcpy(h + pos, o->backing, n);
    }
}

/* The data clusters of preallocation=metadata|falloc|full, past the end of
 * the metadata: a sparse end of file, blocks reserved by write-zeroes
 * (fallocate on the file; zeros written where that is missing), or zeros
 * written, so that every mode allocates what qemu-img's does. */
static int preallocate_data(BhNode *file, int mode, uint64_t off,
                            uint64_t len, BhError **errp)
{
    const size_t chunk = 1 << 20;
    g_autofree uint8_t *zeros = NULL;

    if (mode == PREALLOC_FALLOC)
        return bh_node_write_zeroes(file, off, len, 0, errp);
    if (mode != PREALLOC_FULL)
        return bh_node_truncate(file, off + len, errp);
    zeros = g_malloc0(MIN(chunk, len));
    for (uint64_t done = 0; done < len; done += chunk) {
        int ret = bh_node_pwrite(file, zeros, off + done,
                                 MIN(chunk, len - done), 0, errp);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int write_image(const CreateOpts *o, const CreateLayout *l,
                       BhNode *file, BhError **errp)
{
    Qcow2State s = { 0 };
    uint64_t cs = o->cluster_size, per_block;
    g_autofree uint8_t *buf = NULL;
    g_autofree uint8_t *big = NULL;
    int ret;

    s.refcount_order = o->refcount_order;
    s.refcount_bits = 1 << o->refcount_order;
    per_block = cs * 8 / s.refcount_bits;
    buf = g_malloc0(cs);
    /* Refcount blocks: every cluster up to total is in use. */
    for (uint64_t b = 0; b < l->nb; b++) {
        memset(buf, 0, cs);
        for (uint64_t i = 0; i < per_block && b * per_block + i < l->total;
             i++)
            qcow2_rb_set(&s, buf, i, 1);
        ret = bh_node_pwrite(file, buf, l->rb + b * cs, cs, 0, errp);
        if (ret < 0)
            return ret;
    }
    /* Refcount table. */
    big = g_malloc0(l->nt * cs);
    for (uint64_t b = 0; b < l->nb; b++)
        qcow2_put_be64(big + b * 8, l->rb + b * cs);
    ret = bh_node_pwrite(file, big, l->rt, l->nt * cs, 0, errp);
    if (ret < 0)
        return ret;
    g_clear_pointer(&big, g_free);
    /* L1 (and L2 tables with preallocation). */
    big = g_malloc0(l->l1c * cs);
    for (uint64_t i = 0; i < l->l2c; i++)
        qcow2_put_be64(big + i * 8, (l->l2 + i * cs) | QCOW_OFLAG_COPIED);
    ret = bh_node_pwrite(file, big, l->l1, l->l1c * cs, 0, errp);
    if (ret < 0)
        return ret;
    for (uint64_t t = 0; t < l->l2c; t++) {
        memset(buf, 0, cs);
        for (uint64_t i = 0; i < cs / 8; i++) {
            uint64_t c = t * (cs / 8) + i;
            if (c < l->dc)
                qcow2_put_be64(buf + i * 8,
                               (l->data + c * cs) | QCOW_OFLAG_COPIED);
        }
        ret = bh_node_pwrite(file, buf, l->l2 + t * cs, cs, 0, errp);
        if (ret < 0)
            return ret;
    }
    if (l->dc) {
        ret = preallocate_data(file, o->prealloc, l->data, l->dc * cs, errp);
        if (ret < 0)
            return ret;
    }
    ret = bh_node_flush(file, errp);
    if (ret < 0)
        return ret;
    memset(buf, 0, cs);
    build_header(o, l, buf);
    ret = bh_node_pwrite(file, buf, 0, cs, 0, errp);
    if (ret == 0)
        ret = bh_node_flush(file, errp);
    return ret;
}

int qcow2_create(const char *filename, BhNode *file, BhOpts *opts,
                 BhError **errp)
{
    CreateOpts o = { 0 };
    CreateLayout l;
    int ret = parse_opts(filename, opts, &o, errp);
    if (ret == 0)
        ret = plan_layout(&o, &l, errp);
    if (ret == 0)
        ret = write_image(&o, &l, file, errp);
    create_opts_clear(&o);
    return ret;
}
