/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "readahead" filter: a read that continues the previous one reads
 * window= bytes (default 256K) from the child into a buffer, and the
 * reads after it are served from there, as nbdkit's readahead filter
 * does for sequential readers over a slow child.  Random reads go
 * straight to the child.  Writes, zeroes and trims drop the buffer
 * before and after they reach the child, so that no read made while
 * they ran survives them.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <blkhost/glib.h>
#include <blkhost/snapshot.h>

#include "../filter.h"

typedef struct ReadaheadState {
    uint64_t window;
    GMutex lock;
    uint8_t *buf;
    uint64_t buf_off, buf_len;   /* buf_len 0: empty */
    uint64_t last_end;           /* where the last read ended */
} ReadaheadState;

static int readahead_open(BhNode *bs, const char *filename, BhOpts *opts,
                          uint32_t open_flags, BhError **errp)
{
    if (!filter_open_child(bs, "readahead", errp))
        return -EINVAL;
    uint64_t window;
    if (!bh_opts_get_size(opts, "window", 256 << 10, &window, errp))
        return -EINVAL;
    if (window < 4096 || window > (64 << 20))
        return bh_error_set(errp, EINVAL, "readahead: window=%" PRIu64
                            " must be from 4K to 64M", window);
    ReadaheadState *s = g_new0(ReadaheadState, 1);
    s->window = window;
    s->buf = g_malloc(window);
    s->last_end = UINT64_MAX;
    g_mutex_init(&s->lock);
    bh_node_set_opaque(bs, s);
    return 0;
}

static void readahead_close(BhNode *bs)
{
    ReadaheadState *s = bh_node_get_opaque(bs);
    g_mutex_clear(&s->lock);
    g_free(s->buf);
    g_free(s);
}

static int readahead_pread(BhNode *bs, void *buf, uint64_t offset,
                           size_t len, uint32_t flags, BhError **errp)
{
    ReadaheadState *s = bh_node_get_opaque(bs);
    g_mutex_lock(&s->lock);
    bool sequential = offset == s->last_end;
    s->last_end = offset + len;
    if (s->buf_len && offset >= s->buf_off &&
        offset + len <= s->buf_off + s->buf_len) {
        memcpy(buf, s->buf + (offset - s->buf_off), len);
        g_mutex_unlock(&s->lock);
        return 0;
    }
    if (!sequential || len >= s->window) {
        g_mutex_unlock(&s->lock);
        return filter_pread(bs, buf, offset, len, flags, errp);
    }
    /* Read on: a window from here, as far as the disk goes. */
    uint64_t size = (uint64_t)MAX(filter_get_length(bs), 0);
    uint64_t n = MIN(s->window, size - offset);
    s->buf_len = 0;
    int r = filter_pread(bs, s->buf, offset, n, flags, errp);
    if (r >= 0) {
        s->buf_off = offset;
        s->buf_len = n;
        memcpy(buf, s->buf, len);
    }
    g_mutex_unlock(&s->lock);
    return r;
}

static void readahead_drop(BhNode *bs)
{
    ReadaheadState *s = bh_node_get_opaque(bs);
    g_mutex_lock(&s->lock);
    s->buf_len = 0;
    g_mutex_unlock(&s->lock);
}

static int readahead_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                            size_t len, uint32_t flags, BhError **errp)
{
    readahead_drop(bs);
    int r = filter_pwrite(bs, buf, offset, len, flags, errp);
    readahead_drop(bs);
    return r;
}

static int readahead_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                                  uint32_t flags, BhError **errp)
{
    readahead_drop(bs);
    int r = filter_write_zeroes(bs, offset, len, flags, errp);
    readahead_drop(bs);
    return r;
}

static int readahead_discard(BhNode *bs, uint64_t offset, uint64_t len,
                             BhError **errp)
{
    readahead_drop(bs);
    int r = filter_discard(bs, offset, len, errp);
    readahead_drop(bs);
    return r;
}

static int readahead_truncate(BhNode *bs, uint64_t size, BhError **errp)
{
    readahead_drop(bs);
    int r = filter_truncate(bs, size, errp);
    readahead_drop(bs);
    return r;
}

static int readahead_snapshot_apply(BhNode *bs, const char *id_or_name,
                                    BhError **errp)
{
    int r = bh_node_snapshot_apply(filter_child(bs), id_or_name, errp);
    readahead_drop(bs);
    return r;
}

static const BhDriver readahead_driver = {
    .flags = FILTER_FLAGS,
    .request_flags = FILTER_REQUEST_FLAGS,
    .probe = filter_probe,
    .open = readahead_open,
    .close = readahead_close,
    .get_length = filter_get_length,
    .pread = readahead_pread,
    .pwrite = readahead_pwrite,
    .flush = filter_flush,
    .discard = readahead_discard,
    .write_zeroes = readahead_write_zeroes,
    .block_status = filter_block_status,
    .truncate = readahead_truncate,
    .get_allocated_size = filter_get_allocated_size,
    .snapshot_apply = readahead_snapshot_apply,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "readahead",
    .version = "1.0",
    .description = "filter reading ahead window= bytes for sequential "
                   "readers",
    .driver = &readahead_driver,
};

BH_PLUGIN_REGISTER(desc)
