/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The request path, written once.  Every request — bh_node_pread & co.
 * on the caller's stack, or a BhRequest from bh_node_submit (request.c)
 * — is admitted by drain.c and then goes through the steps here:
 *   - checks: ranges, overflow, read-only;
 *   - emulation of what a driver lacks or did not declare in
 *     request_flags, so drivers stay short:
 *     - FUA without BH_CAP_FUA or undeclared: the write, then a flush;
 *     - cache=writethrough/directsync: every write is FUA;
 *     - cache=unsafe: flushes and FUA are dropped;
 *     - write_zeroes missing or -ENOTSUP: zeros are written (unless the
 *       caller asked for a fast zero, which then fails with ENOTSUP, as
 *       it does at once for a driver not declaring BH_IO_FAST_ZERO);
 *     - BH_IO_MAY_UNMAP reaches a driver that declares it, and only
 *       with discard=unmap;
 *     - BH_IO_COMPRESSED on a driver that does not declare it fails with
 *       ENOTSUP (writing plainly would lose what the caller asked for);
 *       its alignment rules are the driver's, which knows its clusters;
 *     - discard=ignore (the default, as in qemu): discards succeed unseen;
 *     - detect-zeroes: a write of all zeros becomes write_zeroes;
 *     - a file whose format was guessed as raw keeps probing as raw: what
 *       lands in its first 512 bytes is checked first (probe.c);
 *   - the driver: its submit (waited for here), or its synchronous
 *     callback, serialized for BH_THREAD_SERIALIZE;
 *   - what comes after: the flush of an emulated FUA, the zero-writing
 *     loop.
 * The steps run on the caller's thread; request.c decides which thread
 * that is.  For a synchronous driver called synchronously nothing here
 * allocates on the success path.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "core-priv.h"

#define ZERO_CHUNK (1024 * 1024)

static const uint8_t *io_zero_buffer(void)
{
    static gsize once;
    static uint8_t *zeros;
    if (g_once_init_enter(&once)) {
        zeros = g_malloc0(ZERO_CHUNK);
        g_once_init_leave(&once, 1);
    }
    return zeros;
}

static inline void io_lock(BhNode *bs)
{
    if (bs->serialize)
        g_mutex_lock(&bs->serial_lock);
}

static inline void io_unlock(BhNode *bs)
{
    if (bs->serialize)
        g_mutex_unlock(&bs->serial_lock);
}

/* A driver call made as a request to a submit driver, waited for. */
static int io_drv_wait(BhNode *bs, BhOp op, void *buf, uint64_t offset,
                       uint64_t len, uint32_t flags, BhError **errp)
{
    BhRequest req;
    bh_request_init(&req, bs, op, offset, len, buf, flags);
    return bh_request_submit_wait(&req, errp);
}

/* The driver's read or write: submit, or the callback.  The driver only
 * sees the flags it declared. */
static int io_drv_rw(BhNode *bs, BhOp op, void *buf, uint64_t offset,
                     size_t len, uint32_t flags, BhError **errp)
{
    flags &= bs->drv->request_flags;
    if (bs->drv->submit)
        return io_drv_wait(bs, op, buf, offset, len, flags, errp);
    io_lock(bs);
    int r = op == BH_OP_READ ?
            bs->drv->pread(bs, buf, offset, len, flags, errp) :
            bs->drv->pwrite(bs, buf, offset, len, flags, errp);
    io_unlock(bs);
    return r;
}

/* Refuse [offset, offset+len) unless it lies within the node.  Growable
 * nodes (the file under a format) only refuse overflow. */
static int io_check_range(BhNode *bs, const char *what, uint64_t offset,
                          uint64_t len, int err, BhError **errp)
{
    if (offset + len < offset)
        return bh_error_set(errp, EINVAL, "%s on '%s': offset %" PRIu64
                            " + length %" PRIu64 " overflows", what,
                            bs->filename, offset, len);
    if (bs->growable)
        return 0;
    uint64_t size = (uint64_t)MAX(bs->size, 0);
    if (offset > size || len > size - offset)
        return bh_error_set(errp, err, "%s past the end of '%s': offset %"
                            PRIu64 " + length %" PRIu64 " > size %" PRIu64,
                            what, bs->filename, offset, len, size);
    return 0;
}

static int io_check_writable(BhNode *bs, const char *what, BhError **errp)
{
    if (bs->readonly)
        return bh_error_set(errp, EPERM, "%s on '%s': the node is read-only",
                            what, bs->filename);
    return 0;
}

