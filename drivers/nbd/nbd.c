/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "nbd" protocol driver: a remote NBD export as a node, over libnbd.
 *
 * The filename is an NBD URI (nbd://host:port/export,
 * nbd+unix:///export?socket=PATH, nbds:// and nbds+unix:// with TLS), so
 * bh.open("nbd://...") opens it with the format probed over it, and
 * format=nbd (blkhost nbd -f nbd URI) opens it alone.  libnbd does the
 * handshake, TLS, structured replies and block status; this driver adds
 * what a block layer needs around it: several connections used in
 * parallel when the server offers multi-conn, requests split at the
 * server's limits, and reconnection, with the requests in flight issued
 * again, until retry-timeout says to give up (nbd-conn.c).
 *
 * Options: connections=N (1..16, default 1), reconnect-delay=SECONDS
 * (first pause between attempts, doubled up to 16 times it; default 0.5),
 * retry-timeout=SECONDS (how long requests wait for a server; default 30,
 * 0: fail at once), connect-timeout=SECONDS (each attempt; default 10).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbd.h"

#define NBD_MAX_CONNS 16
/* The longest read or write sent as one command: what servers commonly
 * take (qemu-nbd and nbdkit 32 MiB), lowered to the server's maximum. */
#define NBD_MAX_IO (32u * 1024 * 1024)
/* The longest trim, zero or block status: NBD lengths are 32-bit. */
#define NBD_MAX_RANGE (1ull << 30)

static const char *const nbdc_schemes[] = {
    "nbd", "nbd+unix", "nbds", "nbds+unix", NULL
};

/* ---- a request waited for by the calling thread ---- */

typedef struct {
    NbdJob job;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
} NbdWait;

static void nbdc_wait_done(NbdJob *job)
{
    NbdWait *w = (NbdWait *)job;
    pthread_mutex_lock(&w->lock);
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Split [offset, offset+len) into commands of at most chunk bytes and
 * dispatch them for job; job->done runs when all are over. */
static void nbdc_job_start(NbdState *s, NbdJob *job, NbdCmdOp op,
                           uint64_t offset, uint64_t len, void *buf,
                           uint32_t flags, uint64_t chunk)
{
    /* One count for this function, so done cannot run before the last
     * command is out. */
    atomic_store(&job->pending, 1);
    uint64_t done = 0;
    do {
        uint64_t n = len - done < chunk ? len - done : chunk;
        NbdCmd *cmd = calloc(1, sizeof(*cmd));
        if (!cmd) {
            int zero = 0;
            atomic_compare_exchange_strong(&job->err, &zero, ENOMEM);
            break;
        }
        cmd->job = job;
        cmd->op = op;
        cmd->offset = offset + done;
        cmd->len = n;
        cmd->buf = buf ? (char *)buf + done : NULL;
        cmd->flags = flags;
        atomic_fetch_add(&job->pending, 1);
        nbdc_cmd_dispatch(s, cmd);
        done += n;
    } while (done < len);
    if (atomic_fetch_sub(&job->pending, 1) == 1)
        job->done(job);
}

static const char *const nbdc_op_names[] = {
    [NBD_CMD_READ] = "read", [NBD_CMD_WRITE] = "write",
    [NBD_CMD_FLUSH] = "flush", [NBD_CMD_TRIM] = "trim",
    [NBD_CMD_ZERO] = "write zeroes", [NBD_CMD_STATUS] = "block status",
};

/* Why job failed, naming the export: the server's error, or the time
 * given up waiting for a connection. */
static void nbdc_job_message(NbdState *s, NbdJob *job, NbdCmdOp op,
                             uint64_t offset, uint64_t len, char *buf,
                             size_t size)
{
    if (atomic_load(&job->timed_out))
        snprintf(buf, size, "nbd: %s at offset %llu on '%s' failed: the "
                 "connection was lost and did not come back within "
                 "retry-timeout (%.3g s)", nbdc_op_names[op],
                 (unsigned long long)offset, s->uri,
                 s->retry_timeout_us / 1e6);
    else
        snprintf(buf, size, "nbd: %s of %llu bytes at offset %llu on '%s' "
                 "failed: %s", nbdc_op_names[op], (unsigned long long)len,
                 (unsigned long long)offset, s->uri,
                 strerror(atomic_load(&job->err)));
}

/* Run one request and wait for it; errors name the export. */
static int nbdc_run(BhNode *bs, NbdCmdOp op, uint64_t offset, uint64_t len,
                    void *buf, uint32_t flags, uint64_t *st_len,
                    uint32_t *st_flags, BhError **errp)
{
    NbdState *s = bh_node_get_opaque(bs);
    NbdWait w = { .job = { .done = nbdc_wait_done } };
    uint64_t chunk = op == NBD_CMD_READ || op == NBD_CMD_WRITE ? s->max_io
                                                               : NBD_MAX_RANGE;
    if (op == NBD_CMD_STATUS)
        len = len < chunk ? len : chunk;

    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    nbdc_job_start(s, &w.job, op, offset, len, buf, flags, chunk);
    pthread_mutex_lock(&w.lock);
    while (!w.done)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);

    int err = atomic_load(&w.job.err);
    if (err == 0) {
        if (st_len) {
            *st_len = w.job.st_len;
            *st_flags = w.job.st_flags;
        }
        return 0;
    }
    char msg[512];
    nbdc_job_message(s, &w.job, op, offset, len, msg, sizeof(msg));
    return bh_error_set(errp, err, "%s", msg);
}

/* ---- options ---- */

/* SECONDS as a decimal ("0.5"), into microseconds. */
static bool nbdc_opt_seconds(BhOpts *opts, const char *key, double def,
                             int64_t *out, BhError **errp)
{
    const char *v = bh_opts_get(opts, key);
    double d = def;
    if (v) {
        char *end;
        errno = 0;
        d = strtod(v, &end);
        if (errno || end == v || *end || !(d >= 0) || d > 86400 * 365) {
            bh_error_set(errp, EINVAL, "nbd: %s='%s' is not a number of "
                         "seconds (for example 0.5 or 30)", key, v);
            return false;
        }
    }
    *out = (int64_t)(d * 1e6);
    return true;
}

static int nbdc_parse_opts(NbdState *s, BhOpts *opts, BhError **errp)
{
    uint64_t n;
    if (!bh_opts_get_uint(opts, "connections", 1, NBD_MAX_CONNS, &n, errp))
        return -EINVAL;
    if (n == 0)
        return bh_error_set(errp, EINVAL, "nbd: connections must be 1 to "
                            "%d", NBD_MAX_CONNS);
    s->nconns = (unsigned)n;
    if (!nbdc_opt_seconds(opts, "reconnect-delay", 0.5,
                          &s->reconnect_delay_us, errp) ||
        !nbdc_opt_seconds(opts, "retry-timeout", 30, &s->retry_timeout_us,
                          errp) ||
        !nbdc_opt_seconds(opts, "connect-timeout", 10, &s->connect_timeout_us,
                          errp))
        return -EINVAL;
    if (s->reconnect_delay_us < 10000)
        s->reconnect_delay_us = 10000;
    if (s->connect_timeout_us == 0)
        return bh_error_set(errp, EINVAL, "nbd: connect-timeout must be "
                            "more than 0");
    return 0;
}

/* ---- open and close ---- */

static void nbdc_state_free(NbdState *s)
{
    if (s->conns)
        nbdc_conn_stop_all(s);
    pthread_mutex_destroy(&s->lock);
    free(s->conns);
    free(s->uri);
    free(s);
}

/* Why an open failed, from libnbd's message: the URI always named, and
 * which connection when it is not the first. */
static int nbdc_connect_error(NbdState *s, unsigned i, const char *msg,
                              int err, BhError **errp)
{
    const char *hint = "";
    char which[64] = "";
    if (strncmp(s->uri, "nbds", 4) != 0 && strstr(msg, "requires TLS"))
        hint = " (use nbds:// or nbds+unix:// with tls-certificates= or "
               "tls-psk-file=)";
    if (i > 0)
        snprintf(which, sizeof(which), " (connection %u of %u)", i + 1,
                 s->nconns);
    return bh_error_set(errp, err, "nbd: cannot connect to '%s'%s: %s%s",
                        s->uri, which, msg, hint);
}

static void nbdc_learn_server(NbdState *s, struct nbd_handle *h)
{
    s->size = nbd_get_size(h);
    s->can_flush = nbd_can_flush(h) > 0;
    s->can_fua = nbd_can_fua(h) > 0;
    s->can_trim = nbd_can_trim(h) > 0;
    s->can_zero = nbd_can_zero(h) > 0;
    s->can_fast_zero = nbd_can_fast_zero(h) > 0;
    s->can_multi_conn = nbd_can_multi_conn(h) > 0;
    s->has_status = nbd_can_meta_context(h,
                                         LIBNBD_CONTEXT_BASE_ALLOCATION) > 0;
    int64_t min = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
    int64_t pref = nbd_get_block_size(h, LIBNBD_SIZE_PREFERRED);
    int64_t max = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
    s->min_block = min > 0 ? (uint32_t)min : 1;
    s->pref_block = pref > 0 ? (uint32_t)pref : 4096;
    s->max_io = max > 0 && max < NBD_MAX_IO ? (uint32_t)max : NBD_MAX_IO;
    s->max_io -= s->max_io % s->min_block;
    s->tls = nbd_get_tls_negotiated(h) > 0 ? "on" : "off";
}

static int nbdc_open(BhNode *bs, const char *filename, BhOpts *opts,
                     uint32_t open_flags, BhError **errp)
{
    NbdState *s = calloc(1, sizeof(*s));
    if (!s)
        return bh_error_set(errp, ENOMEM, "nbd: out of memory");
    pthread_mutex_init(&s->lock, NULL);
    s->writable = open_flags & BH_OPEN_RDWR;
    int r = nbdc_parse_opts(s, opts, errp);
    if (r < 0)
        goto fail;
    if (!filename || !*filename) {
        r = bh_error_set(errp, EINVAL, "nbd: no URI given (for example "
                         "nbd://host:10809/export or "
                         "nbd+unix:///export?socket=/run/disk.sock)");
        goto fail;
    }
    s->uri = strdup(filename);

    char *msg = NULL;
    int err = 0;
    struct nbd_handle *h = nbdc_conn_connect(s, &msg, &err);
    if (!h) {
        r = nbdc_connect_error(s, 0, msg, err, errp);
        free(msg);
        goto fail;
    }
    nbdc_learn_server(s, h);
    if (s->size < 0) {
        nbd_close(h);
        r = bh_error_set(errp, EIO, "nbd: '%s' did not give its size",
                         s->uri);
        goto fail;
    }
    if (s->writable && nbd_is_read_only(h) > 0) {
        nbd_close(h);
        r = bh_error_set(errp, EROFS, "nbd: '%s' is a read-only export: "
                         "open it read-only (readonly=on, blkhost nbd -r)",
                         s->uri);
        goto fail;
    }
    /* Several connections are only coherent where the server says so:
     * without multi-conn a flush on one need not cover writes on another
     * (qemu's nbd client falls back to one the same way). */
    if (s->nconns > 1 && !s->can_multi_conn) {
        fprintf(stderr, "blkhost: nbd: '%s' does not offer multi-conn; "
                "using 1 connection instead of %u\n", s->uri, s->nconns);
        s->nconns = 1;
    }
    s->conns = calloc(s->nconns, sizeof(NbdConn));
    if (!s->conns) {
        nbd_close(h);
        r = bh_error_set(errp, ENOMEM, "nbd: out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < s->nconns; i++)
        s->conns[i].efd = -1;
    s->conns[0].h = h;
    for (unsigned i = 1; i < s->nconns; i++) {
        s->conns[i].h = nbdc_conn_connect(s, &msg, &err);
        if (!s->conns[i].h) {
            r = nbdc_connect_error(s, i, msg, err, errp);
            free(msg);
            goto fail;
        }
    }
    for (unsigned i = 0; i < s->nconns; i++) {
        r = nbdc_conn_start(s, i, s->conns[i].h);
        if (r < 0) {
            bh_error_set_errno(errp, -r, "nbd: cannot start the poller "
                               "thread for '%s'", s->uri);
            goto fail;
        }
    }

    uint32_t caps = 0;
    if (s->can_fua)
        caps |= BH_CAP_FUA;
    if (s->can_trim)
        caps |= BH_CAP_DISCARD;
    if (s->can_zero)
        caps |= BH_CAP_ZERO;
    bh_node_set_caps(bs, caps);
    bh_node_set_block_limits(bs, s->min_block, s->pref_block, s->max_io);
    bh_node_set_opaque(bs, s);
    return 0;

fail:
    nbdc_state_free(s);
    return r < 0 ? r : -EIO;
}

static void nbdc_close_node(BhNode *bs)
{
    NbdState *s = bh_node_get_opaque(bs);
    if (s)
        nbdc_state_free(s);
    bh_node_set_opaque(bs, NULL);
}

static int64_t nbdc_get_length(BhNode *bs)
{
    NbdState *s = bh_node_get_opaque(bs);
    return s->size;
}

/* ---- what a request becomes on this server ---- */

static uint32_t nbdc_fua(NbdState *s, uint32_t flags)
{
    return (flags & BH_IO_FUA) && s->can_fua ? LIBNBD_CMD_FLAG_FUA : 0;
}

/*
 * How a request (bop, BH_IO_* flags) goes to this server: 1 with the
 * command *op and its libnbd flags *f; 0 when there is nothing to send
 * (a flush or trim the server does not offer: a discard is advisory); or
 * -ENOTSUP with *why for a write-zeroes the server cannot do (the core
 * then writes zeros, or fails a fast zero).
 */
static int nbdc_plan(NbdState *s, BhOp bop, uint32_t flags, NbdCmdOp *op,
                     uint32_t *f, const char **why)
{
    *f = 0;
    switch (bop) {
    case BH_OP_READ:
        *op = NBD_CMD_READ;
        return 1;
    case BH_OP_WRITE:
        *op = NBD_CMD_WRITE;
        *f = nbdc_fua(s, flags);
        return 1;
    case BH_OP_FLUSH:
        *op = NBD_CMD_FLUSH;
        return s->can_flush;
    case BH_OP_DISCARD:
        *op = NBD_CMD_TRIM;
        return s->can_trim;
    case BH_OP_WRITE_ZEROES:
        *op = NBD_CMD_ZERO;
        if (!s->can_zero || ((flags & BH_IO_FAST_ZERO) && !s->can_fast_zero)) {
            *why = flags & BH_IO_FAST_ZERO ? "zero fast" : "write zeroes";
            return -ENOTSUP;
        }
        *f = nbdc_fua(s, flags);
        if (flags & BH_IO_FAST_ZERO)
            *f |= LIBNBD_CMD_FLAG_FAST_ZERO;
        if (!(flags & BH_IO_MAY_UNMAP))
            *f |= LIBNBD_CMD_FLAG_NO_HOLE;
        return 1;
    }
    *why = "do this request";
    return -ENOTSUP;
}

/* ---- synchronous I/O ---- */

static int nbdc_sync(BhNode *bs, BhOp bop, uint64_t offset, uint64_t len,
                     void *buf, uint32_t flags, BhError **errp)
{
    NbdState *s = bh_node_get_opaque(bs);
    NbdCmdOp op;
    uint32_t f;
    const char *why;
    int r = nbdc_plan(s, bop, flags, &op, &f, &why);
    if (r < 0)
        return bh_error_set(errp, -r, "nbd: '%s' cannot %s", s->uri, why);
    if (r == 0)
        return 0;
    return nbdc_run(bs, op, offset, len, buf, f, NULL, NULL, errp);
}

static int nbdc_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                      uint32_t flags, BhError **errp)
{
    return nbdc_sync(bs, BH_OP_READ, offset, len, buf, flags, errp);
}

static int nbdc_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                       size_t len, uint32_t flags, BhError **errp)
{
    return nbdc_sync(bs, BH_OP_WRITE, offset, len, (void *)buf, flags, errp);
}

static int nbdc_flush(BhNode *bs, BhError **errp)
{
    return nbdc_sync(bs, BH_OP_FLUSH, 0, 0, NULL, 0, errp);
}

static int nbdc_discard(BhNode *bs, uint64_t offset, uint64_t len,
                        BhError **errp)
{
    return nbdc_sync(bs, BH_OP_DISCARD, offset, len, NULL, 0, errp);
}

static int nbdc_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                             uint32_t flags, BhError **errp)
{
    return nbdc_sync(bs, BH_OP_WRITE_ZEROES, offset, len, NULL, flags, errp);
}

