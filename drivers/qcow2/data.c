/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest data of one qcow2 request, moved in parallel.
 *
 * A request that spans clusters mapped to scattered host offsets becomes
 * one host request per contiguous run.  Instead of reading or writing
 * them one after another, io.c adds each to a batch, which submits it to
 * the file child at once (bh_node_submit), and waits for the whole batch
 * at the end of the request: with a queueing file driver (io_uring, Linux
 * AIO) the runs are in flight together.
 *
 * Only the data of clusters whose mapping is settled goes through a batch
 * (reads of allocated clusters, writes in place); lookups, allocation and
 * L2/refcount updates stay where they are, in order, under the lock.
 * Each host run keeps the I/O epoch its lookup registered until the batch
 * is settled, so a discard cannot reuse the cluster under it.  The epochs
 * are ended by the request's own thread, never by a completion callback:
 * ending one may take the metadata lock, and the thread holding that lock
 * may be waiting for a metadata read queued behind this very completion.
 * A writer settles its batch before it allocates, since allocating may
 * drain the epochs it holds.
 */
#include "qcow2.h"

#include <errno.h>

void qcow2_batch_init(Qcow2Batch *b, Qcow2State *s)
{
    memset(b, 0, sizeof(*b));
    b->s = s;
    g_mutex_init(&b->lock);
    g_cond_init(&b->cond);
}

static void qcow2_batch_done(void *opaque, int ret, const BhError *err)
{
    Qcow2Batch *b = opaque;

    g_mutex_lock(&b->lock);
    if (ret < 0 && b->ret == 0) {
        b->ret = ret;
        b->msg = g_strdup(err ? bh_error_message(err) : g_strerror(-ret));
    }
    if (--b->pending == 0)
        g_cond_broadcast(&b->cond);
    g_mutex_unlock(&b->lock);
}

void qcow2_batch_add(Qcow2Batch *b, BhOp op, void *buf, uint64_t host,
                     uint64_t len, int epoch)
{
    struct iovec iov = { .iov_base = buf, .iov_len = len };

    b->held[epoch]++;
    g_mutex_lock(&b->lock);
    b->pending++;
    g_mutex_unlock(&b->lock);
    bh_node_submit(bh_request_new(b->s->file, op, host, len, &iov, 1, 0,
                                  qcow2_batch_done, b));
}

void qcow2_batch_settle(Qcow2Batch *b, bool locked)
{
    g_mutex_lock(&b->lock);
    while (b->pending)
        g_cond_wait(&b->cond, &b->lock);
    g_mutex_unlock(&b->lock);
    for (int e = 0; e < 2; e++) {
        for (; b->held[e]; b->held[e]--) {
            if (locked)
                qcow2_io_end_locked(b->s, e);
            else
                qcow2_io_end(b->s, e);
        }
    }
}

int qcow2_batch_wait(Qcow2Batch *b, BhError **errp)
{
    int ret;

    qcow2_batch_settle(b, false);
    ret = b->ret;
    if (ret < 0)
        bh_error_set(errp, -ret, "%s", b->msg);
    g_free(b->msg);
    g_cond_clear(&b->cond);
    g_mutex_clear(&b->lock);
    return ret;
}