static bool io_is_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    /* Check a short head byte by byte, then let memcmp compare the buffer
     * with itself shifted: all-zero iff the head is zero and it matches. */
    size_t head = MIN(len, 16);
    for (size_t i = 0; i < head; i++)
        if (p[i])
            return false;
    return len <= 16 || memcmp(p, p + 16, len - 16) == 0;
}

/* Flush the driver (or, lacking a callback, its children). */
static int io_flush_raw(BhNode *bs, BhError **errp)
{
    if (bs->cache == BH_CACHE_UNSAFE)
        return 0;
    if (bs->drv->submit)
        return io_drv_wait(bs, BH_OP_FLUSH, NULL, 0, 0, 0, errp);
    if (!bs->drv->flush)
        return bh_node_flush_children(bs, errp);
    io_lock(bs);
    int r = bs->drv->flush(bs, errp);
    io_unlock(bs);
    return r;
}

int bh_node_flush_children(BhNode *bs, BhError **errp)
{
    for (guint i = 0; i < bs->children->len; i++) {
        BhChild *c = bs->children->pdata[i];
        if (c->node->readonly)
            continue;
        int r = bh_node_flush(c->node, errp);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Which FUA a driver call gets, and whether the core must flush after. */
static uint32_t io_fua_flags(BhNode *bs, uint32_t flags, bool *flush_after)
{
    *flush_after = false;
    if (bs->cache == BH_CACHE_WRITETHROUGH || bs->cache == BH_CACHE_DIRECTSYNC)
        flags |= BH_IO_FUA;
    if (bs->cache == BH_CACHE_UNSAFE)
        flags &= ~BH_IO_FUA;
    if ((flags & BH_IO_FUA) && !((bs->caps & BH_CAP_FUA) &&
                                 (bs->drv->request_flags & BH_IO_FUA))) {
        flags &= ~BH_IO_FUA;
        *flush_after = true;
    }
    return flags;
}

static int io_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                    uint32_t flags, BhError **errp)
{
    int r = io_check_range(bs, "read", offset, len, EINVAL, errp);
    if (r < 0 || len == 0)
        return r;
    return io_drv_rw(bs, BH_OP_READ, buf, offset, len, flags, errp);
}

/* The driver's write_zeroes; -ENOTSUP when it has none. */
static int io_drv_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                         uint32_t flags, BhError **errp)
{
    flags &= bs->drv->request_flags;
    if (bs->drv->submit)
        return io_drv_wait(bs, BH_OP_WRITE_ZEROES, NULL, offset, len, flags,
                           errp);
    if (!bs->drv->write_zeroes)
        return -ENOTSUP;
    io_lock(bs);
    int r = bs->drv->write_zeroes(bs, offset, len, flags, errp);
    io_unlock(bs);
    return r;
}

/* Zeroes for [offset, offset+len), by the driver or by writing zeros. */
static int io_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                           uint32_t flags, BhError **errp)
{
    const uint32_t declared = bs->drv->request_flags;
    bool flush_after;
    int r = -ENOTSUP;

    if (bs->discard != BH_DISCARD_UNMAP || !(declared & BH_IO_MAY_UNMAP))
        flags &= ~BH_IO_MAY_UNMAP;
    flags = io_fua_flags(bs, flags, &flush_after);
    /* A driver that did not declare fast zeroes cannot promise one. */
    if (!(flags & BH_IO_FAST_ZERO) || (declared & BH_IO_FAST_ZERO))
        r = io_drv_zeroes(bs, offset, len, flags, errp);
    if (r == -ENOTSUP) {
        if (flags & BH_IO_FAST_ZERO)
            return bh_error_set(errp, ENOTSUP, "fast zeroing is not "
                                "supported by '%s'", bs->filename);
        if (errp)
            bh_error_clear(errp);
        const uint8_t *zeros = io_zero_buffer();
        uint32_t wflags = flags & BH_IO_FUA;
        r = 0;
        for (uint64_t done = 0; done < len && r == 0;) {
            size_t n = (size_t)MIN(len - done, (uint64_t)ZERO_CHUNK);
            r = io_drv_rw(bs, BH_OP_WRITE, (void *)zeros, offset + done, n,
                          wflags, errp);
            done += n;
        }
    }
    if (r == 0 && flush_after)
        r = io_flush_raw(bs, errp);
    return r;
}

