/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ramsubmit: an out-of-tree protocol driver that does all its I/O through
 * submit (request.h), for the ABI matrix in tests/sdk.  A RAM disk of
 * size= bytes; every request completes on a thread of its own, so the
 * core really sees completions arrive from elsewhere.  libc only.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <blkhost/blkhost-plugin.h>

typedef struct {
    uint8_t *data;
    uint64_t size;
    pthread_mutex_t lock;
} Ram;

static int ram_open(BhNode *bs, const char *filename, BhOpts *opts,
                    uint32_t flags, BhError **errp)
{
    uint64_t size;
    if (!bh_opts_get_size(opts, "size", 0, &size, errp))
        return -EINVAL;
    if (!size)
        return bh_error_set(errp, EINVAL, "ramsubmit needs size=");
    Ram *r = calloc(1, sizeof(*r));
    if (!r || !(r->data = calloc(1, size))) {
        free(r);
        return bh_error_set(errp, ENOMEM, "out of memory");
    }
    r->size = size;
    pthread_mutex_init(&r->lock, NULL);
    bh_node_set_opaque(bs, r);
    return 0;
}

static void ram_close(BhNode *bs)
{
    Ram *r = bh_node_get_opaque(bs);
    free(r->data);
    free(r);
}

static int64_t ram_length(BhNode *bs)
{
    return (int64_t)((Ram *)bh_node_get_opaque(bs))->size;
}

/* Copy between the request's iovec and the disk. */
static void ram_copy(Ram *r, BhRequest *req, int to_disk)
{
    int niov;
    const struct iovec *iov = bh_request_iov(req, &niov);
    uint64_t pos = bh_request_offset(req);
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < niov; i++) {
        if (to_disk)
            memcpy(r->data + pos, iov[i].iov_base, iov[i].iov_len);
        else
            memcpy(iov[i].iov_base, r->data + pos, iov[i].iov_len);
        pos += iov[i].iov_len;
    }
    pthread_mutex_unlock(&r->lock);
}

static void *ram_worker(void *arg)
{
    BhRequest *req = arg;
    Ram *r = bh_node_get_opaque(bh_request_node(req));
    int ret = 0;
    switch (bh_request_op(req)) {
    case BH_OP_READ:
        ram_copy(r, req, 0);
        break;
    case BH_OP_WRITE:
        ram_copy(r, req, 1);
        break;
    case BH_OP_WRITE_ZEROES:
    case BH_OP_DISCARD:
        pthread_mutex_lock(&r->lock);
        memset(r->data + bh_request_offset(req), 0, bh_request_length(req));
        pthread_mutex_unlock(&r->lock);
        break;
    case BH_OP_FLUSH:
        break;
    default:
        ret = bh_request_error(req, ENOTSUP, "ramsubmit: unknown op");
    }
    bh_request_complete(req, ret);
    return NULL;
}

static void ram_submit(BhNode *bs, BhRequest *req)
{
    pthread_t t;
    if (pthread_create(&t, NULL, ram_worker, req) != 0) {
        bh_request_complete(req, bh_request_error(req, EAGAIN,
                            "ramsubmit: no thread"));
        return;
    }
    pthread_detach(t);
}

static const BhDriver ram_driver = {
    .flags = BH_DRIVER_PROTOCOL | BH_DRIVER_NO_PROBE,
    .open = ram_open,
    .close = ram_close,
    .get_length = ram_length,
    .submit = ram_submit,   /* no pread: submit does all the I/O */
    .request_flags = BH_IO_FUA | BH_IO_MAY_UNMAP,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "ramsubmit",
    .version = "1.0",
    .description = "test: a RAM disk doing all I/O through submit",
    .driver = &ram_driver,
};

BH_PLUGIN_REGISTER(desc)
