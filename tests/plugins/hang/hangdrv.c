/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hangdrv: a RAM driver whose read of one chosen offset does not return
 * until a chosen file exists, the way a backend on a dead NFS server or a
 * stuck device behaves.  Used to test that a server's stop gives up on
 * such a request after its deadline.
 *
 *   bh.open(nil, {format="hangdrv", size= (default 1M), hang_offset=
 *   (default 0), hanging=FILE (created when a read starts to hang, so a
 *   test knows), release=FILE (whose creation lets the read return;
 *   without it the read hangs forever)}).
 * It lives in its own directory so that BLKHOST_PLUGIN_PATH can point at
 * it without the deliberately broken test plugins.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <blkhost/blkhost.h>

typedef struct {
    uint8_t *data;
    uint64_t size;
    uint64_t hang_offset;
    char *hanging;
    char *release;
} Hangdrv;

static int hangdrv_open(BhNode *bs, const char *filename, BhOpts *opts,
                        uint32_t flags, BhError **errp)
{
    uint64_t size, hang_offset;
    if (!bh_opts_get_size(opts, "size", 1024 * 1024, &size, errp) ||
        !bh_opts_get_size(opts, "hang-offset", 0, &hang_offset, errp))
        return -EINVAL;
    Hangdrv *h = g_new0(Hangdrv, 1);
    h->data = g_malloc0(size);
    h->size = size;
    h->hang_offset = hang_offset;
    h->hanging = g_strdup(bh_opts_get(opts, "hanging"));
    h->release = g_strdup(bh_opts_get(opts, "release"));
    bh_node_set_opaque(bs, h);
    return 0;
}

static void hangdrv_close(BhNode *bs)
{
    Hangdrv *h = bh_node_get_opaque(bs);
    g_free(h->data);
    g_free(h->hanging);
    g_free(h->release);
    g_free(h);
}

static int64_t hangdrv_length(BhNode *bs)
{
    return ((Hangdrv *)bh_node_get_opaque(bs))->size;
}

static int hangdrv_pread(BhNode *bs, void *buf, uint64_t off, size_t len,
                         uint32_t flags, BhError **errp)
{
    Hangdrv *h = bh_node_get_opaque(bs);
    if (off <= h->hang_offset && h->hang_offset < off + len) {
        if (h->hanging)
            g_file_set_contents(h->hanging, "", 0, NULL);
        while (!h->release || access(h->release, F_OK) != 0)
            g_usleep(50 * 1000);
    }
    memcpy(buf, h->data + off, len);
    return 0;
}

static int hangdrv_pwrite(BhNode *bs, const void *buf, uint64_t off,
                          size_t len, uint32_t flags, BhError **errp)
{
    Hangdrv *h = bh_node_get_opaque(bs);
    memcpy(h->data + off, buf, len);
    return 0;
}

static int hangdrv_flush(BhNode *bs, BhError **errp)
{
    return 0;
}

static const BhDriver hangdrv_driver = {
    .flags = BH_DRIVER_PROTOCOL | BH_DRIVER_NO_PROBE,
    .open = hangdrv_open,
    .close = hangdrv_close,
    .get_length = hangdrv_length,
    .pread = hangdrv_pread,
    .pwrite = hangdrv_pwrite,
    .flush = hangdrv_flush,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "hangdrv",
    .version = "1.0",
    .description = "RAM driver whose read of one offset hangs (tests)",
    .driver = &hangdrv_driver,
};

BH_PLUGIN_REGISTER(desc)
