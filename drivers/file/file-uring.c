/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aio=io_uring for the file driver: submit queues reads, writes and
 * flushes on an io_uring, and one completion thread per node finishes
 * them.
 *
 * One ring per node, not per thread: requests come from whatever threads
 * the frontends and format drivers run on (NBD workers, qcow2 callers,
 * a completion thread of another node), often more threads than cores,
 * and one ring keeps the in-flight count, the completion thread and the
 * teardown in one place.  Submission takes a mutex (the submission queue
 * is single-producer in liburing); the completion queue is read by the
 * completion thread alone, so it needs none — liburing allows the two
 * sides on different threads.  The submitter calls io_uring_submit
 * itself, so a request is with the kernel when submit returns.
 *
 * Requests in flight are capped at the ring's size; a submitter beyond
 * it waits for a completion, so the completion queue (twice that size)
 * does not overflow.  The completion thread itself never waits (a
 * request's callback may submit the next one from there): it may pass
 * the cap, which the kernel absorbs (IORING_FEAT_NODROP).
 */
#include <errno.h>
#include <string.h>

#include "file.h"

#ifdef HAVE_LIBURING
#include <liburing.h>

#define URING_ENTRIES 256

struct FileUring {
    struct io_uring ring;
    GMutex lock;          /* the submission queue and in_flight */
    GCond slot;           /* in_flight dropped below the cap */
    unsigned in_flight;
    GThread *thread;
};

/* Queue io (again) on the ring, with q->lock held. */
static void uring_prep_locked(FileUring *q, FileIo *io)
{
    struct io_uring_sqe *sqe;
    /* Every entry is submitted before the lock is released, so the
     * submission queue is empty here; the loop is only a safeguard. */
    while (!(sqe = io_uring_get_sqe(&q->ring)))
        io_uring_submit(&q->ring);
    switch (io->op) {
    case BH_OP_READ:
        io_uring_prep_readv(sqe, io->s->fd, io->iov, io->niov, io->offset);
        break;
    case BH_OP_WRITE:
        io_uring_prep_writev(sqe, io->s->fd, io->iov, io->niov, io->offset);
        if (io->dsync)
            sqe->rw_flags = RWF_DSYNC;
        break;
    case BH_OP_FLUSH:
        io_uring_prep_fsync(sqe, io->s->fd, IORING_FSYNC_DATASYNC);
        break;
    default:
        g_assert_not_reached();
    }
    io_uring_sqe_set_data(sqe, io);
}

/* Hand what is queued to the kernel, with q->lock held.  io_uring_enter
 * fails only for lack of resources or a signal: both pass. */
static void uring_flush_locked(FileUring *q)
{
    int r;
    while ((r = io_uring_submit(&q->ring)) < 0 &&
           (r == -EINTR || r == -EAGAIN || r == -EBUSY))
        if (r != -EINTR)
            g_usleep(50);
}

void file_uring_submit(FileState *s, FileIo *io)
{
    FileUring *q = s->uring;
    g_mutex_lock(&q->lock);
    while (q->in_flight >= URING_ENTRIES && g_thread_self() != q->thread)
        g_cond_wait(&q->slot, &q->lock);
    q->in_flight++;
    uring_prep_locked(q, io);
    uring_flush_locked(q);
    g_mutex_unlock(&q->lock);
}

/* Completions are taken in batches: one pass over what the kernel has
 * posted, one lock round for the slots they free. */
static gpointer uring_thread(gpointer opaque)
{
    FileUring *q = opaque;
    bool stop = false;

    while (!stop) {
        struct io_uring_cqe *cqes[32];
        unsigned n = io_uring_peek_batch_cqe(&q->ring, cqes, G_N_ELEMENTS(cqes));
        if (n == 0) {
            struct io_uring_cqe *cqe;
            int r = io_uring_wait_cqe(&q->ring, &cqe);
            if (r < 0 && r != -EINTR && r != -EAGAIN)
                g_error("file: io_uring completion wait failed: %s",
                        g_strerror(-r));
            continue;
        }
        unsigned finished = 0;
        for (unsigned i = 0; i < n; i++) {
            FileIo *io = io_uring_cqe_get_data(cqes[i]);
            if (!io) {
                stop = true;   /* the marker of file_uring_cleanup */
            } else if (file_io_finish(io, cqes[i]->res)) {
                finished++;
            } else {
                /* The rest of a short transfer keeps its slot. */
                g_mutex_lock(&q->lock);
                uring_prep_locked(q, io);
                uring_flush_locked(q);
                g_mutex_unlock(&q->lock);
            }
        }
        io_uring_cq_advance(&q->ring, n);
        if (finished) {
            g_mutex_lock(&q->lock);
            q->in_flight -= finished;
            g_cond_broadcast(&q->slot);
            g_mutex_unlock(&q->lock);
        }
    }
    return NULL;
}

int file_uring_init(FileState *s, BhError **errp)
{
    FileUring *q = g_new0(FileUring, 1);
    int r = io_uring_queue_init(URING_ENTRIES, &q->ring, 0);
    if (r < 0) {
        g_free(q);
        return bh_error_set(errp, -r, "aio=io_uring: the kernel refused an "
                            "io_uring for '%s' (%s); use aio=native or "
                            "aio=threads", s->filename, g_strerror(-r));
    }
    g_mutex_init(&q->lock);
    g_cond_init(&q->slot);
    q->thread = g_thread_new("file-uring", uring_thread, q);
    s->uring = q;
    return 0;
}

/* Called at close, when nothing is in flight any more (the core drains
 * the node first). */
void file_uring_cleanup(FileState *s)
{
    FileUring *q = s->uring;
    if (!q)
        return;
    g_mutex_lock(&q->lock);
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&q->ring)))
        io_uring_submit(&q->ring);
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, NULL);
    uring_flush_locked(q);
    g_mutex_unlock(&q->lock);
    g_thread_join(q->thread);
    io_uring_queue_exit(&q->ring);
    g_cond_clear(&q->slot);
    g_mutex_clear(&q->lock);
    g_free(q);
    s->uring = NULL;
}

#else /* !HAVE_LIBURING */

int file_uring_init(FileState *s, BhError **errp)
{
    return bh_error_set(errp, ENOTSUP, "aio=io_uring: this build has no "
                        "io_uring support (liburing was missing); use "
                        "aio=native or aio=threads for '%s'", s->filename);
}

void file_uring_cleanup(FileState *s)
{
}

void file_uring_submit(FileState *s, FileIo *io)
{
    g_assert_not_reached();
}

#endif
