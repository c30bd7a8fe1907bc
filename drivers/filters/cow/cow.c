/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "cow" filter: writes go to a temporary overlay, never to the child,
 * as nbdkit's cow filter; reads see them.  The overlay lasts as long as
 * the node and is thrown away with it.  Options:
 *   overlay=ram   (default) in memory (a memfd, so its pages can swap);
 *   overlay=file  a deleted file in dir= (default $TMPDIR or /tmp).
 * The overlay is a sparse file as large as the disk, written at the
 * disk's offsets, and a bitmap says which blocks (block=, default 4K) it
 * holds.  A partial write of a block not yet in it first copies the
 * block from the child.  Zeroes are written as zeros; trims, which are
 * advisory, do nothing; flush has nothing to make durable.
 *
 * The child may be (and, to be sure it is never written, should be)
 * read-only: bh.open(path, {readonly=true, filters={{"cow",
 * readonly=false}}}).  Snapshot calls pass to the child, so a read-only
 * child refuses them.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <blkhost/glib.h>

#include "../filter.h"

typedef struct CowState {
    int fd;
    uint64_t block, size;
    uint8_t *map;          /* one bit per block: in the overlay */
    GMutex lock;           /* map and partial-block copies */
} CowState;

static bool cow_has(const CowState *s, uint64_t b)
{
    return s->map[b / 8] & (1u << (b % 8));
}

static int cow_overlay_fd(const char *kind, const char *dir, BhError **errp)
{
    if (!strcmp(kind, "ram")) {
        int fd = memfd_create("blkhost-cow", MFD_CLOEXEC);
        if (fd < 0)
            bh_error_set(errp, errno, "cow: cannot make a memory overlay: %s",
                         g_strerror(errno));
        return fd;
    }
    if (strcmp(kind, "file")) {
        bh_error_set(errp, EINVAL, "cow: overlay=%s: expected ram or file",
                     kind);
        return -1;
    }
    g_autofree char *tmpl = g_build_filename(dir ? dir : g_get_tmp_dir(),
                                             "blkhost-cow-XXXXXX", NULL);
    int fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        bh_error_set(errp, errno, "cow: cannot make an overlay file in "
                     "'%s': %s", dir ? dir : g_get_tmp_dir(),
                     g_strerror(errno));
        return -1;
    }
    unlink(tmpl);  /* gone with the last descriptor, even after a crash */
    return fd;
}

static int cow_open(BhNode *bs, const char *filename, BhOpts *opts,
                    uint32_t open_flags, BhError **errp)
{
    BhNode *child = filter_open_child(bs, "cow", errp);
    if (!child)
        return -EINVAL;
    const char *kind = bh_opts_get(opts, "overlay");
    const char *dir = bh_opts_get(opts, "dir");
    uint64_t block;
    if (!bh_opts_get_size(opts, "block", 4096, &block, errp))
        return -EINVAL;
    if (block < 512 || block > (1 << 20) || (block & (block - 1)))
        return bh_error_set(errp, EINVAL, "cow: block=%" PRIu64 " must be a "
                            "power of two from 512 to 1M", block);
    int64_t size = bh_node_size(child);
    if (size < 0)
        return bh_error_set(errp, (int)-size, "cow: cannot get the size of "
                            "'%s'", filename);
    int fd = cow_overlay_fd(kind ? kind : "ram", dir, errp);
    if (fd < 0)
        return -EIO;
    if (ftruncate(fd, size) < 0) {
        int e = errno;
        close(fd);
        return bh_error_set(errp, e, "cow: cannot size the overlay: %s",
                            g_strerror(e));
    }
    CowState *s = g_new0(CowState, 1);
    s->fd = fd;
    s->block = block;
    s->size = (uint64_t)size;
    s->map = g_malloc0((s->size / block + 8) / 8 + 1);
    g_mutex_init(&s->lock);
    bh_node_set_opaque(bs, s);
    /* Zeroes are the overlay's own writes of zeros; no discard. */
    bh_node_set_caps(bs, BH_CAP_FUA);
    return 0;
}

static void cow_close(BhNode *bs)
{
    CowState *s = bh_node_get_opaque(bs);
    close(s->fd);
    g_mutex_clear(&s->lock);
    g_free(s->map);
    g_free(s);
}

