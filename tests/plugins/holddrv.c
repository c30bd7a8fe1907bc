/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * holddrv: a RAM driver with only a submit callback (request.h), for the
 * request and drain tests.  While holding (holddrv_hold(true)), requests
 * are kept instead of done, so a test can have many in flight at once and
 * decide when they complete: holddrv_release() does and completes them on
 * the calling thread and stops holding.  It counts what it receives and
 * ORs the request flags it sees.  Built twice: declaring FUA, MAY_UNMAP
 * and FAST_ZERO (holddrv), and declaring none (holddrv-noflags).
 * The test reaches the controls with dlsym.
 */
#include <errno.h>
#include <string.h>

#include <blkhost/blkhost.h>

typedef struct {
    int received, completed, held, flushes, fua_writes, zeroes, discards;
    uint32_t seen_flags;
} HolddrvStats;

BH_PLUGIN_EXPORT HolddrvStats holddrv_stats;

static GMutex holddrv_lock;
static bool holddrv_holding;
static GQueue holddrv_queue = G_QUEUE_INIT;

typedef struct {
    uint8_t *data;
    uint64_t size;
    GMutex lock;
} Holddrv;

static int holddrv_open(BhNode *bs, const char *filename, BhOpts *opts,
                        uint32_t flags, BhError **errp)
{
    uint64_t size;
    if (!bh_opts_get_size(opts, "size", 1024 * 1024, &size, errp))
        return -EINVAL;
    Holddrv *h = g_new0(Holddrv, 1);
    h->data = g_malloc0(size);
    h->size = size;
    g_mutex_init(&h->lock);
    bh_node_set_opaque(bs, h);
    bh_node_set_caps(bs, BH_CAP_FUA | BH_CAP_DISCARD | BH_CAP_ZERO);
    return 0;
}

static void holddrv_close(BhNode *bs)
{
    Holddrv *h = bh_node_get_opaque(bs);
    g_mutex_clear(&h->lock);
    g_free(h->data);
    g_free(h);
}

static int64_t holddrv_length(BhNode *bs)
{
    return ((Holddrv *)bh_node_get_opaque(bs))->size;
}

/* Do the request and complete it. */
static void holddrv_do(BhRequest *req)
{
    Holddrv *h = bh_node_get_opaque(bh_request_node(req));
    uint64_t off = bh_request_offset(req), len = bh_request_length(req);
    int niov;
    const struct iovec *iov = bh_request_iov(req, &niov);

    g_mutex_lock(&h->lock);
    switch (bh_request_op(req)) {
    case BH_OP_READ:
        for (int i = 0; i < niov; off += iov[i++].iov_len)
            memcpy(iov[i].iov_base, h->data + off, iov[i].iov_len);
        break;
    case BH_OP_WRITE:
        if (bh_request_flags(req) & BH_IO_FUA)
            g_atomic_int_inc(&holddrv_stats.fua_writes);
        for (int i = 0; i < niov; off += iov[i++].iov_len)
            memcpy(h->data + off, iov[i].iov_base, iov[i].iov_len);
        break;
    case BH_OP_FLUSH:
        g_atomic_int_inc(&holddrv_stats.flushes);
        break;
    case BH_OP_DISCARD:
        g_atomic_int_inc(&holddrv_stats.discards);
        memset(h->data + off, 0, len);
        break;
    case BH_OP_WRITE_ZEROES:
        g_atomic_int_inc(&holddrv_stats.zeroes);
        memset(h->data + off, 0, len);
        break;
    }
    g_mutex_unlock(&h->lock);
    g_atomic_int_inc(&holddrv_stats.completed);
    bh_request_complete(req, 0);
}

static void holddrv_submit(BhNode *bs, BhRequest *req)
{
    g_atomic_int_inc(&holddrv_stats.received);
    g_mutex_lock(&holddrv_lock);
    holddrv_stats.seen_flags |= bh_request_flags(req);
    if (holddrv_holding) {
        g_queue_push_tail(&holddrv_queue, req);
        holddrv_stats.held++;
        g_mutex_unlock(&holddrv_lock);
        return;
    }
    g_mutex_unlock(&holddrv_lock);
    holddrv_do(req);
}

BH_PLUGIN_EXPORT void holddrv_hold(bool on);
BH_PLUGIN_EXPORT void holddrv_hold(bool on)
{
    g_mutex_lock(&holddrv_lock);
    holddrv_holding = on;
    g_mutex_unlock(&holddrv_lock);
}

/* How many requests are held now. */
BH_PLUGIN_EXPORT int holddrv_held(void);
BH_PLUGIN_EXPORT int holddrv_held(void)
{
    g_mutex_lock(&holddrv_lock);
    int n = (int)holddrv_queue.length;
    g_mutex_unlock(&holddrv_lock);
    return n;
}

/* Stop holding; do and complete what was held, here. */
BH_PLUGIN_EXPORT void holddrv_release(void);
BH_PLUGIN_EXPORT void holddrv_release(void)
{
    g_mutex_lock(&holddrv_lock);
    holddrv_holding = false;
    GList *held = holddrv_queue.head;
    g_queue_init(&holddrv_queue);
    g_mutex_unlock(&holddrv_lock);
    for (GList *l = held; l; l = l->next)
        holddrv_do(l->data);
    g_list_free(held);
}

static const BhDriver holddrv_driver = {
    .flags = BH_DRIVER_PROTOCOL | BH_DRIVER_NO_PROBE,
    .open = holddrv_open,
    .close = holddrv_close,
    .get_length = holddrv_length,
    .submit = holddrv_submit,
    .request_flags = HOLDDRV_FLAGS,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = HOLDDRV_NAME,
    .version = "1.0",
    .description = "RAM driver with submit that can hold requests (tests)",
    .driver = &holddrv_driver,
};

BH_PLUGIN_REGISTER(desc)
