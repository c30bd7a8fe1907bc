/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aio=native for the file driver, two ways.  Through submit (BhDriver.
 * submit), reads and writes go to one Linux AIO context per node and a
 * completion thread finishes them, so a caller keeps many in flight; see
 * the queue at the end of this file.  Through the synchronous callbacks,
 * each read and write is submitted as one Linux AIO request (io_submit)
 * and waited for (io_getevents), instead of a pread/pwrite on the worker
 * thread.  With O_DIRECT the kernel then queues the request to the device
 * without the page cache or a blocking syscall path, which is what qemu's
 * aio=native means.
 *
 * On the synchronous path requests come from many worker threads at once,
 * so each request takes an AIO context from a small pool (created on
 * demand, all destroyed at close): its completion can only be the one it
 * waits for.  The raw syscalls are used, so no library is needed; a kernel
 * without AIO, or a system whose aio-max-nr is exhausted, is reported when
 * the file is opened with aio=native (without aio=, file.c goes on to
 * threads).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/aio_abi.h>

#include "file.h"
#include <blkhost/glib.h>

/* Contexts kept for reuse; more are created when all are busy. */
#define AIO_POOL_KEEP 64

struct FileAio {
    GMutex lock;
    GArray *free_ctx;  /* aio_context_t */
};

static long aio_setup(aio_context_t *ctx)
{
    *ctx = 0;
    return syscall(SYS_io_setup, 1, ctx);
}

static void aio_destroy(aio_context_t ctx)
{
    syscall(SYS_io_destroy, ctx);
}

int file_aio_init(FileState *s, BhError **errp)
{
    aio_context_t ctx;
    if (aio_setup(&ctx) < 0) {
        int e = errno;
        return bh_error_set(errp, e == ENOSYS ? ENOTSUP : e,
                            "aio=native: Linux AIO is not available for "
                            "'%s' (io_setup: %s); use aio=threads",
                            s->filename, g_strerror(e));
    }
    s->aio = g_new0(FileAio, 1);
    g_mutex_init(&s->aio->lock);
    s->aio->free_ctx = g_array_new(FALSE, FALSE, sizeof(aio_context_t));
    g_array_append_val(s->aio->free_ctx, ctx);
    return 0;
}

void file_aio_cleanup(FileState *s)
{
    if (!s->aio)
        return;
    for (guint i = 0; i < s->aio->free_ctx->len; i++)
        aio_destroy(g_array_index(s->aio->free_ctx, aio_context_t, i));
    g_array_free(s->aio->free_ctx, TRUE);
    g_mutex_clear(&s->aio->lock);
    g_free(s->aio);
    s->aio = NULL;
}

static int aio_get(FileAio *a, aio_context_t *ctx)
{
    g_mutex_lock(&a->lock);
    if (a->free_ctx->len) {
        *ctx = g_array_index(a->free_ctx, aio_context_t, a->free_ctx->len - 1);
        g_array_set_size(a->free_ctx, a->free_ctx->len - 1);
        g_mutex_unlock(&a->lock);
        return 0;
    }
    g_mutex_unlock(&a->lock);
    return aio_setup(ctx) < 0 ? -errno : 0;
}

static void aio_put(FileAio *a, aio_context_t ctx)
{
    g_mutex_lock(&a->lock);
    if (a->free_ctx->len < AIO_POOL_KEEP) {
        g_array_append_val(a->free_ctx, ctx);
        ctx = 0;
    }
    g_mutex_unlock(&a->lock);
    if (ctx)
        aio_destroy(ctx);
}

/* One transfer of up to len bytes; returns the byte count or -errno, like
 * pread/pwrite (short counts are the caller's to loop over). */
ssize_t file_aio_rw(FileState *s, bool write, void *buf, size_t len,
                    uint64_t off, bool dsync)
{
    aio_context_t ctx;
    int ret = aio_get(s->aio, &ctx);
    if (ret < 0)
        return ret;

    struct iocb cb;
    memset(&cb, 0, sizeof(cb));
    cb.aio_fildes = (uint32_t)s->fd;
    cb.aio_lio_opcode = write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
    cb.aio_buf = (uint64_t)(uintptr_t)buf;
    cb.aio_nbytes = len;
    cb.aio_offset = (int64_t)off;
#ifdef RWF_DSYNC
    if (dsync)
        cb.aio_rw_flags = RWF_DSYNC;
#endif
    struct iocb *cbs[1] = { &cb };
    ssize_t res;
    long n;
    do {
        n = syscall(SYS_io_submit, ctx, 1L, cbs);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
        res = n < 0 ? -errno : -EIO;
        goto out;
    }
    struct io_event ev;
    do {
        n = syscall(SYS_io_getevents, ctx, 1L, 1L, &ev, NULL);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
        /* The request may still be in flight, using buf: this context
         * cannot be reused, and the caller must not free buf early.
         * io_destroy waits for it. */
        res = n < 0 ? -errno : -EIO;
        aio_destroy(ctx);
        return res;
    }
    res = (ssize_t)ev.res;
out:
    aio_put(s->aio, ctx);
    return res;
}

/*
 * The queue submit uses.  One context per node (io_submit may be called
 * from many threads on one context), AIO_QUEUE_DEPTH requests in flight
 * at most: a submitter beyond that waits for a completion, except the
 * completion thread itself, which may pass it by the few requests a
 * callback submits (the context has room for twice the cap).  To stop the
 * completion thread, a poll request on an eventfd is kept queued; writing
 * the eventfd completes it with no FileIo attached.
 */