static int cow_io(CowState *s, bool write, void *buf, uint64_t off,
                  size_t len, BhError **errp)
{
    ssize_t n = write ? pwrite(s->fd, buf, len, (off_t)off)
                      : pread(s->fd, buf, len, (off_t)off);
    if (n == (ssize_t)len)
        return 0;
    return bh_error_set(errp, n < 0 ? errno : EIO, "cow: overlay %s at %"
                        PRIu64 " failed: %s", write ? "write" : "read", off,
                        n < 0 ? g_strerror(errno) : "short");
}

static int cow_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                     uint32_t flags, BhError **errp)
{
    CowState *s = bh_node_get_opaque(bs);
    uint8_t *p = buf;
    g_mutex_lock(&s->lock);
    int r = 0;
    while (len && r >= 0) {
        /* A run of blocks all in the overlay, or all in the child. */
        uint64_t b = offset / s->block;
        bool in = cow_has(s, b);
        uint64_t end = (b + 1) * s->block;
        while (end < offset + len && cow_has(s, end / s->block) == in)
            end += s->block;
        size_t n = (size_t)(MIN(end, offset + len) - offset);
        r = in ? cow_io(s, false, p, offset, n, errp)
               : filter_pread(bs, p, offset, n, flags, errp);
        p += n;
        offset += n;
        len -= n;
    }
    g_mutex_unlock(&s->lock);
    return r;
}

/* Write data (NULL: zeros) into the overlay, block by block. */
static int cow_write(BhNode *bs, const void *data, uint64_t offset,
                     uint64_t len, BhError **errp)
{
    CowState *s = bh_node_get_opaque(bs);
    /* Under a format (file.driver=cow) the core lets writes grow the
     * node; the overlay has the size the child had. */
    if (offset > s->size || len > s->size - offset)
        return bh_error_set(errp, ENOSPC, "cow: a write at %" PRIu64 " of %"
                            PRIu64 " bytes is past the overlay's %" PRIu64
                            " bytes (cow cannot grow)", offset, len, s->size);
    g_autofree uint8_t *blk = g_malloc(s->block);
    const uint8_t *p = data;
    int r = 0;
    g_mutex_lock(&s->lock);
    while (len && r >= 0) {
        uint64_t b = offset / s->block, start = b * s->block;
        uint64_t blen = MIN(s->block, s->size - start);
        uint64_t n = MIN(len, start + blen - offset);
        if (n < blen && !cow_has(s, b))
            r = filter_pread(bs, blk, start, blen, 0, errp);
        else if (n < blen)
            r = cow_io(s, false, blk, start, blen, errp);
        if (r >= 0) {
            if (p)
                memcpy(blk + (offset - start), p, n);
            else
                memset(blk + (offset - start), 0, n);
            r = cow_io(s, true, blk, start, blen, errp);
        }
        if (r >= 0)
            s->map[b / 8] |= 1u << (b % 8);
        if (p)
            p += n;
        offset += n;
        len -= n;
    }
    g_mutex_unlock(&s->lock);
    return r;
}

static int cow_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                      size_t len, uint32_t flags, BhError **errp)
{
    return cow_write(bs, buf, offset, len, errp);
}

static int cow_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                            uint32_t flags, BhError **errp)
{
    return cow_write(bs, NULL, offset, len, errp);
}

static int cow_flush(BhNode *bs, BhError **errp)
{
    return 0;  /* the overlay is thrown away: nothing to make durable */
}

static void cow_info(BhNode *bs, BhInfo *info)
{
    CowState *s = bh_node_get_opaque(bs);
    uint64_t n = 0;
    for (uint64_t i = 0; i < (s->size / s->block + 8) / 8 + 1; i++)
        n += (uint64_t)__builtin_popcount(s->map[i]);
    bh_info_add_int(info, "cow-bytes", (int64_t)(n * s->block));
}

static const BhDriver cow_driver = {
    .flags = FILTER_FLAGS,
    .request_flags = FILTER_REQUEST_FLAGS,
    .probe = filter_probe,
    .open = cow_open,
    .close = cow_close,
    .get_length = filter_get_length,
    .pread = cow_pread,
    .pwrite = cow_pwrite,
    .flush = cow_flush,
    .write_zeroes = cow_write_zeroes,
    .info = cow_info,
    .get_allocated_size = filter_get_allocated_size,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "cow",
    .version = "1.0",
    .description = "filter sending writes to a temporary overlay (overlay="
                   "ram|file, dir=, block=); the child is never written",
    .driver = &cow_driver,
};

BH_PLUGIN_REGISTER(desc)