/* The write itself, once checked: detect-zeroes, FUA, the driver. */
static int io_pwrite(BhNode *bs, const void *buf, uint64_t offset, size_t len,
                     uint32_t flags, BhError **errp)
{
    if (bs->detect_zeroes != BH_DETECT_ZEROES_OFF && io_is_zero(buf, len)) {
        uint32_t zflags = flags & BH_IO_FUA;
        if (bs->detect_zeroes == BH_DETECT_ZEROES_UNMAP)
            zflags |= BH_IO_MAY_UNMAP;
        return io_write_zeroes(bs, offset, len, zflags, errp);
    }
    bool flush_after;
    flags = io_fua_flags(bs, flags, &flush_after);
    int r = io_drv_rw(bs, BH_OP_WRITE, (void *)buf, offset, len, flags, errp);
    if (r == 0 && flush_after)
        r = io_flush_raw(bs, errp);
    return r;
}

/* Does this request reach the probed head of a guarded file? */
static bool io_guarded(const BhNode *bs, uint64_t offset, uint64_t len)
{
    return bs->probe_guard && len && offset < BH_PROBE_BYTES;
}

/*
 * A write into the guarded head: probe the head it would leave, then
 * write under the same lock, so two partial writes cannot each pass alone
 * and build a header together.  The head is written from the checked
 * copy, in case the caller's buffer changes under us.
 */
static int io_pwrite_guarded(BhNode *bs, const uint8_t *buf, uint64_t offset,
                             size_t len, uint32_t flags, BhError **errp)
{
    uint8_t head[BH_PROBE_BYTES];
    size_t n = (size_t)MIN(len, BH_PROBE_BYTES - offset);

    g_mutex_lock(&bs->probe_lock);
    int r = bh_probe_guard_check(bs, "write", offset, len, buf, head, errp);
    if (r == 0)
        r = io_pwrite(bs, head + offset, offset, n, flags, errp);
    if (r == 0 && len > n)
        r = io_pwrite(bs, buf + n, offset + n, len - n, flags, errp);
    g_mutex_unlock(&bs->probe_lock);
    return r;
}

/*
 * Zeros over a guarded head (write-zeroes, or what a discard leaves):
 * zeros alone never probe, but zeros beside old bytes might.  On success
 * probe_lock stays held for the caller's request; it unlocks after.
 */
static int io_guard_zeroes(BhNode *bs, const char *what, uint64_t offset,
                           uint64_t len, BhError **errp)
{
    uint8_t head[BH_PROBE_BYTES];
    g_mutex_lock(&bs->probe_lock);
    int r = bh_probe_guard_check(bs, what, offset, len, NULL, head, errp);
    if (r < 0)
        g_mutex_unlock(&bs->probe_lock);
    return r;
}

/* A compressed write needs a driver that can do it. */
static int io_check_compressed(BhNode *bs, uint32_t flags, BhError **errp)
{
    if ((flags & BH_IO_COMPRESSED) &&
        !(bs->drv->request_flags & BH_IO_COMPRESSED))
        return bh_error_set(errp, ENOTSUP, "compressed write on '%s': the %s "
                            "driver cannot write compressed data",
                            bs->filename, bs->plugin->name);
    return 0;
}

/* The checks every request that changes data passes first. */
static int io_check_change(BhNode *bs, const char *what, uint64_t offset,
                           uint64_t len, int range_err, BhError **errp)
{
    int r = io_check_writable(bs, what, errp);
    if (r == 0)
        r = io_check_range(bs, what, offset, len, range_err, errp);
    return r;
}

static int io_pwrite_checked(BhNode *bs, const void *buf, uint64_t offset,
                             size_t len, uint32_t flags, BhError **errp)
{
    int r = io_check_change(bs, "write", offset, len, ENOSPC, errp);
    if (r == 0)
        r = io_check_compressed(bs, flags, errp);
    if (r < 0 || len == 0)
        return r;
    if (io_guarded(bs, offset, len))
        return io_pwrite_guarded(bs, buf, offset, len, flags, errp);
    return io_pwrite(bs, buf, offset, len, flags, errp);
}

static int io_zeroes_checked(BhNode *bs, uint64_t offset, uint64_t len,
                             uint32_t flags, BhError **errp)
{
    int r = io_check_change(bs, "write zeroes", offset, len, ENOSPC, errp);
    if (r < 0 || len == 0)
        return r;
    if (!io_guarded(bs, offset, len))
        return io_write_zeroes(bs, offset, len, flags, errp);
    r = io_guard_zeroes(bs, "write zeroes", offset, len, errp);
    if (r < 0)
        return r;
    r = io_write_zeroes(bs, offset, len, flags, errp);
    g_mutex_unlock(&bs->probe_lock);
    return r;
}

