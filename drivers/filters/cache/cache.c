/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "cache" filter: a write-back cache in RAM over its child, of at
 * most size= bytes (default 64M) in blocks of block= bytes (default 4K).
 * Reads fill it; writes land in it and reach the child on flush, on
 * eviction (least recently used first) or, for FUA writes, at once.
 * Zeroes and trims write back and drop the blocks they cover, then go to
 * the child.  Closing the node writes back what is left.
 *
 * One lock covers the cache and the child I/O it does: a cache is for a
 * slow child, where that does not show.  Snapshot calls pass to the
 * child after a write-back (the core flushes before a snapshot is made);
 * applying one drops every cached block, whose bytes it replaced.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <blkhost/glib.h>
#include <blkhost/snapshot.h>

#include "../filter.h"

typedef struct {
    uint64_t index;
    bool dirty;
    GList link;         /* in lru, data = this block */
    uint8_t data[];
} CacheBlock;

typedef struct CacheState {
    uint64_t block, max_blocks;
    GHashTable *blocks;  /* &index -> CacheBlock */
    GQueue lru;          /* head: most recently used */
    GMutex lock;
} CacheState;

static int cache_open(BhNode *bs, const char *filename, BhOpts *opts,
                      uint32_t open_flags, BhError **errp)
{
    if (!filter_open_child(bs, "cache", errp))
        return -EINVAL;
    uint64_t size, block;
    if (!bh_opts_get_size(opts, "size", 64 << 20, &size, errp) ||
        !bh_opts_get_size(opts, "block", 4096, &block, errp))
        return -EINVAL;
    if (block < 512 || block > (1 << 20) || (block & (block - 1)))
        return bh_error_set(errp, EINVAL, "cache: block=%" PRIu64 " must be "
                            "a power of two from 512 to 1M", block);
    if (size < block)
        return bh_error_set(errp, EINVAL, "cache: size=%" PRIu64 " must hold"
                            " at least one block (block=%" PRIu64 ")", size,
                            block);
    CacheState *s = g_new0(CacheState, 1);
    s->block = block;
    s->max_blocks = size / block;
    s->blocks = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
                                      g_free);
    g_queue_init(&s->lru);
    g_mutex_init(&s->lock);
    bh_node_set_opaque(bs, s);
    return 0;
}

/* Length of block b (the last one may be short). */
static uint64_t cache_block_len(BhNode *bs, uint64_t b)
{
    CacheState *s = bh_node_get_opaque(bs);
    uint64_t size = (uint64_t)MAX(filter_get_length(bs), 0);
    return MIN(s->block, size - b * s->block);
}

static int cache_write_back(BhNode *bs, CacheBlock *c, uint32_t flags,
                            BhError **errp)
{
    CacheState *s = bh_node_get_opaque(bs);
    if (!c->dirty)
        return 0;
    int r = filter_pwrite(bs, c->data, c->index * s->block,
                          cache_block_len(bs, c->index), flags, errp);
    if (r >= 0)
        c->dirty = false;
    return r;
}

static void cache_drop(CacheState *s, CacheBlock *c)
{
    g_queue_unlink(&s->lru, &c->link);
    g_hash_table_remove(s->blocks, &c->index);
}

/* Block b, cached (read from the child unless whole says it is about to
 * be overwritten whole), made most recently used; NULL on error. */
static CacheBlock *cache_get(BhNode *bs, uint64_t b, bool whole,
                             BhError **errp)
{
    CacheState *s = bh_node_get_opaque(bs);
    CacheBlock *c = g_hash_table_lookup(s->blocks, &b);
    if (c) {
        g_queue_unlink(&s->lru, &c->link);
        g_queue_push_head_link(&s->lru, &c->link);
        return c;
    }
    /* Make room first: a dirty block that cannot be written back stays,
     * and the request fails rather than drop data. */
    while (g_hash_table_size(s->blocks) >= s->max_blocks) {
        CacheBlock *old = g_queue_peek_tail(&s->lru);
        if (cache_write_back(bs, old, 0, errp) < 0)
            return NULL;
        cache_drop(s, old);
    }
    c = g_malloc0(sizeof(*c) + s->block);
    c->index = b;
    c->link.data = c;
    if (!whole && filter_pread(bs, c->data, b * s->block,
                               cache_block_len(bs, b), 0, errp) < 0) {
        g_free(c);
        return NULL;
    }
    g_hash_table_insert(s->blocks, &c->index, c);
    g_queue_push_head_link(&s->lru, &c->link);
    return c;
}

static void cache_close(BhNode *bs)
{
    CacheState *s = bh_node_get_opaque(bs);
    BhError *err = NULL;
    for (GList *l = s->lru.head; l; l = l->next)
        if (cache_write_back(bs, l->data, 0, &err) < 0) {
            g_warning("cache: data lost at close: %s",
                      bh_error_message(err));
            bh_error_clear(&err);
        }
    g_hash_table_destroy(s->blocks);
    g_mutex_clear(&s->lock);
    g_free(s);
}

