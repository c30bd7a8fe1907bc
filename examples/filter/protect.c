/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * protect: an example out-of-tree blkhost filter.
 *
 * Refuses (EPERM) every write, zero or trim that touches the bytes
 * [start, end) of the node under it (a boot sector, a partition table)
 * and passes everything else down unchanged.  A filter is a driver with
 * BH_DRIVER_FILTER: the core gives it its child as "file", and passes
 * the snapshot calls it does not implement down to that child, so it
 * stacks under snapshots with no code here.  Needs only libc and the
 * plugin headers; build it with the Makefile beside it, then in Lua:
 *
 *     bh.plugin.load("./protect.so")
 *     local d <close> = bh.open("disk.img", {filters = {
 *         {"protect", start = 0, ["end"] = 512}}})
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include <blkhost/blkhost-plugin.h>

typedef struct {
    uint64_t start, end;
} Protect;

static BhNode *child(BhNode *bs) { return bh_node_child(bs, "file"); }

static int protect_open(BhNode *bs, const char *filename, BhOpts *opts,
                        uint32_t flags, BhError **errp)
{
    Protect p;
    if (!bh_opts_get_size(opts, "start", 0, &p.start, errp) ||
        !bh_opts_get_size(opts, "end", 512, &p.end, errp))
        return -EINVAL;
    if (p.start >= p.end)
        return bh_error_set(errp, EINVAL, "protect: start=%" PRIu64 " must "
                            "be below end=%" PRIu64, p.start, p.end);
    Protect *s = malloc(sizeof(*s));
    if (!s)
        return bh_error_set(errp, ENOMEM, "protect: out of memory");
    *s = p;
    bh_node_set_opaque(bs, s);
    bh_node_inherit_from(bs, child(bs));  /* its FUA, zero, limits */
    return 0;
}

static void protect_close(BhNode *bs) { free(bh_node_get_opaque(bs)); }

static int64_t protect_get_length(BhNode *bs)
{
    return bh_node_size(child(bs));
}

/* 0, or -EPERM when [offset, offset+len) touches the protected bytes. */
static int protect_check(BhNode *bs, const char *what, uint64_t offset,
                         uint64_t len, BhError **errp)
{
    Protect *s = bh_node_get_opaque(bs);
    if (offset + len <= s->start || offset >= s->end)
        return 0;
    return bh_error_set(errp, EPERM, "protect: %s at %" PRIu64 " touches "
                        "the protected bytes %" PRIu64 "-%" PRIu64, what,
                        offset, s->start, s->end - 1);
}

static int protect_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                         uint32_t flags, BhError **errp)
{
    return bh_node_pread(child(bs), buf, offset, len, flags, errp);
}

static int protect_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                          size_t len, uint32_t flags, BhError **errp)
{
    int r = protect_check(bs, "write", offset, len, errp);
    return r < 0 ? r : bh_node_pwrite(child(bs), buf, offset, len, flags,
                                      errp);
}

static int protect_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                                uint32_t flags, BhError **errp)
{
    int r = protect_check(bs, "zero", offset, len, errp);
    return r < 0 ? r : bh_node_write_zeroes(child(bs), offset, len, flags,
                                            errp);
}

static int protect_discard(BhNode *bs, uint64_t offset, uint64_t len,
                           BhError **errp)
{
    int r = protect_check(bs, "trim", offset, len, errp);
    return r < 0 ? r : bh_node_discard(child(bs), offset, len, errp);
}

static int protect_flush(BhNode *bs, BhError **errp)
{
    return bh_node_flush(child(bs), errp);
}

static const BhDriver protect_driver = {
    .flags = BH_DRIVER_NO_PROBE | BH_DRIVER_FILTER,
    .open = protect_open,
    .close = protect_close,
    .get_length = protect_get_length,
    .pread = protect_pread,
    .pwrite = protect_pwrite,
    .flush = protect_flush,
    .discard = protect_discard,
    .write_zeroes = protect_write_zeroes,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "protect",
    .version = "1.0",
    .description = "example filter refusing writes to [start, end)",
    .driver = &protect_driver,
};

BH_PLUGIN_REGISTER(desc)