static int io_flush(BhNode *bs, BhError **errp)
{
    if (bs->readonly)
        return 0;
    return io_flush_raw(bs, errp);
}

static int io_discard(BhNode *bs, uint64_t offset, uint64_t len,
                      BhError **errp)
{
    int r = io_check_change(bs, "discard", offset, len, EINVAL, errp);
    if (r < 0 || len == 0)
        return r;
    /* Discard is advisory: ignoring it (the default, as in qemu) or having
     * no callback is success. */
    if (bs->discard != BH_DISCARD_UNMAP ||
        (!bs->drv->discard && !bs->drv->submit))
        return 0;
    /* A discard leaves the old bytes or zeros: check the zeros. */
    bool guarded = io_guarded(bs, offset, len);
    if (guarded && (r = io_guard_zeroes(bs, "discard", offset, len,
                                        errp)) < 0)
        return r;
    if (bs->drv->submit) {
        r = io_drv_wait(bs, BH_OP_DISCARD, NULL, offset, len, 0, errp);
    } else {
        io_lock(bs);
        r = bs->drv->discard(bs, offset, len, errp);
        io_unlock(bs);
    }
    if (guarded)
        g_mutex_unlock(&bs->probe_lock);
    if (r == -ENOTSUP) {
        if (errp)
            bh_error_clear(errp);
        r = 0;
    }
    return r;
}

/* The bytes of a request's iovec array, for checks. */
static uint64_t io_iov_bytes(const BhRequest *req)
{
    uint64_t n = 0;
    for (int i = 0; i < req->niov; i++)
        n += req->iov[i].iov_len;
    return n;
}

/* Between a request's buffers and one linear copy of them. */
static void io_iov_copy(const BhRequest *req, uint8_t *linear, bool to_iov)
{
    for (int i = 0; i < req->niov; i++) {
        const struct iovec *v = &req->iov[i];
        if (to_iov)
            memcpy(v->iov_base, linear, v->iov_len);
        else
            memcpy(linear, v->iov_base, v->iov_len);
        linear += v->iov_len;
    }
}

int bh_io_run(BhRequest *req, BhError **errp)
{
    BhNode *bs = req->bs;
    const bool rw = req->op == BH_OP_READ || req->op == BH_OP_WRITE;
    void *buf = req->niov == 1 ? req->iov[0].iov_base : NULL;
    g_autofree uint8_t *bounce = NULL;
    int r;

    if (rw && io_iov_bytes(req) != req->len)
        return bh_error_set(errp, EINVAL, "request on '%s': length %" PRIu64
                            " is not that of its buffers (%" PRIu64 ")",
                            bs->filename, req->len, io_iov_bytes(req));
    /* The synchronous steps take one buffer: a vectored request gets a
     * linear copy (asynchronous callers only; one buffer is the rule). */
    if (rw && req->niov > 1) {
        bounce = g_malloc(req->len);
        buf = bounce;
        if (req->op == BH_OP_WRITE)
            io_iov_copy(req, bounce, false);
    }
    switch (req->op) {
    case BH_OP_READ:
        r = io_pread(bs, buf, req->offset, req->len, req->flags, errp);
        if (r == 0 && bounce)
            io_iov_copy(req, bounce, true);
        return r;
    case BH_OP_WRITE:
        return io_pwrite_checked(bs, buf, req->offset, req->len, req->flags,
                                 errp);
    case BH_OP_FLUSH:
        return io_flush(bs, errp);
    case BH_OP_DISCARD:
        return io_discard(bs, req->offset, req->len, errp);
    case BH_OP_WRITE_ZEROES:
        return io_zeroes_checked(bs, req->offset, req->len, req->flags, errp);
    }
    return bh_error_set(errp, EINVAL, "request on '%s': unknown op %d",
                        bs->filename, (int)req->op);
}

/*
 * An asynchronous request on a submit driver that needs none of the
 * synchronous steps: checked here, then the driver's.  A FUA the driver
 * lacks becomes a flush submitted after the write (request.c).  What
 * needs more (zeroes, discards, detect-zeroes, the probe guard) runs
 * bh_io_run on the pool: false.
 */
