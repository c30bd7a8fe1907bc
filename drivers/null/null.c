/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "null" protocol driver: a device of size=N that reads as zeros and
 * forgets what is written, like /dev/null with a size.  It has no storage
 * and no locks, which makes it the baseline for benchmarks (what the
 * frontends and the core cost on their own) and a cheap target for tests.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include <blkhost/driver.h>
#include <blkhost/glib.h>

typedef struct NullState {
    _Atomic int64_t size;
} NullState;

static int null_open(BhNode *bs, const char *filename, BhOpts *opts,
                     uint32_t open_flags, BhError **errp)
{
    uint64_t size;
    if (!bh_opts_get(opts, "size") && !(open_flags & BH_OPEN_GROWABLE))
        return bh_error_set(errp, EINVAL, "null: option 'size' is required "
                            "(for example size=1G)");
    if (!bh_opts_get_size(opts, "size", 0, &size, errp))
        return -EINVAL;
    if (size > INT64_MAX)
        return bh_error_set(errp, EFBIG, "null: size %" G_GUINT64_FORMAT
                            " is too large (at most %" G_GINT64_FORMAT ")",
                            size, (gint64)INT64_MAX);
    NullState *s = g_new0(NullState, 1);
    atomic_store(&s->size, (int64_t)size);
    bh_node_set_opaque(bs, s);
    bh_node_set_caps(bs, BH_CAP_FUA | BH_CAP_DISCARD | BH_CAP_ZERO);
    return 0;
}

static void null_close(BhNode *bs)
{
    g_free(bh_node_get_opaque(bs));
    bh_node_set_opaque(bs, NULL);
}

static int64_t null_get_length(BhNode *bs)
{
    NullState *s = bh_node_get_opaque(bs);
    return atomic_load(&s->size);
}

/* A growable null node (under a format) grows when written past its end,
 * so the format sees the size it expects. */
static void null_grow(NullState *s, uint64_t end)
{
    int64_t cur = atomic_load(&s->size);
    while ((int64_t)end > cur &&
           !atomic_compare_exchange_weak(&s->size, &cur, (int64_t)end))
        ;
}

static int null_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                      uint32_t flags, BhError **errp)
{
    memset(buf, 0, len);
    return 0;
}

static int null_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                       size_t len, uint32_t flags, BhError **errp)
{
    null_grow(bh_node_get_opaque(bs), offset + len);
    return 0;
}

static int null_discard(BhNode *bs, uint64_t offset, uint64_t len,
                        BhError **errp)
{
    return 0;
}

static int null_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                             uint32_t flags, BhError **errp)
{
    null_grow(bh_node_get_opaque(bs), offset + len);
    return 0;
}

static int null_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                             uint64_t *pnum, uint32_t *status, BhError **errp)
{
    *pnum = len;
    *status = BH_BLOCK_HOLE | BH_BLOCK_ZERO;
    return 0;
}

static int null_truncate(BhNode *bs, uint64_t size, BhError **errp)
{
    NullState *s = bh_node_get_opaque(bs);
    if (size > INT64_MAX)
        return bh_error_set(errp, EFBIG, "null: size %" G_GUINT64_FORMAT
                            " is too large", size);
    atomic_store(&s->size, (int64_t)size);
    return 0;
}

static int64_t null_get_allocated_size(BhNode *bs)
{
    return 0;
}

static const BhDriver null_driver = {
    .flags = BH_DRIVER_PROTOCOL | BH_DRIVER_NO_PROBE,
    .open = null_open,
    .close = null_close,
    .get_length = null_get_length,
    .pread = null_pread,
    .pwrite = null_pwrite,
    .discard = null_discard,
    .write_zeroes = null_write_zeroes,
    .block_status = null_block_status,
    .truncate = null_truncate,
    .get_allocated_size = null_get_allocated_size,
    .request_flags = BH_IO_FUA | BH_IO_MAY_UNMAP | BH_IO_FAST_ZERO,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "null",
    .version = "1.0",
    .description = "reads zeros, drops writes (size=N); for tests and "
                   "benchmarks",
    .driver = &null_driver,
};

BH_PLUGIN_REGISTER(desc)
