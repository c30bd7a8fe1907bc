/*
 * aio=native for the file driver: each read and write is submitted as one
 * Linux AIO request (io_submit) and waited for (io_getevents), instead of
 * a pread/pwrite on the worker thread.  With O_DIRECT the kernel then
 * queues the request to the device without the page cache or a blocking
 * syscall path, which is what qemu's aio=native means.
 *
 * Requests come from many worker threads at once, so each request takes
 * an AIO context from a small pool (created on demand, all destroyed at
 * close): its completion can only be the one it waits for.  The raw
 * syscalls are used, so no library is needed; a kernel without AIO, or a
 * system whose aio-max-nr is exhausted, is reported when the file is
 * opened, never by falling back to threads.
 */
#include <errno.h>
#include <string.h>
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
