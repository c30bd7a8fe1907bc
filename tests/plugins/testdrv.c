/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * testdrv: a RAM driver with deliberately few callbacks (no write_zeroes
 * unless zeroes=on, no native FUA, serialized, no request flags declared)
 * and call counters, so the core's checks and emulation can be observed.
 * Counters are read by the test through dlsym("testdrv_stats").
 */
#include <errno.h>
#include <string.h>

#include <blkhost/blkhost.h>

typedef struct {
    int preads, pwrites, flushes, discards, zeroes, fua_writes;
    uint32_t seen_flags;  /* every request flag it was given, ORed */
} TestdrvStats;

BH_PLUGIN_EXPORT TestdrvStats testdrv_stats;

typedef struct {
    uint8_t *data;
    uint64_t size;
    bool zeroes;
} Testdrv;

static int testdrv_open(BhNode *bs, const char *filename, BhOpts *opts,
                        uint32_t flags, BhError **errp)
{
    uint64_t size;
    bool zeroes;
    if (!bh_opts_get_size(opts, "size", 1024 * 1024, &size, errp) ||
        !bh_opts_get_bool(opts, "zeroes", false, &zeroes, errp))
        return -EINVAL;
    Testdrv *t = g_new0(Testdrv, 1);
    t->data = g_malloc0(size);
    t->size = size;
    t->zeroes = zeroes;
    bh_node_set_opaque(bs, t);
    return 0;
}

static void testdrv_close(BhNode *bs)
{
    Testdrv *t = bh_node_get_opaque(bs);
    g_free(t->data);
    g_free(t);
}

static int64_t testdrv_length(BhNode *bs)
{
    return ((Testdrv *)bh_node_get_opaque(bs))->size;
}

static int testdrv_pread(BhNode *bs, void *buf, uint64_t off, size_t len,
                         uint32_t flags, BhError **errp)
{
    Testdrv *t = bh_node_get_opaque(bs);
    testdrv_stats.preads++;
    testdrv_stats.seen_flags |= flags;
    memcpy(buf, t->data + off, len);
    return 0;
}

static int testdrv_pwrite(BhNode *bs, const void *buf, uint64_t off,
                          size_t len, uint32_t flags, BhError **errp)
{
    Testdrv *t = bh_node_get_opaque(bs);
    testdrv_stats.pwrites++;
    testdrv_stats.seen_flags |= flags;
    if (flags & BH_IO_FUA)
        testdrv_stats.fua_writes++;
    memcpy(t->data + off, buf, len);
    return 0;
}

static int testdrv_flush(BhNode *bs, BhError **errp)
{
    testdrv_stats.flushes++;
    return 0;
}

static int testdrv_discard(BhNode *bs, uint64_t off, uint64_t len,
                           BhError **errp)
{
    testdrv_stats.discards++;
    return 0;
}

static int testdrv_zero(BhNode *bs, uint64_t off, uint64_t len,
                        uint32_t flags, BhError **errp)
{
    Testdrv *t = bh_node_get_opaque(bs);
    testdrv_stats.seen_flags |= flags;
    if (!t->zeroes)
        return -ENOTSUP;
    testdrv_stats.zeroes++;
    memset(t->data + off, 0, len);
    return 0;
}

static const BhDriver testdrv_driver = {
    .flags = BH_DRIVER_PROTOCOL | BH_DRIVER_NO_PROBE,
    .open = testdrv_open,
    .close = testdrv_close,
    .get_length = testdrv_length,
    .pread = testdrv_pread,
    .pwrite = testdrv_pwrite,
    .flush = testdrv_flush,
    .discard = testdrv_discard,
    .write_zeroes = testdrv_zero,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_SERIALIZE,
    .name = TESTDRV_NAME,
    .version = "1.0",
    .description = "RAM driver for core tests",
    .driver = &testdrv_driver,
};

BH_PLUGIN_REGISTER(desc)
