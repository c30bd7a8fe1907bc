/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TEMPORARY stand-in for the request core (request.h) while it is written
 * on branch reqcore: just enough to hand requests to a driver's submit,
 * or to run them on the synchronous calls.  Deleted when reqcore lands.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "core-priv.h"

struct BhRequest {
    BhNode *bs;
    BhOp op;
    uint64_t offset, len;
    struct iovec *iov;
    int niov;
    uint32_t flags;
    BhRequestDoneFn done;
    void *opaque;
    BhError *err;
};

BhRequest *bh_request_new(BhNode *bs, BhOp op, uint64_t offset, uint64_t len,
                          const struct iovec *iov, int niov, uint32_t flags,
                          BhRequestDoneFn done, void *opaque)
{
    BhRequest *req = g_new0(BhRequest, 1);
    req->bs = bh_node_ref(bs);
    req->op = op;
    req->offset = offset;
    req->len = len;
    req->iov = niov > 0 ? g_memdup2(iov, sizeof(*iov) * (size_t)niov) : NULL;
    req->niov = MAX(niov, 0);
    req->flags = flags;
    req->done = done;
    req->opaque = opaque;
    return req;
}

void bh_node_submit(BhRequest *req)
{
    BhNode *bs = req->bs;
    int r = 0;
    if (bs->drv->submit && req->op != BH_OP_DISCARD) {
        req->flags &= bs->drv->request_flags;
        bs->drv->submit(bs, req);
        return;
    }
    switch (req->op) {
    case BH_OP_DISCARD:
        r = bh_node_discard(bs, req->offset, req->len, &req->err);
        break;
    default:
        r = -ENOTSUP;
    }
    bh_request_complete(req, r);
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
    if (req->done)
        req->done(req->opaque, ret, req->err);
    bh_node_unref(req->bs);
    if (req->err)
        bh_error_free(req->err);
    g_free(req->iov);
    g_free(req);
}

int bh_request_error(BhRequest *req, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (!req->err)
        req->err = bh_error_new(errnum, "%s", msg);
    g_free(msg);
    return -errnum;
}
