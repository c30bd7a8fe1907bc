/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "blocksize" filter: the child only ever sees requests it can take,
 * as nbdkit's blocksize filter does:
 *   minblock=  every read and write is whole blocks of this size (a power
 *              of two, default 1); unaligned parts are read whole, and
 *              written by read-modify-write;
 *   maxdata=   the largest read or write (default 64M), split below it;
 *   maxlen=    the largest zero or trim (default 4G), split below it.
 * The size shown is the child's rounded down to minblock, so that no
 * request has to touch a short last block.  A read-modify-write holds a
 * lock that aligned writes share, so a write never overtakes one under
 * way over the same block and loses its bytes.  Trims drop unaligned
 * edges (a trim is advisory); a fast zero with unaligned edges fails
 * with ENOTSUP, since they cost a read and a write.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <blkhost/glib.h>

#include "../filter.h"

typedef struct BlocksizeState {
    uint64_t minblock, maxdata, maxlen;
    GRWLock rmw;          /* writer: a read-modify-write; reader: a write */
} BlocksizeState;

static int blocksize_open(BhNode *bs, const char *filename, BhOpts *opts,
                          uint32_t open_flags, BhError **errp)
{
    BhNode *child = filter_open_child(bs, "blocksize", errp);
    if (!child)
        return -EINVAL;
    uint64_t minb, maxd, maxl;
    if (!bh_opts_get_size(opts, "minblock", 1, &minb, errp) ||
        !bh_opts_get_size(opts, "maxdata", 64 << 20, &maxd, errp) ||
        !bh_opts_get_size(opts, "maxlen", UINT64_C(4) << 30, &maxl, errp))
        return -EINVAL;
    if (!minb || (minb & (minb - 1)) || minb > (64 << 20))
        return bh_error_set(errp, EINVAL, "blocksize: minblock=%" PRIu64
                            " must be a power of two, at most 64M", minb);
    if (maxd < minb || maxd > (1u << 30) || maxl < minb)
        return bh_error_set(errp, EINVAL, "blocksize: maxdata=%" PRIu64
                            " and maxlen=%" PRIu64 " must be at least "
                            "minblock=%" PRIu64 " (maxdata at most 1G)",
                            maxd, maxl, minb);
    BlocksizeState *s = g_new0(BlocksizeState, 1);
    s->minblock = minb;
    s->maxdata = maxd - maxd % minb;
    s->maxlen = maxl - maxl % minb;
    g_rw_lock_init(&s->rmw);
    bh_node_set_opaque(bs, s);
    uint32_t pref;
    bh_node_block_limits(child, NULL, &pref, NULL);
    bh_node_set_block_limits(bs, (uint32_t)minb, MAX(pref, (uint32_t)minb),
                             (uint32_t)s->maxdata);
    return 0;
}

static void blocksize_close(BhNode *bs)
{
    BlocksizeState *s = bh_node_get_opaque(bs);
    g_rw_lock_clear(&s->rmw);
    g_free(s);
}

static int64_t blocksize_get_length(BhNode *bs)
{
    BlocksizeState *s = bh_node_get_opaque(bs);
    int64_t len = filter_get_length(bs);
    return len < 0 ? len : len - (int64_t)((uint64_t)len % s->minblock);
}

/* The next piece of [off, off+len): a part of one block (true; *n bytes
 * at off) or whole blocks, at most max bytes (false). */
static bool blocksize_piece(const BlocksizeState *s, uint64_t off,
                            uint64_t len, uint64_t max, uint64_t *n)
{
    uint64_t head = off % s->minblock;
    if (head || len < s->minblock) {
        *n = MIN(len, s->minblock - head);
        return true;
    }
    *n = MIN(len - len % s->minblock, max);
    return false;
}

/* Write n bytes of data (NULL: zeros) at off within one block, by reading
 * the block, patching it and writing it back. */
static int blocksize_rmw(BhNode *bs, const void *data, uint64_t off,
                         uint64_t n, uint32_t flags, BhError **errp)
{
    BlocksizeState *s = bh_node_get_opaque(bs);
    uint64_t start = off - off % s->minblock;
    g_autofree uint8_t *blk = g_malloc(s->minblock);
    g_rw_lock_writer_lock(&s->rmw);
    int r = filter_pread(bs, blk, start, s->minblock, 0, errp);
    if (r >= 0) {
        if (data)
            memcpy(blk + (off - start), data, n);
        else
            memset(blk + (off - start), 0, n);
        r = filter_pwrite(bs, blk, start, s->minblock, flags, errp);
    }
    g_rw_lock_writer_unlock(&s->rmw);
    return r;
}