bool bh_io_submit_direct(BhRequest *req)
{
    BhNode *bs = req->bs;
    BhError *err = NULL;
    bool flush_after = false;
    int r = 0;

    switch (req->op) {
    case BH_OP_READ:
        r = io_check_range(bs, "read", req->offset, req->len, EINVAL, &err);
        break;
    case BH_OP_WRITE:
        if (io_guarded(bs, req->offset, req->len) ||
            bs->detect_zeroes != BH_DETECT_ZEROES_OFF)
            return false;
        r = io_check_change(bs, "write", req->offset, req->len, ENOSPC,
                            &err);
        if (r == 0)
            r = io_check_compressed(bs, req->flags, &err);
        req->drv_flags = io_fua_flags(bs, req->flags, &flush_after) &
                         bs->drv->request_flags;
        break;
    case BH_OP_FLUSH:
        if (bs->readonly || bs->cache == BH_CACHE_UNSAFE) {
            bh_request_finish(req, 0);
            return true;
        }
        req->drv_flags = 0;
        break;
    default:
        return false;
    }
    if (r == 0 && io_iov_bytes(req) != req->len)
        r = bh_error_set(&err, EINVAL, "request on '%s': length %" PRIu64
                         " is not that of its buffers", bs->filename,
                         req->len);
    if (r < 0 || req->len == 0) {
        req->err = g_steal_pointer(&err);
        bh_request_finish(req, r);
        return true;
    }
    req->then_flush = flush_after;
    bs->drv->submit(bs, req);
    return true;
}

/* ---- the synchronous API: one request on the stack, run here ---- */

static int io_sync(BhNode *bs, BhOp op, void *buf, uint64_t offset,
                   uint64_t len, uint32_t flags, BhError **errp)
{
    BhRequest req;
    bh_request_init(&req, bs, op, offset, len, buf, flags);
    bh_drain_enter(bs);
    int r = bh_io_run(&req, errp);
    bh_drain_leave(bs);
    return r;
}

int bh_node_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                  uint32_t flags, BhError **errp)
{
    return io_sync(bs, BH_OP_READ, buf, offset, len, flags, errp);
}

int bh_node_pwrite(BhNode *bs, const void *buf, uint64_t offset, size_t len,
                   uint32_t flags, BhError **errp)
{
    return io_sync(bs, BH_OP_WRITE, (void *)buf, offset, len, flags, errp);
}

int bh_node_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                         uint32_t flags, BhError **errp)
{
    return io_sync(bs, BH_OP_WRITE_ZEROES, NULL, offset, len, flags, errp);
}

int bh_node_flush(BhNode *bs, BhError **errp)
{
    return io_sync(bs, BH_OP_FLUSH, NULL, 0, 0, 0, errp);
}

int bh_node_discard(BhNode *bs, uint64_t offset, uint64_t len, BhError **errp)
{
    return io_sync(bs, BH_OP_DISCARD, NULL, offset, len, 0, errp);
}

static int io_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                           uint64_t *pnum, uint32_t *status, BhError **errp)
{
    int r = io_check_range(bs, "block status", offset, len, EINVAL, errp);
    if (r < 0)
        return r;
    *pnum = len;
    *status = 0;
    if (len == 0 || !bs->drv->block_status)
        return 0;
    io_lock(bs);
    r = bs->drv->block_status(bs, offset, len, pnum, status, errp);
    io_unlock(bs);
    if (r < 0)
        return r;
    /* A driver must make progress and stay inside the request. */
    if (*pnum == 0 || *pnum > len)
        *pnum = *pnum ? len : 1;
    return 0;
}

/* Not a request, but it reads metadata: drained like one. */
int bh_node_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                         uint64_t *pnum, uint32_t *status, BhError **errp)
{
    bh_drain_enter(bs);
    int r = io_block_status(bs, offset, len, pnum, status, errp);
    bh_drain_leave(bs);
    return r;
}

/* One layer's answer for bh_node_block_map.  Without a block_map
 * callback: a protocol holds every byte at the same offset of itself (as
 * QEMU's protocol drivers say), and a format's block_status is taken as
 * it is, with no host offset. */
