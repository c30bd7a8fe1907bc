/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhInflight (inflight.h): requests run as blocking calls on a thread
 * pool of their own, their results queued for the thread that submitted
 * them.  A mutex and a condition guard the queue of results; the pool
 * threads do nothing else with it, so they never wait on the collector.
 */
#include <errno.h>

#include "inflight.h"

#define INFLIGHT_THREADS 64u

struct BhInflight {
    GThreadPool *pool;
    GMutex lock;
    GCond cond;
    GQueue done;        /* InflightJob, under lock */
    bool waiting;       /* the collector sleeps on cond; under lock */
    unsigned in_flight; /* submitted, not collected; the submitter's */
};

typedef struct {
    BhInflight *q;
    BhNode *bs;
    BhOp op;
    uint64_t offset, len;
    void *buf;
    uint32_t flags;
    void *tag;
    int ret;
    BhError *err;
} InflightJob;

/* On a pool thread: the call, then its result for the collector. */
static void inflight_run(gpointer data, gpointer user_data)
{
    InflightJob *j = data;
    BhInflight *q = j->q;

    switch (j->op) {
    case BH_OP_READ:
        j->ret = bh_node_pread(j->bs, j->buf, j->offset, (size_t)j->len,
                               j->flags, &j->err);
        break;
    case BH_OP_WRITE:
        j->ret = bh_node_pwrite(j->bs, j->buf, j->offset, (size_t)j->len,
                                j->flags, &j->err);
        break;
    case BH_OP_WRITE_ZEROES:
        j->ret = bh_node_write_zeroes(j->bs, j->offset, j->len, j->flags,
                                      &j->err);
        break;
    case BH_OP_FLUSH:
        j->ret = bh_node_flush(j->bs, &j->err);
        break;
    case BH_OP_DISCARD:
        j->ret = bh_node_discard(j->bs, j->offset, j->len, &j->err);
        break;
    default:
        j->ret = bh_error_set(&j->err, EINVAL, "unknown request op %d",
                              (int)j->op);
    }
    g_mutex_lock(&q->lock);
    g_queue_push_tail(&q->done, j);
    /* A busy collector finds the result on its next wait: no wake-up. */
    if (q->waiting)
        g_cond_signal(&q->cond);
    g_mutex_unlock(&q->lock);
}

BhInflight *bh_inflight_new(unsigned depth)
{
    BhInflight *q = g_new0(BhInflight, 1);
    g_mutex_init(&q->lock);
    g_cond_init(&q->cond);
    g_queue_init(&q->done);
    /* Threads of their own (exclusive): blocked calls must not wait for
     * threads another user of GLib's shared pool holds.  At most
     * INFLIGHT_THREADS, as qemu's thread pool: a deeper queue (bench -d
     * 1000) waits in the pool's queue rather than making a thread each. */
    q->pool = g_thread_pool_new(inflight_run, NULL,
                                (gint)CLAMP(depth, 1u, INFLIGHT_THREADS),
                                TRUE, NULL);
    return q;
}

void bh_inflight_free(BhInflight *q)
{
    if (!q)
        return;
    while (q->in_flight) {
        BhError *err = NULL;
        int ret;
        bh_inflight_wait(q, &ret, &err);
        if (err)
            bh_error_free(err);
    }
    g_thread_pool_free(q->pool, FALSE, TRUE);
    g_cond_clear(&q->cond);
    g_mutex_clear(&q->lock);
    g_free(q);
}

void bh_inflight_submit(BhInflight *q, BhNode *bs, BhOp op, uint64_t offset,
                        uint64_t len, void *buf, uint32_t flags, void *tag)
{
    InflightJob *j = g_new0(InflightJob, 1);

    j->q = q;
    j->bs = bs;
    j->op = op;
    j->offset = offset;
    j->len = len;
    j->buf = buf;
    j->flags = flags;
    j->tag = tag;
    q->in_flight++;
    g_thread_pool_push(q->pool, j, NULL);
}

unsigned bh_inflight_count(const BhInflight *q)
{
    return q->in_flight;
}

void *bh_inflight_wait(BhInflight *q, int *ret, BhError **err)
{
    g_assert(q->in_flight > 0);
    g_mutex_lock(&q->lock);
    while (g_queue_is_empty(&q->done)) {
        q->waiting = true;
        g_cond_wait(&q->cond, &q->lock);
        q->waiting = false;
    }
    InflightJob *j = g_queue_pop_head(&q->done);
    g_mutex_unlock(&q->lock);

    q->in_flight--;
    void *tag = j->tag;
    *ret = j->ret;
    if (j->ret < 0 && !j->err)
        j->err = bh_error_new(-j->ret, "request failed: %s",
                              g_strerror(-j->ret));
    if (err)
        *err = j->err;
    else if (j->err)
        bh_error_free(j->err);
    g_free(j);
    return tag;
}
