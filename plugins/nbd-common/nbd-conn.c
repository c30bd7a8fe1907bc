/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The transmission phase of one NBD connection: the reader loop that
 * parses requests, checks them and hands them to the worker pool, and the
 * pool itself.
 *
 * The reader owns the socket's read side.  It reads through a 64 KiB
 * buffer so that a burst of small requests costs one recv(), checks each
 * request (magic, command, flags, range, length) and reads a write's
 * payload straight into the slot's buffer.  Requests that fail a check
 * still go through the pool, which answers them with the error, so that
 * replies keep a single sender path.  Protocol violations that make the
 * stream unparseable (bad magic, a client vanishing mid-payload) end the
 * connection after the requests already read are answered.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbd-conn-priv.h"
#include <blkhost/glib.h>

#define NBD_RBUF_SIZE (64 * 1024)

/* ---- worker pool ---- */

struct NbdPool {
    GMutex lock;
    GCond cond;
    NbdSlot *head, *tail;
    unsigned idle;       /* workers waiting on cond */
    unsigned woken;      /* of those, already signalled */
    bool quit;
    unsigned n;
    GThread **threads;
};

static gpointer nbd_pool_worker(gpointer data)
{
    NbdPool *pool = data;
    g_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->head && !pool->quit) {
            pool->idle++;
            g_cond_wait(&pool->cond, &pool->lock);
            pool->idle--;
            if (pool->woken)
                pool->woken--;
        }
        NbdSlot *slot = pool->head;
        if (!slot)
            break;
        pool->head = slot->next;
        if (!pool->head)
            pool->tail = NULL;
        g_mutex_unlock(&pool->lock);
        nbd_slot_run(slot);     /* the reply path gives the slot back */
        g_mutex_lock(&pool->lock);
    }
    g_mutex_unlock(&pool->lock);
    return NULL;
}

NbdPool *nbd_pool_new(unsigned nworkers, BhError **errp)
{
    NbdPool *pool = g_new0(NbdPool, 1);
    g_mutex_init(&pool->lock);
    g_cond_init(&pool->cond);
    pool->threads = g_new0(GThread *, nworkers);
    for (unsigned i = 0; i < nworkers; i++) {
        GError *err = NULL;
        pool->threads[i] = g_thread_try_new("nbd-worker", nbd_pool_worker,
                                            pool, &err);
        if (!pool->threads[i]) {
            bh_error_set(errp, EAGAIN, "cannot start NBD worker thread: %s",
                         err->message);
            g_error_free(err);
            nbd_pool_free(pool);
            return NULL;
        }
        pool->n++;
    }
    return pool;
}

void nbd_pool_free(NbdPool *pool)
{
    if (!pool)
        return;
    g_mutex_lock(&pool->lock);
    pool->quit = true;
    g_cond_broadcast(&pool->cond);
    g_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->n; i++)
        g_thread_join(pool->threads[i]);
    g_free(pool->threads);
    g_mutex_clear(&pool->lock);
    g_cond_clear(&pool->cond);
    g_free(pool);
}

/* Queue a list of n slots.  A wake-up costs a syscall, so only workers
 * that sleep and were not already woken are signalled, at most one per
 * slot; busy workers find the rest when they finish. */
static void nbd_pool_push(NbdPool *pool, NbdSlot *first, NbdSlot *last,
                          unsigned n)
{
    last->next = NULL;
    g_mutex_lock(&pool->lock);
    if (pool->tail)
        pool->tail->next = first;
    else
        pool->head = first;
    pool->tail = last;
    while (n-- > 0 && pool->idle > pool->woken) {
        pool->woken++;
        g_cond_signal(&pool->cond);
    }
    g_mutex_unlock(&pool->lock);
}

/* ---- slots ---- */

/* Slot buffers bigger than malloc's default mmap threshold are mapped
 * directly, as malloc itself would map them at first.  Left to malloc,
 * freeing such a mapped chunk raises glibc's dynamic mmap threshold to its
 * size (mallopt(3), M_MMAP_THRESHOLD), after which buffers up to that size
 * come from the heap arenas, which keep them when they are freed: a client
 * that sent one 4 MiB write or asked one 8 MiB read made the idle server's
 * RSS grow by megabytes for each later wave of clients (bench/soak.sh). */
#define NBD_SLOT_MMAP_MIN (128u * 1024)

/* The data area of a slot buffer; NBD_SLOT_HEADROOM bytes before it
 * belong to the same allocation, for the reply header. */
