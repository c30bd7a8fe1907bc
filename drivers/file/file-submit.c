/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The file driver's asynchronous entry point (BhDriver.submit).
 *
 * Reads and writes that the kernel can take as they are go to the node's
 * queue, io_uring (file-uring.c) or Linux AIO (file-aio.c), and complete
 * on the queue's completion thread, so one caller can keep many requests
 * in flight.  Everything else runs through the synchronous callbacks on
 * the submitting thread, exactly as without submit:
 *  - every request with aio=threads (BhDriver.submit is one per driver,
 *    not per node, so "no submit" means "the synchronous path, inline");
 *  - O_DIRECT requests whose offset, length or buffers are not aligned
 *    (they need the bounce buffer and read-modify-write of file-io.c);
 *  - discard and write-zeroes (a few fallocate calls, no data moved);
 *  - flush with aio=native (Linux AIO has no fdatasync that filesystems
 *    implement);
 *  - FUA writes once the kernel refused RWF_DSYNC.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>

#include "file.h"

#define ZERO_CHUNK (1u << 20)

/* Write zeros with data when fallocate cannot (the core's sync path does
 * this for file_write_zeroes' -ENOTSUP; submit has to do it itself). */
static int submit_write_zero_data(BhNode *bs, uint64_t offset, uint64_t len,
                                  uint32_t flags, BhError **errp)
{
    FileState *s = bh_node_get_opaque(bs);
    size_t chunk = (size_t)MIN(len, (uint64_t)ZERO_CHUNK);
    void *zeros = NULL;
    int ret = 0;

    if (posix_memalign(&zeros, MAX(MAX(s->align, s->mem_align), 64u),
                       MAX(chunk, (size_t)s->align)) != 0)
        return bh_error_set(errp, ENOMEM, "no memory to write zeroes");
    memset(zeros, 0, chunk);
    for (uint64_t done = 0; done < len && ret == 0; done += chunk) {
        size_t n = (size_t)MIN(len - done, (uint64_t)chunk);
        ret = file_pwrite(bs, zeros, offset + done, n, flags & BH_IO_FUA,
                          errp);
    }
    free(zeros);
    return ret;
}

/* A read or write through file_pread/file_pwrite: one buffer, so several
 * iovecs are gathered (or scattered afterwards). */
static int submit_rw_sync(BhNode *bs, BhRequest *req, BhError **errp)
{
    bool write = bh_request_op(req) == BH_OP_WRITE;
    uint64_t off = bh_request_offset(req), len = bh_request_length(req);
    uint32_t flags = bh_request_flags(req);
    int niov;
    const struct iovec *iov = bh_request_iov(req, &niov);
    if (niov == 1)
        return write ? file_pwrite(bs, iov[0].iov_base, off, len, flags, errp)
                     : file_pread(bs, iov[0].iov_base, off, len, flags, errp);

    uint8_t *buf = g_try_malloc(MAX(len, 1));
    if (!buf)
        return bh_error_set(errp, ENOMEM, "no memory for a %" PRIu64
                            "-byte request", len);
    size_t pos = 0;
    for (int i = 0; write && i < niov; pos += iov[i].iov_len, i++)
        memcpy(buf + pos, iov[i].iov_base, iov[i].iov_len);
    int ret = write ? file_pwrite(bs, buf, off, len, flags, errp)
                    : file_pread(bs, buf, off, len, flags, errp);
    pos = 0;
    for (int i = 0; !write && ret == 0 && i < niov; pos += iov[i].iov_len, i++)
        memcpy(iov[i].iov_base, buf + pos, iov[i].iov_len);
    g_free(buf);
    return ret;
}

/* The request through the synchronous callbacks, completed here. */
static void submit_sync(BhNode *bs, BhRequest *req)
{
    BhError *err = NULL;
    uint64_t off = bh_request_offset(req), len = bh_request_length(req);
    uint32_t flags = bh_request_flags(req);
    int ret = -EINVAL;

    switch (bh_request_op(req)) {
    case BH_OP_READ:
    case BH_OP_WRITE:
        ret = submit_rw_sync(bs, req, &err);
        break;
    case BH_OP_FLUSH:
        ret = file_flush(bs, &err);
        break;
    case BH_OP_DISCARD:
        ret = file_discard(bs, off, len, &err);
        break;
    case BH_OP_WRITE_ZEROES:
        ret = file_write_zeroes(bs, off, len, flags, &err);
        if (ret == -ENOTSUP && !err) {
            if (flags & BH_IO_FAST_ZERO)
                ret = bh_error_set(&err, ENOTSUP, "fast zeroing is not "
                                   "supported by '%s'", bh_node_filename(bs));
            else
                ret = submit_write_zero_data(bs, off, len, flags, &err);
        }
        break;
    }
    if (ret < 0 && err)
        bh_request_error(req, -ret, "%s", bh_error_message(err));
    bh_error_free(err);
    bh_request_complete(req, ret < 0 ? ret : 0);
}

