/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhRequest (request.h): building, starting, completing and waiting for
 * one request; where it runs is decided here, what it goes through in
 * io.c.
 *
 *  - A synchronous caller (bh_node_pread & co.) builds the request on
 *    its stack and runs io.c's steps on its own thread.  For a driver
 *    with synchronous callbacks that is a plain call: no allocation, no
 *    thread hop.  For a driver with submit, each driver call is
 *    submitted and waited for on a mutex and condition on the stack.
 *  - An asynchronous caller (bh_node_submit) gets a heap request.  On a
 *    submit driver, a read, a write or a flush that needs no emulation
 *    goes straight to the driver (bh_io_submit_direct), and a FUA the
 *    driver lacks is a flush submitted when the write completes.  All
 *    other requests, and every request on a synchronous driver, run
 *    io.c's steps on the core's pool: GLib threads, BLKHOST_IO_THREADS of
 *    them (default twice the processors, at least 8), as qemu's block
 *    layer runs blocking calls on its worker pool.
 *
 * Either way, drain.c admits the request first, and its callback runs
 * before the node's in-flight count drops.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core-priv.h"

void bh_request_init(BhRequest *req, BhNode *bs, BhOp op, uint64_t offset,
                     uint64_t len, void *buf, uint32_t flags)
{
    memset(req, 0, sizeof(*req));
    req->bs = bs;
    req->op = op;
    req->offset = offset;
    req->len = len;
    req->flags = flags;
    req->drv_flags = flags & bs->drv->request_flags;
    /* Reads and writes always have their one buffer (NULL is for a
     * range check alone: Lua asks that way). */
    if (op == BH_OP_READ || op == BH_OP_WRITE) {
        req->iov_one.iov_base = buf;
        req->iov_one.iov_len = len;
        req->iov = &req->iov_one;
        req->niov = 1;
    }
}

BhRequest *bh_request_new(BhNode *bs, BhOp op, uint64_t offset, uint64_t len,
                          const struct iovec *iov, int niov, uint32_t flags,
                          BhRequestDoneFn done, void *opaque)
{
    BhRequest *req = g_new(BhRequest, 1);

    bh_request_init(req, bh_node_ref(bs), op, offset, len, NULL, flags);
    req->iov = NULL;
    if (niov == 1) {
        req->iov_one = iov[0];
        req->iov = &req->iov_one;
    } else if (niov > 1) {
        req->iov_heap = g_memdup2(iov, sizeof(*iov) * (size_t)niov);
        req->iov = req->iov_heap;
    }
    req->niov = MAX(niov, 0);
    req->done = done;
    req->opaque = opaque;
    return req;
}


/*
 * Drop the request's reference to its node.  This may run on a driver's
 * completion thread (io_uring, AIO, a network client), and when it is
 * the node's last reference, closing the node would have the driver stop
 * and join that very thread.  So the last reference goes to the pool, as
 * a request with no op; any other is dropped here.
 */
static void request_release_node(BhNode *bs)
{
    for (;;) {
        gint n = g_atomic_int_get(&bs->refcnt);
        if (n <= 1) {
            BhRequest *last = g_new0(BhRequest, 1);
            last->bs = bs;
            bh_request_run_on_pool(last);
            return;
        }
        if (g_atomic_int_compare_and_exchange(&bs->refcnt, n, n - 1))
            return;
    }
}

void bh_request_finish(BhRequest *req, int ret)
{
    BhNode *bs = req->bs;

    if (req->forward_to) {
        /* Everything of this request goes before the one it serves
         * completes (bh_request_forward).  Its node is held by that
         * request's node, so this is never its last reference. */
        BhRequest *parent = req->forward_to;
        BhError *err = req->err;
        bh_drain_leave(bs);
        g_free(req->iov_heap);
        g_free(req);
        request_release_node(bs);
        if (err) {
            if (parent->err)
                bh_error_free(parent->err);
            parent->err = err;
        }
        bh_request_complete(parent, ret);
        return;
    }
    if (req->done)
        req->done(req->opaque, ret, req->err);
    bh_drain_leave(bs);
    if (req->err)
        bh_error_free(req->err);
    g_free(req->iov_heap);
    g_free(req);
    request_release_node(bs);
}

/* ---- the pool ---- */

static void request_pool_job(gpointer data, gpointer unused)
{
    BhRequest *req = data;
    BhError *err = NULL;

    if (!req->op) {             /* a node's last reference (above) */
        bh_node_unref(req->bs);
        g_free(req);
        return;
    }
    int r = bh_io_run(req, &err);

    if (err) {
        if (req->err)
            bh_error_free(req->err);
        req->err = err;
    }
    bh_request_finish(req, r);
}