static void *slot_buf_alloc(size_t cap)
{
    size_t total = cap + NBD_SLOT_HEADROOM;
    uint8_t *base;
    if (cap < NBD_SLOT_MMAP_MIN) {
        void *p = NULL;
        /* page alignment keeps O_DIRECT nodes from bouncing */
        if (posix_memalign(&p, 4096, total) != 0)
            return NULL;
        base = p;
    } else {
        void *p = mmap(NULL, total, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        base = p;
    }
    return base + NBD_SLOT_HEADROOM;
}

static void slot_buf_free(NbdSlot *slot)
{
    if (slot->buf) {
        uint8_t *base = slot->buf - NBD_SLOT_HEADROOM;
        if (slot->cap >= NBD_SLOT_MMAP_MIN)
            munmap(base, slot->cap + NBD_SLOT_HEADROOM);
        else
            free(base);
    }
    slot->buf = NULL;
    slot->cap = 0;
}

bool nbd_slot_reserve(NbdSlot *slot, size_t len)
{
    if (len <= slot->cap)
        return true;
    /* Grow in big steps so a client ramping up sizes reallocates rarely. */
    size_t cap = 64 * 1024;
    while (cap < len)
        cap *= 2;
    if (cap > NBD_MAX_PAYLOAD && len <= NBD_MAX_PAYLOAD)
        cap = NBD_MAX_PAYLOAD;
    void *p = slot_buf_alloc(cap);
    if (!p)
        return false;
    slot_buf_free(slot);
    slot->buf = p;
    slot->cap = cap;
    return true;
}

/* Requests read but not yet queued, so that a burst of requests that
 * arrived together costs one queue lock and the fewest wake-ups. */
static void conn_flush_batch(NbdConn *c)
{
    if (c->batch_n) {
        nbd_pool_push(c->pool, c->batch_first, c->batch_last, c->batch_n);
        c->batch_first = c->batch_last = NULL;
        c->batch_n = 0;
    }
}

static void conn_flush_batch_hook(void *data)
{
    conn_flush_batch(data);
}

static void conn_queue(NbdConn *c, NbdSlot *slot)
{
    slot->next = NULL;
    if (c->batch_last)
        c->batch_last->next = slot;
    else
        c->batch_first = slot;
    c->batch_last = slot;
    c->batch_n++;
}

/* A free slot, counted in flight with cost bytes.  While the
 * connection's replies hold NBD_CONN_MAX_BYTES, this waits: the client's
 * further requests stay in its socket until it reads what it asked for. */
static NbdSlot *nbd_slot_get(NbdConn *c, uint32_t cost)
{
    g_mutex_lock(&c->lock);
    if (!c->free || c->inflight_bytes >= NBD_CONN_MAX_BYTES) {
        g_mutex_unlock(&c->lock);
        conn_flush_batch(c);     /* what we wait for may be in the batch */
        g_mutex_lock(&c->lock);
        c->waiting = true;
        while (!c->free || c->inflight_bytes >= NBD_CONN_MAX_BYTES)
            g_cond_wait(&c->cond, &c->lock);
        c->waiting = false;
    }
    NbdSlot *slot = c->free;
    c->free = slot->next;
    c->inflight++;
    slot->cost = cost;
    c->inflight_bytes += cost;
    g_mutex_unlock(&c->lock);
    slot->err = 0;
    slot->errmsg = NULL;
    return slot;
}

void nbd_slot_put_locked(NbdConn *c, NbdSlot *slot)
{
    slot->next = c->free;
    c->free = slot;
    c->inflight--;
    c->inflight_bytes -= slot->cost;
    slot->cost = 0;
    if (c->waiting)
        g_cond_signal(&c->cond);
}

static void nbd_slot_put(NbdConn *c, NbdSlot *slot)
{
    g_mutex_lock(&c->lock);
    nbd_slot_put_locked(c, slot);
    /* After this unlock the reader may free the connection: touch
     * nothing of it afterwards. */
    g_mutex_unlock(&c->lock);
}

void nbd_slot_trim(NbdSlot *slot)
{
    /* Keep buffers of the usual sizes; one made for a rare huge request
     * goes, so idle connections do not pin 32 MiB per slot. */
    if (slot->cap > NBD_SLOT_KEEP)
        slot_buf_free(slot);
}

void nbd_slot_done(NbdSlot *slot)
{
    nbd_slot_trim(slot);
    nbd_slot_put(slot->conn, slot);
}

/* ---- buffered reading ---- */

/* 0 ok, -EPIPE on EOF, -errno on error. */
static int conn_read(NbdConn *c, void *dst, size_t len)
{
    uint8_t *p = dst;
    size_t have = c->rlen - c->rpos;
    size_t n = MIN(have, len);
    if (len == 0)   /* a zero-length write has no buffer (dst NULL) */
        return 0;
    memcpy(p, c->rbuf + c->rpos, n);
    c->rpos += n;
    p += n;
    len -= n;
    while (len > 0) {
        /* About to block: let the workers run.  Over TLS the records
         * read ahead may hold more requests, and the TLS layer calls
         * this only when it has to wait for the socket. */
        if (!c->tls)
            conn_flush_batch(c);
        if (len >= NBD_RBUF_SIZE / 2) {
            /* Big payloads go straight to their destination. */
            return c->tls ? nbd_tls_read_full(c->tls, p, len)
                          : nbd_read_full(c->fd, p, len);
        }
        ssize_t got;
        if (c->tls) {
            got = nbd_tls_recv(c->tls, c->rbuf, NBD_RBUF_SIZE);
            if (got < 0)
                return (int)got;
        } else {
            got = recv(c->fd, c->rbuf, NBD_RBUF_SIZE, 0);
            if (got < 0 && errno == ENOTSOCK)
                got = read(c->fd, c->rbuf, NBD_RBUF_SIZE);
            if (got < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
        }
        if (got == 0)
            return -EPIPE;
        c->rpos = 0;
        c->rlen = (size_t)got;
        n = MIN((size_t)got, len);
        memcpy(p, c->rbuf, n);
        c->rpos = n;
        p += n;
        len -= n;
    }
    return 0;
}

static int conn_skip(NbdConn *c, uint64_t len)
{
    uint8_t tmp[16384];
    while (len > 0) {
        size_t n = MIN(len, sizeof(tmp));
        int r = conn_read(c, tmp, n);
        if (r < 0)
            return r;
        len -= n;
    }
    return 0;
}

/* ---- checks ---- */

static void slot_fail(NbdSlot *slot, int err, const char *msg)
{
    if (!slot->err) {
        slot->err = err;
        slot->errmsg = msg;
    }
}

/* Decide errors that need no I/O, in the order the spec suggests:
 * unknown command, bad flags, read-only, range. */
static void conn_check(NbdConn *c, NbdSlot *slot)
{
    const NbdExportView *e = &c->s->exp;
    uint32_t allowed = NBD_CMD_FLAG_FUA;
    bool write = false, end_is_enospc = false, needs_range = true;

    switch (slot->type) {
    case NBD_CMD_READ:
        if (c->s->structured)
            allowed |= NBD_CMD_FLAG_DF;
        break;
    case NBD_CMD_WRITE:
        write = end_is_enospc = true;
        break;
    case NBD_CMD_FLUSH:
        needs_range = false;
        break;
    case NBD_CMD_TRIM:
        write = true;
        break;
    case NBD_CMD_CACHE:
        break;
    case NBD_CMD_WRITE_ZEROES:
        allowed |= NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
        write = end_is_enospc = true;
        break;
    case NBD_CMD_BLOCK_STATUS:
        allowed |= NBD_CMD_FLAG_REQ_ONE;
        if (!c->s->meta_base_allocation)
            slot_fail(slot, EINVAL, "BLOCK_STATUS needs the base:allocation "
                                    "meta context negotiated first");
        else if (slot->len == 0)
            slot_fail(slot, EINVAL, "BLOCK_STATUS of length 0");
        break;
    default:
        snprintf(slot->msg, sizeof(slot->msg), "unknown command %u",
                 slot->type);
        slot_fail(slot, EINVAL, slot->msg);
        return;
    }
    if (slot->flags & ~allowed) {
        snprintf(slot->msg, sizeof(slot->msg),
                 "command %u does not take flags 0x%x", slot->type,
                 slot->flags & ~allowed);
        slot_fail(slot, EINVAL, slot->msg);
        return;
    }
    if (write && e->readonly) {
        slot_fail(slot, EPERM, "the export is read-only");
        return;
    }
    if (needs_range && (slot->offset > e->size ||
                        slot->len > e->size - slot->offset)) {
        snprintf(slot->msg, sizeof(slot->msg),
                 "request [%" G_GUINT64_FORMAT ", +%u) is past the end of "
                 "the export (size %" G_GUINT64_FORMAT ")",
                 slot->offset, slot->len, e->size);
        slot_fail(slot, end_is_enospc ? ENOSPC : EINVAL, slot->msg);
        return;
    }
    if ((slot->type == NBD_CMD_READ || slot->type == NBD_CMD_WRITE) &&
        slot->len > NBD_MAX_PAYLOAD) {
        snprintf(slot->msg, sizeof(slot->msg),
                 "request length %u is over the maximum payload %u",
                 slot->len, NBD_MAX_PAYLOAD);
        slot_fail(slot, EINVAL, slot->msg);
    }
}

/* ---- the reader ---- */

int nbd_conn_serve(int fd, const NbdSession *s, NbdPool *pool,
                   NbdStats *stats, BhError **errp)
{
    NbdConn *c = g_new0(NbdConn, 1);
    int ret = 0;

    c->fd = fd;
    c->tls = s->tls;
    c->s = s;
    c->pool = pool;
    c->stats = stats;
    g_mutex_init(&c->lock);
    g_cond_init(&c->cond);
    c->rbuf = g_malloc(NBD_RBUF_SIZE);
    for (int i = NBD_CONN_SLOTS - 1; i >= 0; i--) {
        c->slots[i].conn = c;
        c->slots[i].next = c->free;
        c->free = &c->slots[i];
    }
    if (!nbd_reply_start(c, errp)) {
        ret = -EAGAIN;
        goto out;
    }
    if (c->tls)
        nbd_tls_set_recv_hook(c->tls, conn_flush_batch_hook, c);

    for (;;) {
        NbdRequest rq;
        int r = conn_read(c, &rq, sizeof(rq));
        if (r == -EPIPE || r == -ECONNRESET)
            break;           /* EOF between requests: a plain hang-up */
        if (r < 0) {
            ret = bh_error_set_errno(errp, -r, "reading a request");
            break;
        }
        if (GUINT32_FROM_BE(rq.magic) != NBD_REQUEST_MAGIC) {
            ret = bh_error_set(errp, EPROTO,
                               "bad request magic 0x%08x (expected 0x%08x); "
                               "disconnecting", GUINT32_FROM_BE(rq.magic),
                               NBD_REQUEST_MAGIC);
            break;
        }
        uint16_t type = GUINT16_FROM_BE(rq.type);
        uint32_t len = GUINT32_FROM_BE(rq.length);
        bool counted = (type == NBD_CMD_READ || type == NBD_CMD_WRITE) &&
                       len <= NBD_MAX_PAYLOAD;
        NbdSlot *slot = nbd_slot_get(c, counted ? len : 0);
        slot->flags = GUINT16_FROM_BE(rq.flags);
        slot->type = type;
        slot->cookie = GUINT64_FROM_BE(rq.cookie);
        slot->offset = GUINT64_FROM_BE(rq.offset);
        slot->len = len;

        if (slot->type == NBD_CMD_DISC) {
            nbd_slot_put(c, slot);
            break;
        }
        conn_check(c, slot);

        if (slot->type == NBD_CMD_WRITE) {
            if (slot->len > NBD_MAX_PAYLOAD) {
                /* Skipping keeps the stream in step, so the client gets
                 * an error instead of a hang-up. */
                r = conn_skip(c, slot->len);
            } else if (nbd_slot_reserve(slot, slot->len)) {
                r = conn_read(c, slot->buf, slot->len);
            } else {
                slot_fail(slot, ENOMEM, "out of memory for the payload");
                r = conn_skip(c, slot->len);
            }
            if (r < 0) {
                ret = bh_error_set(errp, EPROTO,
                                   "client went away in the middle of a "
                                   "%u byte write payload", slot->len);
                nbd_slot_put(c, slot);
                break;
            }
        } else if (slot->type == NBD_CMD_READ && !slot->err &&
                   !nbd_slot_reserve(slot, slot->len)) {
            slot_fail(slot, ENOMEM, "out of memory for the read buffer");
        }

        conn_queue(c, slot);
    }
    conn_flush_batch(c);
    if (c->tls)
        nbd_tls_set_recv_hook(c->tls, NULL, NULL);

    /* Answer everything already read before the caller closes. */
    g_mutex_lock(&c->lock);
    c->waiting = true;
    while (c->inflight)
        g_cond_wait(&c->cond, &c->lock);
    int send_err = c->send_err;
    g_mutex_unlock(&c->lock);
    nbd_reply_stop(c);
    if (send_err == -ETIMEDOUT) {
        bh_error_clear(errp);
        ret = bh_error_set(errp, ETIMEDOUT, "the client stopped reading its "
                           "replies (send timeout); dropped it");
    }

out:
    for (int i = 0; i < NBD_CONN_SLOTS; i++)
        slot_buf_free(&c->slots[i]);
    g_free(c->rbuf);
    g_mutex_clear(&c->lock);
    g_cond_clear(&c->cond);
    g_free(c);
    return ret;
}
