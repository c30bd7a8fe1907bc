/*
 * qcow2 image creation: lay out a new image on an empty file node.
 *
 * Layout: the header (with the backing format extension and the backing
 * file name) in cluster 0, then the refcount table, the refcount blocks
 * covering every cluster written here, the L1 table, and with
 * preallocation=metadata the L2 tables and data clusters too.  The header
 * is written last, after a flush, so a crash leaves no valid-looking image.
 *
 * Options (qemu-img's names, with blkhost's aliases):
 *   size, cluster_size, backing_file|backing, backing_fmt|backing_format,
 *   compat=1.1|0.10|v3|v2, lazy_refcounts, refcount_bits,
 *   preallocation=off|metadata
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>

typedef struct {
    uint64_t size, cluster_size;
    const char *backing, *backing_fmt;
    int version;
    bool lazy;
    int refcount_order;
    bool prealloc;
} CreateOpts;

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

static int parse_opts(const char *filename, BhOpts *opts, CreateOpts *o,
                      GError **errp)
{
    static const char *const compat_names[] = { "1.1", "0.10", "v3", "v2",
                                                NULL };
    static const char *const prealloc_names[] = { "off", "metadata", NULL };
    uint64_t rbits;
    int compat, prealloc;
    bool have_size = bh_opts_has(opts, "size");

    if (!bh_opts_get_size(opts, "size", 0, &o->size, errp) ||
        !bh_opts_get_size(opts, "cluster_size", 65536, &o->cluster_size,
                          errp) ||
        !bh_opts_get_enum(opts, "compat", compat_names, 0, &compat, errp) ||
        !bh_opts_get_bool(opts, "lazy_refcounts", false, &o->lazy, errp) ||
        !bh_opts_get_uint(opts, "refcount_bits", 16, 64, &rbits, errp) ||
        !bh_opts_get_enum(opts, "preallocation", prealloc_names, 0,
                          &prealloc, errp))
        return -EINVAL;
    o->version = (compat == 0 || compat == 2) ? 3 : 2;
    o->prealloc = prealloc == 1;
    o->backing = opt_either(opts, "backing_file", "backing");
    o->backing_fmt = opt_either(opts, "backing_fmt", "backing_format");
    if (o->backing && !*o->backing)
        o->backing = NULL;

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
    if (o->backing && strlen(o->backing) > QCOW2_MAX_BACKING_NAME)
        return bh_error_set(errp, EINVAL, "qcow2: backing file name is longer"
                            " than %d bytes", QCOW2_MAX_BACKING_NAME);
    if (o->backing && o->prealloc)
        return bh_error_set(errp, EINVAL, "qcow2: preallocation with a "
                            "backing file is not supported");

    if (o->backing) {
        g_autofree char *path = resolve_backing(filename, o->backing);
        g_autoptr(BhOpts) bo = bh_opts_new();
        BhNode *b;
        bh_opts_set(bo, "readonly", "on");
        bh_opts_set(bo, "locking", "off");
        if (o->backing_fmt)
            bh_opts_set(bo, "format", o->backing_fmt);
        b = bh_node_open(path, bo, errp);
        if (!b) {
            g_prefix_error(errp, "qcow2: cannot open the backing file '%s': ",
                           path);
            return -ENOENT;
        }
        if (!have_size)
            o->size = (uint64_t)bh_node_size(b);
        bh_node_unref(b);
    } else if (!have_size) {
        return bh_error_set(errp, EINVAL, "qcow2: the 'size' option is "
                            "needed (no backing file to take it from)");
    }
    if (o->size % 512)
        return bh_error_set(errp, EINVAL, "qcow2: size %" PRIu64 " is not a "
                            "multiple of 512", o->size);
    return 0;
}

static size_t build_header(const CreateOpts *o, uint8_t *h, uint64_t l1_size,
                           uint64_t l1_off, uint64_t rt_off, uint64_t rt_clusters,
                           GError **errp)
{
    size_t pos;
    int cluster_bits = __builtin_ctzll(o->cluster_size);

    qcow2_put_be32(h, QCOW2_MAGIC);
    qcow2_put_be32(h + QH_VERSION, o->version);
    qcow2_put_be32(h + QH_CLUSTER_BITS, cluster_bits);
    qcow2_put_be64(h + QH_SIZE, o->size);
    qcow2_put_be32(h + QH_L1_SIZE, l1_size);
    qcow2_put_be64(h + QH_L1_OFFSET, l1_off);
    qcow2_put_be64(h + QH_REFTABLE_OFFSET, rt_off);
    qcow2_put_be32(h + QH_REFTABLE_CLUSTERS, rt_clusters);
    pos = 72;
    if (o->version == 3) {
        qcow2_put_be64(h + QH_COMPAT, o->lazy ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0);
        qcow2_put_be32(h + QH_REFCOUNT_ORDER, o->refcount_order);
        qcow2_put_be32(h + QH_HEADER_LENGTH, 112);
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
        if (pos + n > o->cluster_size)
            return bh_error_set(errp, EINVAL, "qcow2: the backing file name "
                                "does not fit in the first cluster"), 0;
        qcow2_put_be64(h + QH_BACKING_OFFSET, pos);
        qcow2_put_be32(h + QH_BACKING_SIZE, n);
        memcpy(h + pos, o->backing, n);
        pos += n;
    }
    return pos;
}

int qcow2_create(const char *filename, BhNode *file, BhOpts *opts,
                 GError **errp)
{
    CreateOpts o = { 0 };
    Qcow2State s = { 0 };
    uint64_t cs, l1_size, l1c, l2c = 0, dc = 0, per_block, nb = 1, nt = 1;
    uint64_t total, rt, rb, l1, l2, data;
    g_autofree uint8_t *buf = NULL;
    g_autofree uint8_t *big = NULL;
    int ret;

    ret = parse_opts(filename, opts, &o, errp);
    if (ret < 0)
        return ret;
    cs = o.cluster_size;
    l1_size = (o.size + cs * (cs / 8) - 1) / (cs * (cs / 8));
    if (l1_size * 8 > QCOW2_MAX_L1_BYTES)
        return bh_error_set(errp, EFBIG, "qcow2: size %" PRIu64 " needs an L1"
                            " table over %u bytes; use a larger cluster_size",
                            o.size, QCOW2_MAX_L1_BYTES);
    l1c = MAX(1, qcow2_align_up(l1_size * 8, cs) / cs);
    if (o.prealloc) {
        dc = (o.size + cs - 1) / cs;
        l2c = l1_size;
    }
    s.refcount_order = o.refcount_order;
    s.refcount_bits = 1 << o.refcount_order;
    per_block = cs * 8 / s.refcount_bits;
    for (;;) {
        uint64_t nb2, nt2;
        total = 1 + nt + nb + l1c + l2c + dc;
        nb2 = (total + per_block - 1) / per_block;
        nt2 = MAX(1, qcow2_align_up(nb2 * 8, cs) / cs);
        if (nb2 == nb && nt2 == nt)
            break;
        nb = nb2;
        nt = nt2;
    }
    if (nt * cs > QCOW2_MAX_REFTABLE_BYTES)
        return bh_error_set(errp, EFBIG, "qcow2: the image is too large for "
                            "refcount_bits=%d and cluster_size=%" PRIu64,
                            s.refcount_bits, cs);
    rt = cs;
    rb = rt + nt * cs;
    l1 = rb + nb * cs;
    l2 = l1 + l1c * cs;
    data = l2 + l2c * cs;

    buf = g_malloc0(cs);
    /* Refcount blocks: every cluster up to total is in use. */
    for (uint64_t b = 0; b < nb; b++) {
        memset(buf, 0, cs);
        for (uint64_t i = 0; i < per_block && b * per_block + i < total; i++)
            qcow2_rb_set(&s, buf, i, 1);
        ret = bh_node_pwrite(file, buf, rb + b * cs, cs, 0, errp);
        if (ret < 0)
            return ret;
    }
    /* Refcount table. */
    big = g_malloc0(nt * cs);
    for (uint64_t b = 0; b < nb; b++)
        qcow2_put_be64(big + b * 8, rb + b * cs);
    ret = bh_node_pwrite(file, big, rt, nt * cs, 0, errp);
    if (ret < 0)
        return ret;
    g_clear_pointer(&big, g_free);
    /* L1 (and L2 tables with preallocation). */
    big = g_malloc0(l1c * cs);
    for (uint64_t i = 0; i < l2c; i++)
        qcow2_put_be64(big + i * 8, (l2 + i * cs) | QCOW_OFLAG_COPIED);
    ret = bh_node_pwrite(file, big, l1, l1c * cs, 0, errp);
    if (ret < 0)
        return ret;
    for (uint64_t t = 0; t < l2c; t++) {
        memset(buf, 0, cs);
        for (uint64_t i = 0; i < cs / 8; i++) {
            uint64_t c = t * (cs / 8) + i;
            if (c < dc)
                qcow2_put_be64(buf + i * 8, (data + c * cs) | QCOW_OFLAG_COPIED);
        }
        ret = bh_node_pwrite(file, buf, l2 + t * cs, cs, 0, errp);
        if (ret < 0)
            return ret;
    }
    if (dc) {
        ret = bh_node_truncate(file, data + dc * cs, errp);
        if (ret < 0)
            return ret;
    }
    ret = bh_node_flush(file, errp);
    if (ret < 0)
        return ret;
    memset(buf, 0, cs);
    if (!build_header(&o, buf, l1_size, l1, rt, nt, errp))
        return -EINVAL;
    ret = bh_node_pwrite(file, buf, 0, cs, 0, errp);
    if (ret == 0)
        ret = bh_node_flush(file, errp);
    return ret;
}