static int nbdc_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                             uint64_t *pnum, uint32_t *status, BhError **errp)
{
    NbdState *s = bh_node_get_opaque(bs);
    uint64_t n = 0;
    uint32_t st = 0;

    *pnum = len;
    *status = 0;
    if (!s->has_status)
        return 0;
    if (len > NBD_MAX_RANGE)
        len = NBD_MAX_RANGE - NBD_MAX_RANGE % s->min_block;
    int r = nbdc_run(bs, NBD_CMD_STATUS, offset, len, NULL, 0, &n, &st, errp);
    if (r < 0)
        return r;
    if (n > 0) {
        *pnum = n < len ? n : len;
        *status = st;
    }
    return 0;
}

/* ---- asynchronous I/O: the core's requests ---- */

typedef struct {
    NbdJob job;
    BhRequest *req;
    NbdState *s;
    NbdCmdOp op;
    void *bounce;             /* a read or write of several buffers */
} NbdAsync;

static void nbdc_async_done(NbdJob *job)
{
    NbdAsync *a = (NbdAsync *)job;
    BhRequest *req = a->req;
    int err = atomic_load(&job->err);

    if (err == 0 && a->bounce && a->op == NBD_CMD_READ) {
        int niov;
        const struct iovec *iov = bh_request_iov(req, &niov);
        const char *p = a->bounce;
        for (int i = 0; i < niov; i++) {
            memcpy(iov[i].iov_base, p, iov[i].iov_len);
            p += iov[i].iov_len;
        }
    }
    free(a->bounce);
    if (err) {
        char msg[512];
        nbdc_job_message(a->s, job, a->op, bh_request_offset(req),
                         bh_request_length(req), msg, sizeof(msg));
        bh_request_error(req, err, "%s", msg);
    }
    free(a);
    bh_request_complete(req, err ? -err : 0);
}