static int io_layer_map(BhNode *bs, uint64_t offset, uint64_t len,
                        uint64_t *pnum, uint32_t *flags, uint64_t *map,
                        BhNode **file, BhError **errp)
{
    uint32_t st = 0;
    int r;

    for (;;) {
        *flags = 0;
        *pnum = len;
        if (!bs->drv->block_map)
            break;
        io_lock(bs);
        r = bs->drv->block_map(bs, offset, len, pnum, flags, map, file, errp);
        io_unlock(bs);
        if (r < 0)
            return r;
        if (*pnum == 0 || *pnum > len)
            *pnum = *pnum ? len : 1;
        if (!(*flags & BH_MAP_RAW)) {
            /* Data the driver says may be a hole on the host (a
             * preallocated image): ask the file, as QEMU does.  Bytes past
             * the file's end read as zeros; otherwise the file's answer
             * also bounds the length. */
            if ((*flags & (BH_MAP_RECURSE | BH_MAP_DATA | BH_MAP_OFFSET |
                           BH_MAP_ZERO)) ==
                (BH_MAP_RECURSE | BH_MAP_DATA | BH_MAP_OFFSET) &&
                *file && *file != bs) {
                int64_t fsize = bh_node_size(*file);
                uint64_t fnum;
                if (fsize >= 0 && *map >= (uint64_t)fsize) {
                    *flags |= BH_MAP_ZERO;
                } else if (bh_node_block_status(*file, *map,
                        fsize >= 0 ? MIN(*pnum, (uint64_t)fsize - *map) : *pnum,
                        &fnum, &st, NULL) == 0) {
                    bool eof = fsize >= 0 && *map + fnum >= (uint64_t)fsize;
                    if (eof && (st & BH_BLOCK_ZERO)) {
                        *flags |= BH_MAP_ZERO;
                    } else {
                        *pnum = fnum;
                        if (st & BH_BLOCK_ZERO)
                            *flags |= BH_MAP_ZERO;
                    }
                }
            }
            *flags &= ~BH_MAP_RECURSE;
            return 0;
        }
        /* A pass-through format: the layer below answers for it. */
        bs = *file;
        offset = *map;
        len = *pnum;
    }
    r = bh_node_block_status(bs, offset, len, pnum, &st, errp);
    if (r < 0)
        return r;
    *flags = (st & BH_BLOCK_ZERO ? BH_MAP_ZERO : 0) |
             (st & BH_BLOCK_HOLE ? 0 : BH_MAP_DATA);
    if (bs->drv->flags & BH_DRIVER_PROTOCOL) {
        *flags |= BH_MAP_OFFSET;
        *map = offset;
        *file = bs;
    }
    return 0;
}

int bh_node_block_map(BhNode *bs, uint64_t offset, uint64_t len,
                      uint64_t *pnum, BhMapEntry *e, BhError **errp)
{
    int r = io_check_range(bs, "block map", offset, len, EINVAL, errp);
    if (r < 0)
        return r;
    memset(e, 0, sizeof(*e));
    *pnum = len;
    if (len == 0)
        return 0;
    for (;;) {
        BhNode *backing;
        int64_t blen;

        r = io_layer_map(bs, offset, len, pnum, &e->flags, &e->offset,
                         &e->file, errp);
        if (r < 0)
            return r;
        len = *pnum;
        if (e->flags & (BH_MAP_DATA | BH_MAP_ZERO)) {
            e->present = true;
            break;
        }
        /* Not held here: the backing file shows through; past its end,
         * or with none, the area reads as zeros and nobody holds it. */
        backing = bh_node_child(bs, "backing");
        blen = backing ? bh_node_size(backing) : -1;
        if (!backing || blen <= 0 || offset >= (uint64_t)blen) {
            e->flags |= BH_MAP_ZERO;
            break;
        }
        len = MIN(len, (uint64_t)blen - offset);
        bs = backing;
        e->depth++;
    }
    if (!(e->flags & BH_MAP_OFFSET))
        e->file = NULL;
    return 0;
}

int bh_node_truncate(BhNode *bs, uint64_t size, BhError **errp)
{
    int r = io_check_writable(bs, "truncate", errp);
    if (r < 0)
        return r;
    if (!bs->drv->truncate)
        return bh_error_set(errp, ENOTSUP, "driver %s cannot resize '%s'",
                            bs->plugin->name, bs->filename);
    /* Nothing of the old size may be in flight while it changes. */
    bh_node_drain_begin(bs);
    io_lock(bs);
    r = bs->drv->truncate(bs, size, errp);
    io_unlock(bs);
    if (r == 0)
        bh_node_refresh_size(bs);
    bh_node_drain_end(bs);
    return r;
}