/* Copy between buf and the cache over [offset, offset+len). */
static int cache_rw(BhNode *bs, uint8_t *buf, const uint8_t *src,
                    uint64_t offset, uint64_t len, uint32_t flags,
                    BhError **errp)
{
    CacheState *s = bh_node_get_opaque(bs);
    int r = 0;
    g_mutex_lock(&s->lock);
    while (len) {
        uint64_t b = offset / s->block, in = offset - b * s->block;
        uint64_t n = MIN(len, s->block - in);
        bool whole = src && n == cache_block_len(bs, b);
        CacheBlock *c = cache_get(bs, b, whole, errp);
        if (!c) {
            r = -EIO;
            break;
        }
        if (src) {
            memcpy(c->data + in, src, n);
            c->dirty = true;
            src += n;
            /* FUA: this block is durable before the write returns. */
            if ((flags & BH_IO_FUA) &&
                (r = cache_write_back(bs, c, BH_IO_FUA, errp)) < 0)
                break;
        } else {
            memcpy(buf, c->data + in, n);
            buf += n;
        }
        offset += n;
        len -= n;
    }
    g_mutex_unlock(&s->lock);
    return r;
}

static int cache_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                       uint32_t flags, BhError **errp)
{
    return cache_rw(bs, buf, NULL, offset, len, 0, errp);
}

static int cache_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                        size_t len, uint32_t flags, BhError **errp)
{
    return cache_rw(bs, NULL, buf, offset, len, flags, errp);
}

/* Write back every dirty block in offset order; drop them all too when
 * drop (a zero or trim will change the child under them). */
static int cache_write_back_range(BhNode *bs, uint64_t offset, uint64_t len,
                                  bool drop, BhError **errp)
{
    CacheState *s = bh_node_get_opaque(bs);
    g_autoptr(GList) all = g_hash_table_get_values(s->blocks);
    for (GList *l = all; l; l = l->next) {
        CacheBlock *c = l->data;
        uint64_t start = c->index * s->block;
        if (start + s->block <= offset || start >= offset + len)
            continue;
        if (cache_write_back(bs, c, 0, errp) < 0)
            return -EIO;
        if (drop)
            cache_drop(s, c);
    }
    return 0;
}

static int cache_flush(BhNode *bs, BhError **errp)
{
    CacheState *s = bh_node_get_opaque(bs);
    g_mutex_lock(&s->lock);
    int r = cache_write_back_range(bs, 0, UINT64_MAX, false, errp);
    g_mutex_unlock(&s->lock);
    return r < 0 ? r : filter_flush(bs, errp);
}

static int cache_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                              uint32_t flags, BhError **errp)
{
    CacheState *s = bh_node_get_opaque(bs);
    g_mutex_lock(&s->lock);
    int r = cache_write_back_range(bs, offset, len, true, errp);
    if (r >= 0)
        r = filter_write_zeroes(bs, offset, len, flags, errp);
    g_mutex_unlock(&s->lock);
    return r;
}

static int cache_discard(BhNode *bs, uint64_t offset, uint64_t len,
                         BhError **errp)
{
    CacheState *s = bh_node_get_opaque(bs);
    g_mutex_lock(&s->lock);
    int r = cache_write_back_range(bs, offset, len, true, errp);
    if (r >= 0)
        r = filter_discard(bs, offset, len, errp);
    g_mutex_unlock(&s->lock);
    return r;
}

/* The child knows what is allocated once the range is written back. */
static int cache_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                              uint64_t *pnum, uint32_t *status,
                              BhError **errp)
{
    CacheState *s = bh_node_get_opaque(bs);
    g_mutex_lock(&s->lock);
    int r = cache_write_back_range(bs, offset, len, false, errp);
    g_mutex_unlock(&s->lock);
    return r < 0 ? r : filter_block_status(bs, offset, len, pnum, status,
                                           errp);
}

static int cache_snapshot_apply(BhNode *bs, const char *id_or_name,
                                BhError **errp)
{
    CacheState *s = bh_node_get_opaque(bs);
    int r = bh_node_snapshot_apply(filter_child(bs), id_or_name, errp);
    if (r < 0)
        return r;
    g_mutex_lock(&s->lock);
    g_hash_table_remove_all(s->blocks);   /* frees the lru links too */
    g_queue_init(&s->lru);
    g_mutex_unlock(&s->lock);
    return 0;
}

static void cache_info(BhNode *bs, BhInfo *info)
{
    CacheState *s = bh_node_get_opaque(bs);
    bh_info_add_int(info, "cache-size", (int64_t)(s->max_blocks * s->block));
    g_mutex_lock(&s->lock);
    bh_info_add_int(info, "cache-used",
                    (int64_t)(g_hash_table_size(s->blocks) * s->block));
    g_mutex_unlock(&s->lock);
}

static const BhDriver cache_driver = {
    .flags = FILTER_FLAGS,
    .request_flags = FILTER_REQUEST_FLAGS,
    .probe = filter_probe,
    .open = cache_open,
    .close = cache_close,
    .get_length = filter_get_length,
    .pread = cache_pread,
    .pwrite = cache_pwrite,
    .flush = cache_flush,
    .discard = cache_discard,
    .write_zeroes = cache_write_zeroes,
    .block_status = cache_block_status,
    .info = cache_info,
    .get_allocated_size = filter_get_allocated_size,
    .snapshot_apply = cache_snapshot_apply,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "cache",
    .version = "1.0",
    .description = "filter caching reads and writes in RAM, written back on "
                   "flush (size=, block=)",
    .driver = &cache_driver,
};

BH_PLUGIN_REGISTER(desc)