/* Requests the server cannot take end here, as the synchronous
 * callbacks would end them. */
static void nbdc_submit(BhNode *bs, BhRequest *req)
{
    NbdState *s = bh_node_get_opaque(bs);
    uint64_t len = bh_request_length(req);
    NbdCmdOp op;
    uint32_t f;
    const char *why;
    void *buf = NULL, *bounce = NULL;

    int r = nbdc_plan(s, bh_request_op(req), bh_request_flags(req), &op, &f,
                      &why);
    if (r <= 0) {
        if (r < 0)
            bh_request_error(req, -r, "nbd: '%s' cannot %s", s->uri, why);
        bh_request_complete(req, r);
        return;
    }
    if (op == NBD_CMD_READ || op == NBD_CMD_WRITE) {
        int niov;
        const struct iovec *iov = bh_request_iov(req, &niov);
        if (niov == 1) {
            buf = iov[0].iov_base;
        } else {
            /* libnbd takes one buffer per command. */
            buf = bounce = malloc(len ? len : 1);
            if (!bounce) {
                bh_request_error(req, ENOMEM, "nbd: out of memory");
                bh_request_complete(req, -ENOMEM);
                return;
            }
            char *p = bounce;
            for (int i = 0; op == NBD_CMD_WRITE && i < niov; i++) {
                memcpy(p, iov[i].iov_base, iov[i].iov_len);
                p += iov[i].iov_len;
            }
        }
    } else if (op == NBD_CMD_FLUSH) {
        len = 0;
    }
    NbdAsync *a = calloc(1, sizeof(*a));
    if (!a) {
        free(bounce);
        bh_request_error(req, ENOMEM, "nbd: out of memory");
        bh_request_complete(req, -ENOMEM);
        return;
    }
    a->job.done = nbdc_async_done;
    a->req = req;
    a->s = s;
    a->op = op;
    a->bounce = bounce;
    nbdc_job_start(s, &a->job, op, bh_request_offset(req), len, buf, f,
                   op == NBD_CMD_READ || op == NBD_CMD_WRITE ? s->max_io
                                                             : NBD_MAX_RANGE);
}