#define AIO_QUEUE_DEPTH 128

struct FileAioQueue {
    aio_context_t ctx;
    int stop_fd;
    struct iocb stop_cb;
    GMutex lock;
    GCond slot;
    unsigned in_flight;
    GThread *thread;
};

/* Queue io (again); returns 0 or -errno from io_submit. */
static int aio_queue_push(FileAioQueue *q, FileIo *io)
{
    struct iocb *cb = &io->cb;
    memset(cb, 0, sizeof(*cb));
    cb->aio_data = (uint64_t)(uintptr_t)io;
    cb->aio_fildes = (uint32_t)io->s->fd;
    cb->aio_lio_opcode = io->op == BH_OP_WRITE ? IOCB_CMD_PWRITEV
                                               : IOCB_CMD_PREADV;
    cb->aio_buf = (uint64_t)(uintptr_t)io->iov;
    cb->aio_nbytes = (uint64_t)io->niov;
    cb->aio_offset = (int64_t)io->offset;
#ifdef RWF_DSYNC
    if (io->dsync)
        cb->aio_rw_flags = RWF_DSYNC;
#endif
    struct iocb *cbs[1] = { cb };
    long n;
    do {
        n = syscall(SYS_io_submit, q->ctx, 1L, cbs);
    } while (n < 0 && (errno == EINTR || errno == EAGAIN));
    return n == 1 ? 0 : n < 0 ? -errno : -EIO;
}

static void aio_queue_done(FileAioQueue *q)
{
    g_mutex_lock(&q->lock);
    q->in_flight--;
    g_cond_signal(&q->slot);
    g_mutex_unlock(&q->lock);
}

/* Feed a result to io until it is finished or queued again. */
static void aio_queue_result(FileAioQueue *q, FileIo *io, ssize_t res)
{
    while (!file_io_finish(io, res)) {
        res = aio_queue_push(q, io);
        if (res == 0)
            return;
    }
    aio_queue_done(q);
}

void file_aio_queue_submit(FileState *s, FileIo *io)
{
    FileAioQueue *q = s->aioq;
    g_mutex_lock(&q->lock);
    while (q->in_flight >= AIO_QUEUE_DEPTH && g_thread_self() != q->thread)
        g_cond_wait(&q->slot, &q->lock);
    q->in_flight++;
    g_mutex_unlock(&q->lock);
    int r = aio_queue_push(q, io);
    if (r < 0)
        aio_queue_result(q, io, r);
}

static gpointer aio_queue_thread(gpointer opaque)
{
    FileAioQueue *q = opaque;
    struct io_event ev[32];
    for (;;) {
        long n = syscall(SYS_io_getevents, q->ctx, 1L, 32L, ev, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            g_error("file: aio=native: io_getevents failed: %s",
                    g_strerror(errno));
        }
        for (long i = 0; i < n; i++) {
            FileIo *io = (FileIo *)(uintptr_t)ev[i].data;
            if (!io)
                return NULL;   /* the stop request */
            aio_queue_result(q, io, (ssize_t)(int64_t)ev[i].res);
        }
    }
}

int file_aio_queue_init(FileState *s, BhError **errp)
{
    FileAioQueue *q = g_new0(FileAioQueue, 1);
    q->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->stop_fd < 0) {
        int e = errno;
        g_free(q);
        return bh_error_set_errno(errp, e, "aio=native: no eventfd for '%s'",
                                  s->filename);
    }
    if (syscall(SYS_io_setup, 2 * AIO_QUEUE_DEPTH + 1, &q->ctx) < 0) {
        int e = errno;
        close(q->stop_fd);
        g_free(q);
        return bh_error_set(errp, e == ENOSYS ? ENOTSUP : e,
                            "aio=native: Linux AIO is not available for "
                            "'%s' (io_setup: %s); use aio=threads",
                            s->filename, g_strerror(e));
    }
    q->stop_cb.aio_fildes = (uint32_t)q->stop_fd;
    q->stop_cb.aio_lio_opcode = IOCB_CMD_POLL;
    q->stop_cb.aio_buf = POLLIN;
    struct iocb *cbs[1] = { &q->stop_cb };
    if (syscall(SYS_io_submit, q->ctx, 1L, cbs) != 1) {
        int e = errno;
        aio_destroy(q->ctx);
        close(q->stop_fd);
        g_free(q);
        return bh_error_set(errp, e, "aio=native: this kernel's Linux AIO "
                            "cannot poll (%s); use aio=threads",
                            g_strerror(e));
    }
    g_mutex_init(&q->lock);
    g_cond_init(&q->slot);
    q->thread = g_thread_new("file-aio", aio_queue_thread, q);
    s->aioq = q;
    return 0;
}

/* At close, with nothing in flight (the core drains the node first). */
void file_aio_queue_cleanup(FileState *s)
{
    FileAioQueue *q = s->aioq;
    if (!q)
        return;
    uint64_t one = 1;
    if (write(q->stop_fd, &one, sizeof(one)) != sizeof(one))
        g_warning("file: aio=native: could not stop the completion thread");
    g_thread_join(q->thread);
    aio_destroy(q->ctx);
    close(q->stop_fd);
    g_cond_clear(&q->slot);
    g_mutex_clear(&q->lock);
    g_free(q);
    s->aioq = NULL;
}