static GThreadPool *request_pool(void)
{
    static gsize once;
    static GThreadPool *pool;

    if (g_once_init_enter(&once)) {
        const char *env = g_getenv("BLKHOST_IO_THREADS");
        int n = env ? atoi(env) : 0;
        if (n <= 0)
            n = MAX(8, 2 * (int)g_get_num_processors());
        pool = g_thread_pool_new(request_pool_job, NULL, n, FALSE, NULL);
        g_once_init_leave(&once, 1);
    }
    return pool;
}

void bh_request_run_on_pool(BhRequest *req)
{
    g_thread_pool_push(request_pool(), req, NULL);
}

/* ---- caller side ---- */

void bh_node_submit(BhRequest *req)
{
    BhNode *bs = req->bs;

    /* A drained node queues it; drain_end submits it again. */
    if (!bh_drain_try_enter(bs, req))
        return;
    if (bs->drv->submit && bh_io_submit_direct(req))
        return;
    bh_request_run_on_pool(req);
}

int bh_request_submit_wait(BhRequest *req, BhError **errp)
{
    BhRequestWaiter w;

    g_mutex_init(&w.lock);
    g_cond_init(&w.cond);
    w.done = 0;
    w.thread = g_thread_self();
    req->waiter = &w;
    req->bs->drv->submit(req->bs, req);
    /* Completed inside submit, on this thread: nobody else touches w. */
    if (g_atomic_int_get(&w.done) != 2) {
        g_mutex_lock(&w.lock);
        while (!g_atomic_int_get(&w.done))
            g_cond_wait(&w.cond, &w.lock);
        g_mutex_unlock(&w.lock);
    }
    g_cond_clear(&w.cond);
    g_mutex_clear(&w.lock);
    req->waiter = NULL;

    int r = req->ret;
    if (r < 0 && req->err) {
        bh_error_propagate(errp, req->err);
    } else {
        if (req->err)
            bh_error_free(req->err);
        if (r < 0)
            bh_error_set(errp, -r, "%s: request on '%s' failed: %s",
                         req->bs->plugin->name, req->bs->filename,
                         g_strerror(-r));
    }
    req->err = NULL;
    return r;
}

/* ---- driver side ---- */

BhNode *bh_request_node(const BhRequest *req) { return req->bs; }
BhOp bh_request_op(const BhRequest *req) { return req->op; }
uint64_t bh_request_offset(const BhRequest *req) { return req->offset; }
uint64_t bh_request_length(const BhRequest *req) { return req->len; }
uint32_t bh_request_flags(const BhRequest *req) { return req->drv_flags; }

const struct iovec *bh_request_iov(const BhRequest *req, int *niov)
{
    if (niov)
        *niov = req->niov;
    return req->iov;
}

int bh_request_error(BhRequest *req, int errnum, const char *fmt, ...)
{
    va_list ap;

    if (req->err)
        bh_error_free(req->err);
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    req->err = bh_error_new(errnum, "%s", msg);
    return -errnum;
}

void bh_request_forward(BhRequest *req, BhNode *child, uint64_t offset)
{
    BhRequest *fw = bh_request_new(child, req->op,
                                   req->op == BH_OP_FLUSH ? 0 : offset,
                                   req->len, req->iov, req->niov,
                                   req->drv_flags, NULL, NULL);
    fw->forward_to = req;
    bh_node_submit(fw);
}

void bh_request_complete(BhRequest *req, int ret)
{
    req->ret = ret;
    if (req->waiter) {
        BhRequestWaiter *w = req->waiter;
        if (w->thread == g_thread_self()) {
            g_atomic_int_set(&w->done, 2);
            return;
        }
        g_mutex_lock(&w->lock);
        g_atomic_int_set(&w->done, 1);
        g_cond_signal(&w->cond);
        g_mutex_unlock(&w->lock);
        return;
    }
    if (ret == 0 && req->then_flush) {
        /* FUA the driver lacks: the write is in, now make it durable. */
        req->then_flush = false;
        req->op = BH_OP_FLUSH;
        req->offset = req->len = 0;
        req->iov = NULL;
        req->niov = 0;
        req->drv_flags = 0;
        req->bs->drv->submit(req->bs, req);
        return;
    }
    bh_request_finish(req, ret);
}
