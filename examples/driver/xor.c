/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * xor: an example out-of-tree blkhost driver.
 *
 * A format driver that stores every byte XORed with a key, over any file
 * child.  It shows the whole driver contract in one page: parse options,
 * keep state in the node's opaque pointer, do I/O on the "file" child, and
 * leave range checks, read-only checks, FUA emulation and zeroing to the
 * core.  It needs only libc and the plugin headers; the version fields
 * are filled by BH_PLUGIN_REGISTER.  Build it with the Makefile beside
 * it, then in Lua:
 *
 *     bh.plugin.load("./xor.so")
 *     local disk <close> = bh.open("disk.img", {format = "xor", key = 90})
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <blkhost/blkhost-plugin.h>

typedef struct {
    uint8_t key;
} Xor;

static int xor_open(BhNode *bs, const char *filename, BhOpts *opts,
                    uint32_t flags, BhError **errp)
{
    uint64_t key;
    if (!bh_opts_get_uint(opts, "key", 0x5a, 255, &key, errp))
        return -EINVAL;
    Xor *x = calloc(1, sizeof(*x));
    if (!x)
        return bh_error_set(errp, ENOMEM, "out of memory");
    x->key = (uint8_t)key;
    bh_node_set_opaque(bs, x);
    /* FUA is passed down to the file, which honours it. */
    bh_node_set_caps(bs, BH_CAP_FUA);
    return 0;
}

static void xor_close(BhNode *bs)
{
    free(bh_node_get_opaque(bs));
}

static int64_t xor_length(BhNode *bs)
{
    return bh_node_size(bh_node_child(bs, "file"));
}

static void xor_apply(uint8_t *p, size_t len, uint8_t key)
{
    for (size_t i = 0; i < len; i++)
        p[i] ^= key;
}

static int xor_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                     uint32_t flags, BhError **errp)
{
    Xor *x = bh_node_get_opaque(bs);
    int r = bh_node_pread(bh_node_child(bs, "file"), buf, offset, len, 0,
                          errp);
    if (r == 0)
        xor_apply(buf, len, x->key);
    return r;
}

static int xor_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                      size_t len, uint32_t flags, BhError **errp)
{
    Xor *x = bh_node_get_opaque(bs);
    uint8_t *tmp = malloc(len);
    if (!tmp)
        return bh_error_set(errp, ENOMEM, "out of memory");
    memcpy(tmp, buf, len);
    xor_apply(tmp, len, x->key);
    int r = bh_node_pwrite(bh_node_child(bs, "file"), tmp, offset, len,
                           flags & BH_IO_FUA, errp);
    free(tmp);
    return r;
}

static void xor_info(BhNode *bs, BhInfo *info)
{
    bh_info_add_int(info, "xor-key", ((Xor *)bh_node_get_opaque(bs))->key);
}

static const BhDriver xor_driver = {
    .flags = BH_DRIVER_NO_PROBE,   /* only used when asked for by name */
    .open = xor_open,
    .close = xor_close,
    .get_length = xor_length,
    .pread = xor_pread,
    .pwrite = xor_pwrite,
    .info = xor_info,
    .request_flags = BH_IO_FUA,    /* passed down to the file */
    /* no flush: the core flushes the file child; no write_zeroes: the
     * core writes zeros through xor_pwrite. */
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "xor",
    .version = "1.0",
    .description = "example: every byte XORed with key=N (0-255)",
    .driver = &xor_driver,
};

BH_PLUGIN_REGISTER(desc)