static void nbdc_info(BhNode *bs, BhInfo *info)
{
    NbdState *s = bh_node_get_opaque(bs);
    bh_info_add_int(info, "nbd-connections", s->nconns);
    bh_info_add_bool(info, "nbd-multi-conn", s->can_multi_conn);
    bh_info_add_str(info, "nbd-tls", s->tls);
    bh_info_add_bool(info, "nbd-block-status", s->has_status);
}

static const BhDriver nbdc_driver = {
    .flags = BH_DRIVER_PROTOCOL | BH_DRIVER_NO_PROBE,
    .open = nbdc_open,
    .close = nbdc_close_node,
    .get_length = nbdc_get_length,
    .pread = nbdc_pread,
    .pwrite = nbdc_pwrite,
    .flush = nbdc_flush,
    .discard = nbdc_discard,
    .write_zeroes = nbdc_write_zeroes,
    .block_status = nbdc_block_status,
    .info = nbdc_info,
    .submit = nbdc_submit,
    .request_flags = BH_IO_FUA | BH_IO_MAY_UNMAP | BH_IO_FAST_ZERO,
    .uri_schemes = nbdc_schemes,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "nbd",
    .version = "1.0",
    .description = "a remote NBD export (nbd://, nbd+unix://, nbds://), "
                   "over libnbd",
    .driver = &nbdc_driver,
};

BH_PLUGIN_REGISTER(desc)
