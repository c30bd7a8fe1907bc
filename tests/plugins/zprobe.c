/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * zprobe: a test format whose signature holds a zero byte ("Z\0" at
 * offset 0), as real headers' version and size fields do.  Zeroing byte
 * 1 of a file starting "ZZ" makes it claim the file, which is what the
 * probe guard's write-zeroes and discard checks are for; the in-tree
 * formats' magics have no zero byte, so only this driver shows it.
 * Reads pass through to the file child; it never writes.
 */
#include <errno.h>

#include <blkhost/blkhost.h>

static int zprobe_probe(const uint8_t *buf, size_t len, const char *filename)
{
    return len >= 2 && buf[0] == 'Z' && buf[1] == 0 ? 50 : 0;
}

static int zprobe_open(BhNode *bs, const char *filename, BhOpts *opts,
                       uint32_t flags, BhError **errp)
{
    return bh_node_child(bs, "file") ? 0
        : bh_error_set(errp, EINVAL, "zprobe: no file child");
}

static int64_t zprobe_length(BhNode *bs)
{
    return bh_node_size(bh_node_child(bs, "file"));
}

static int zprobe_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                        uint32_t flags, BhError **errp)
{
    return bh_node_pread(bh_node_child(bs, "file"), buf, offset, len, flags,
                         errp);
}

static const BhDriver zprobe_driver = {
    .probe = zprobe_probe,
    .open = zprobe_open,
    .get_length = zprobe_length,
    .pread = zprobe_pread,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "zprobe",
    .version = "0",
    .description = "test format whose signature holds a zero byte",
    .driver = &zprobe_driver,
};

BH_PLUGIN_REGISTER(desc)