static bool submit_aligned(const FileState *s, uint64_t off, uint64_t len,
                           const struct iovec *iov, int niov)
{
    if (!s->direct)
        return true;
    if ((off | len) & (s->align - 1))
        return false;
    for (int i = 0; i < niov; i++)
        if (((uintptr_t)iov[i].iov_base & (s->mem_align - 1)) ||
            (iov[i].iov_len & (s->align - 1)))
            return false;
    return true;
}

/* A FileIo for req, or NULL when req must take the synchronous path. */
static FileIo *submit_queueable(FileState *s, BhRequest *req)
{
    BhOp op = bh_request_op(req);
    uint64_t off = bh_request_offset(req), len = bh_request_length(req);
    bool fua = bh_request_flags(req) & BH_IO_FUA;
    int niov = 0;
    const struct iovec *iov = NULL;

    if (s->mode == FILE_AIO_THREADS)
        return NULL;
    if (op == BH_OP_FLUSH && !s->uring)
        return NULL;
    if (op == BH_OP_READ || op == BH_OP_WRITE) {
        iov = bh_request_iov(req, &niov);
        if (niov <= 0 || niov > IOV_MAX || len == 0 ||
            !submit_aligned(s, off, len, iov, niov))
            return NULL;
        if (op == BH_OP_WRITE && fua && atomic_load(&s->no_dsync))
            return NULL;
    } else if (op != BH_OP_FLUSH) {
        return NULL;
    }

    FileIo *io = g_malloc0(sizeof(*io) + sizeof(struct iovec) * niov);
    io->req = req;
    io->s = s;
    io->op = op;
    io->dsync = op == BH_OP_WRITE && fua;
    io->offset = off;
    io->left = len;
    io->niov = niov;
    io->iov = io->iov_store;
    if (niov)
        memcpy(io->iov_store, iov, sizeof(struct iovec) * niov);
    return io;
}

void file_submit(BhNode *bs, BhRequest *req)
{
    FileState *s = bh_node_get_opaque(bs);
    FileIo *io = submit_queueable(s, req);

    if (!io)
        submit_sync(bs, req);
    else if (s->uring)
        file_uring_submit(s, io);
    else
        file_aio_queue_submit(s, io);
}

/* Drop the first n bytes of what io still has to transfer. */
static void file_io_advance(FileIo *io, uint64_t n)
{
    io->offset += n;
    io->left -= n;
    while (n && io->niov) {
        if (n >= io->iov->iov_len) {
            n -= io->iov->iov_len;
            io->iov++;
            io->niov--;
        } else {
            io->iov->iov_base = (uint8_t *)io->iov->iov_base + n;
            io->iov->iov_len -= n;
            n = 0;
        }
    }
}

static void file_io_complete(FileIo *io, int ret)
{
    FileState *s = io->s;
    BhRequest *req = io->req;
    uint64_t off = bh_request_offset(req), len = bh_request_length(req);

    if (ret == 0 && io->op == BH_OP_WRITE && io->sync_after &&
        fdatasync(s->fd) < 0)
        ret = -errno;
    if (ret == 0 && io->op == BH_OP_WRITE && !s->is_blockdev)
        file_size_grow(s, (int64_t)(off + len));
    if (ret < 0) {
        if (io->op == BH_OP_FLUSH)
            bh_request_error(req, -ret, "flush of '%s' failed: %s",
                             s->filename, g_strerror(-ret));
        else
            bh_request_error(req, -ret, "%s of %" PRIu64 " bytes at offset %"
                             PRIu64 " %s '%s' failed: %s",
                             io->op == BH_OP_READ ? "read" : "write", len, off,
                             io->op == BH_OP_READ ? "from" : "to", s->filename,
                             g_strerror(-ret));
    }
    g_free(io);
    bh_request_complete(req, ret);
}

bool file_io_finish(FileIo *io, ssize_t res)
{
    FileState *s = io->s;

    if (res == -EINTR || res == -EAGAIN)
        return false;   /* nothing moved: queue it again */
    if (io->op == BH_OP_WRITE && io->dsync &&
        (res == -EINVAL || res == -EOPNOTSUPP)) {
        /* Kernel without RWF_DSYNC on this path: plain writes and one
         * fdatasync at the end; later FUA writes go the sync way. */
        atomic_store(&s->no_dsync, true);
        io->dsync = false;
        io->sync_after = true;
        return false;
    }
    if (res < 0 || io->op == BH_OP_FLUSH) {
        file_io_complete(io, res < 0 ? (int)res : 0);
        return true;
    }
    if ((uint64_t)res > io->left)
        res = (ssize_t)io->left;
    file_io_advance(io, (uint64_t)res);
    if (io->left == 0) {
        file_io_complete(io, 0);
        return true;
    }
    bool aligned = submit_aligned(s, io->offset, io->left, io->iov, io->niov);
    if (io->op == BH_OP_READ && (res == 0 || !aligned)) {
        /* The end of the file (an O_DIRECT read stops short only there):
         * the rest reads as zeros, as in file_pread. */
        for (int i = 0; i < io->niov; i++)
            memset(io->iov[i].iov_base, 0, io->iov[i].iov_len);
        file_io_complete(io, 0);
        return true;
    }
    if (io->op == BH_OP_WRITE && (res == 0 || !aligned)) {
        file_io_complete(io, -ENOSPC);
        return true;
    }
    return false;
}