static int blocksize_pread(BhNode *bs, void *buf, uint64_t offset,
                           size_t len, uint32_t flags, BhError **errp)
{
    BlocksizeState *s = bh_node_get_opaque(bs);
    uint8_t *p = buf;
    g_autofree uint8_t *blk = NULL;
    while (len) {
        uint64_t n;
        int r;
        if (blocksize_piece(s, offset, len, s->maxdata, &n)) {
            uint64_t start = offset - offset % s->minblock;
            if (!blk)
                blk = g_malloc(s->minblock);
            r = filter_pread(bs, blk, start, s->minblock, flags, errp);
            memcpy(p, blk + (offset - start), n);
        } else {
            r = filter_pread(bs, p, offset, n, flags, errp);
        }
        if (r < 0)
            return r;
        p += n;
        offset += n;
        len -= n;
    }
    return 0;
}

/* A write of data, or of zeros with data NULL: whole blocks go down as
 * writes (at most maxdata) or zeroes (at most maxlen), partial ones by
 * read-modify-write. */
static int blocksize_write(BhNode *bs, const void *data, uint64_t offset,
                           uint64_t len, uint32_t flags, BhError **errp)
{
    BlocksizeState *s = bh_node_get_opaque(bs);
    const uint8_t *p = data;
    while (len) {
        uint64_t n;
        int r;
        if (blocksize_piece(s, offset, len, p ? s->maxdata : s->maxlen, &n)) {
            r = blocksize_rmw(bs, p, offset, n, flags & BH_IO_FUA, errp);
        } else {
            g_rw_lock_reader_lock(&s->rmw);
            r = p ? filter_pwrite(bs, p, offset, n, flags, errp)
                  : filter_write_zeroes(bs, offset, n, flags, errp);
            g_rw_lock_reader_unlock(&s->rmw);
        }
        if (r < 0)
            return r;
        if (p)
            p += n;
        offset += n;
        len -= n;
    }
    return 0;
}

static int blocksize_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                            size_t len, uint32_t flags, BhError **errp)
{
    return blocksize_write(bs, buf, offset, len, flags, errp);
}

static int blocksize_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                                  uint32_t flags, BhError **errp)
{
    BlocksizeState *s = bh_node_get_opaque(bs);
    if ((flags & BH_IO_FAST_ZERO) &&
        (offset % s->minblock || len % s->minblock))
        return bh_error_set(errp, ENOTSUP, "blocksize: a fast zero must be "
                            "aligned to minblock=%" PRIu64, s->minblock);
    return blocksize_write(bs, NULL, offset, len, flags, errp);
}

static int blocksize_discard(BhNode *bs, uint64_t offset, uint64_t len,
                             BhError **errp)
{
    BlocksizeState *s = bh_node_get_opaque(bs);
    while (len) {
        uint64_t n;
        if (!blocksize_piece(s, offset, len, s->maxlen, &n)) {
            int r = filter_discard(bs, offset, n, errp);
            if (r < 0)
                return r;
        }
        offset += n;
        len -= n;
    }
    return 0;
}

static void blocksize_info(BhNode *bs, BhInfo *info)
{
    BlocksizeState *s = bh_node_get_opaque(bs);
    bh_info_add_int(info, "minblock", (int64_t)s->minblock);
    bh_info_add_int(info, "maxdata", (int64_t)s->maxdata);
    bh_info_add_int(info, "maxlen", (int64_t)s->maxlen);
}

static const BhDriver blocksize_driver = {
    .flags = FILTER_FLAGS,
    .request_flags = FILTER_REQUEST_FLAGS,
    .probe = filter_probe,
    .open = blocksize_open,
    .close = blocksize_close,
    .get_length = blocksize_get_length,
    .pread = blocksize_pread,
    .pwrite = blocksize_pwrite,
    .flush = filter_flush,
    .discard = blocksize_discard,
    .write_zeroes = blocksize_write_zeroes,
    .block_status = filter_block_status,
    .info = blocksize_info,
    .get_allocated_size = filter_get_allocated_size,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "blocksize",
    .version = "1.0",
    .description = "filter splitting and aligning requests (minblock=, "
                   "maxdata=, maxlen=)",
    .driver = &blocksize_driver,
};

BH_PLUGIN_REGISTER(desc)
