/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TEMPORARY stand-in for the core's request layer (request.h), so the
 * uring branch can build and test the file driver's submit and qcow2's
 * parallel sub-requests before the real one (branch reqcore, core/io.c)
 * lands.  The lead drops this file and its meson line at merge.
 *
 * Only what the drivers need: the opaque request, its accessors,
 * completion with an optional message, and a bh_node_submit that checks
 * read-only and range, then calls drv->submit when the driver has one and
 * the synchronous callbacks (through bh_node_pread & co.) otherwise.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "core-priv.h"

struct BhRequest {
    BhNode *bs;
    BhOp op;
    uint64_t offset, len;
    uint32_t flags;
    int niov;
    struct iovec *iov;
    BhRequestDoneFn done;
    void *opaque;
    GError *err;
};

BhRequest *bh_request_new(BhNode *bs, BhOp op, uint64_t offset, uint64_t len,
                          const struct iovec *iov, int niov, uint32_t flags,
                          BhRequestDoneFn done, void *opaque)
{
    BhRequest *req = g_new0(BhRequest, 1);
    req->bs = bs;
    req->op = op;
    req->offset = offset;
    req->len = len;
    req->flags = flags;
    req->done = done;
    req->opaque = opaque;
    if (niov > 0) {
        req->iov = g_memdup2(iov, sizeof(*iov) * niov);
        req->niov = niov;
    }
    return req;
}

BhNode *bh_request_node(const BhRequest *req) { return req->bs; }
BhOp bh_request_op(const BhRequest *req) { return req->op; }
uint64_t bh_request_offset(const BhRequest *req) { return req->offset; }
uint64_t bh_request_length(const BhRequest *req) { return req->len; }
uint32_t bh_request_flags(const BhRequest *req) { return req->flags; }

const struct iovec *bh_request_iov(const BhRequest *req, int *niov)
{
    *niov = req->niov;
    return req->iov;
}

void bh_request_complete(BhRequest *req, int ret)
{
    if (ret < 0 && !req->err)
        req->err = g_error_new(BH_ERROR, -ret, "%s", g_strerror(-ret));
    if (req->done)
        req->done(req->opaque, ret, ret < 0 ? req->err : NULL);
    if (req->err)
        g_error_free(req->err);
    g_free(req->iov);
    g_free(req);
}

int bh_request_error(BhRequest *req, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (req->err)
        g_error_free(req->err);
    req->err = g_error_new_literal(BH_ERROR, errnum, msg);
    g_free(msg);
    return -errnum;
}

/* The synchronous callbacks through the existing checked entry points. */
static int request_stub_sync(BhRequest *req, GError **errp)
{
    BhNode *bs = req->bs;
    switch (req->op) {
    case BH_OP_READ:
    case BH_OP_WRITE: {
        bool rd = req->op == BH_OP_READ;
        void *buf = req->niov == 1 ? req->iov[0].iov_base : NULL;
        int r;
        if (!buf) {
            buf = g_malloc(req->len);
            size_t pos = 0;
            for (int i = 0; i < req->niov && !rd; i++) {
                memcpy((char *)buf + pos, req->iov[i].iov_base,
                       req->iov[i].iov_len);
                pos += req->iov[i].iov_len;
            }
        }
        r = rd ? bh_node_pread(bs, buf, req->offset, req->len, req->flags,
                               errp)
               : bh_node_pwrite(bs, buf, req->offset, req->len, req->flags,
                                errp);
        if (req->niov != 1) {
            if (rd && r == 0) {
                size_t pos = 0;
                for (int i = 0; i < req->niov; i++) {
                    memcpy(req->iov[i].iov_base, (char *)buf + pos,
                           req->iov[i].iov_len);
                    pos += req->iov[i].iov_len;
                }
            }
            g_free(buf);
        }
        return r;
    }
    case BH_OP_FLUSH:
        return bh_node_flush(bs, errp);
    case BH_OP_DISCARD:
        return bh_node_discard(bs, req->offset, req->len, errp);
    case BH_OP_WRITE_ZEROES:
        return bh_node_write_zeroes(bs, req->offset, req->len, req->flags,
                                    errp);
    }
    return bh_error_set(errp, EINVAL, "unknown request op %d", req->op);
}

void bh_node_submit(BhRequest *req)
{
    BhNode *bs = req->bs;
    GError *err = NULL;
    int r;

    if (!bs->drv->submit) {
        r = request_stub_sync(req, &err);
        req->err = err;
        bh_request_complete(req, r);
        return;
    }
    if (req->op != BH_OP_READ && req->op != BH_OP_FLUSH && bs->readonly) {
        bh_request_complete(req, bh_request_error(req, EPERM, "write on "
                            "'%s': the node is read-only", bs->filename));
        return;
    }
    if (req->op != BH_OP_FLUSH && !bs->growable &&
        (req->offset > (uint64_t)MAX(bs->size, 0) ||
         req->len > (uint64_t)MAX(bs->size, 0) - req->offset)) {
        bh_request_complete(req, bh_request_error(req, EINVAL, "request "
                            "past the end of '%s'", bs->filename));
        return;
    }
    if (req->op == BH_OP_FLUSH && bs->cache == BH_CACHE_UNSAFE) {
        bh_request_complete(req, 0);
        return;
    }
    req->flags &= bs->drv->request_flags;
    bs->drv->submit(bs, req);
}
