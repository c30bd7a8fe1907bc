/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Connections of the nbd driver: connecting with a deadline, one poller
 * thread per connection driving libnbd's asynchronous API, dispatch of
 * commands, and reconnection with backoff.
 *
 * Locking, so that no libnbd callback can deadlock against an issuer:
 *  - s->lock guards dispatch (which connection is up, the pending queue)
 *    and is never held across a libnbd call;
 *  - c->hlock (read) is held by an issuer around its nbd_aio_* call, and
 *    (write) by the poller alone when it closes or replaces the handle;
 *  - libnbd's completion callbacks only move the command to c's done
 *    list (c->dlock); the poller finishes it outside libnbd, so a caller's
 *    completion never runs inside libnbd and may issue again at once.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "nbd.h"

/* The longest pause between two reconnection attempts, in units of
 * reconnect-delay. */
#define NBD_BACKOFF_MAX_FACTOR 16

int64_t nbdc_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* libnbd prefixes its messages with the function that failed; the
 * reader wants the cause. */
static char *nbdc_conn_libnbd_msg(void)
{
    const char *m = nbd_get_error();
    if (!m)
        return strdup("unknown libnbd error");
    const char *colon = strstr(m, ": ");
    if (strncmp(m, "nbd_", 4) == 0 && colon)
        m = colon + 2;
    return strdup(m);
}

static void nbdc_conn_kick(NbdConn *c)
{
    uint64_t one = 1;
    if (write(c->efd, &one, sizeof(one)) < 0) {
        /* The counter is full: the poller is awake anyway. */
    }
}

static void nbdc_conn_kick_all(NbdState *s)
{
    for (unsigned i = 0; i < s->nconns; i++)
        if (s->conns[i].efd >= 0)
            nbdc_conn_kick(&s->conns[i]);
}

/* Wait for h to need nothing more of fd within the deadline.  Used while
 * connecting and while disconnecting, on the caller's own handle. */
static int nbdc_conn_pump(struct nbd_handle *h, int64_t deadline,
                          int (*busy)(struct nbd_handle *h))
{
    while (busy(h) > 0) {
        int64_t left = deadline - nbdc_now_us();
        if (left <= 0)
            return -ETIMEDOUT;
        unsigned dir = nbd_aio_get_direction(h);
        struct pollfd p = { .fd = nbd_aio_get_fd(h), .events = 0 };
        if (p.fd < 0)
            return -EIO;
        if (dir & LIBNBD_AIO_DIRECTION_READ)
            p.events |= POLLIN;
        if (dir & LIBNBD_AIO_DIRECTION_WRITE)
            p.events |= POLLOUT;
        int n = poll(&p, 1, (int)((left + 999) / 1000));
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n <= 0)
            continue;
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) &&
            (dir & LIBNBD_AIO_DIRECTION_READ)) {
            if (nbd_aio_notify_read(h) < 0)
                return -EIO;
        } else if (p.revents & (POLLOUT | POLLHUP | POLLERR)) {
            if (nbd_aio_notify_write(h) < 0)
                return -EIO;
        }
    }
    return 0;
}

struct nbd_handle *nbdc_conn_connect(NbdState *s, char **msg, int *err)
{
    struct nbd_handle *h = nbd_create();
    if (!h) {
        *msg = nbdc_conn_libnbd_msg();
        *err = ENOMEM;
        return NULL;
    }
    /* A URI's query may name local files (tls-psk-file=,
     * tls-certificates=), as nbdinfo allows: the filename comes from the
     * user, or from an image's backing file name, which may name any
     * file already. */
    if (nbd_set_uri_allow_local_file(h, true) < 0 ||
        nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
        nbd_set_request_structured_replies(h, true) < 0 ||
        nbd_set_pread_initialize(h, false) < 0 ||
        nbd_aio_connect_uri(h, s->uri) < 0)
        goto fail;
    int r = nbdc_conn_pump(h, nbdc_now_us() + s->connect_timeout_us,
                           nbd_aio_is_connecting);
    if (r == -ETIMEDOUT) {
        char buf[128];
        snprintf(buf, sizeof(buf), "no answer within %.3g s "
                 "(connect-timeout)", s->connect_timeout_us / 1e6);
        *msg = strdup(buf);
        *err = ETIMEDOUT;
        nbd_close(h);
        return NULL;
    }
    if (r == 0 && nbd_aio_is_ready(h) > 0)
        return h;
fail:
    *err = nbd_get_errno();
    if (*err == 0)
        *err = EIO;
    *msg = nbdc_conn_libnbd_msg();
    nbd_close(h);
    return NULL;
}

/* ---- commands ---- */

void nbdc_cmd_finish(NbdCmd *cmd, int err)
{
    NbdJob *job = cmd->job;
    if (err) {
        int zero = 0;
        atomic_compare_exchange_strong(&job->err, &zero, err);
    }
    free(cmd);
    if (atomic_fetch_sub(&job->pending, 1) == 1)
        job->done(job);
}

/* A command that ran out of time waiting for a server. */
static void nbdc_cmd_expire(NbdCmd *cmd)
{
    atomic_store(&cmd->job->timed_out, true);
    nbdc_cmd_finish(cmd, EIO);
}

/* Append cmd to the singly linked queue head..tail. */
static void nbdc_queue_push(NbdCmd **head, NbdCmd **tail, NbdCmd *cmd)
{
    cmd->next = NULL;
    if (*tail)
        (*tail)->next = cmd;
    else
        *head = cmd;
    *tail = cmd;
}

static void nbdc_list_add(NbdCmd *head, NbdCmd *cmd)
{
    cmd->next = head->next;
    cmd->prev = head;
    head->next->prev = cmd;
    head->next = cmd;
}

static void nbdc_list_del(NbdCmd *cmd)
{
    cmd->prev->next = cmd->next;
    cmd->next->prev = cmd->prev;
    cmd->next = cmd->prev = NULL;
}

/* libnbd's completion: runs inside libnbd, so only hand over. */
static int nbdc_cmd_completed(void *opaque, int *error)
{
    NbdCmd *cmd = opaque;
    NbdConn *c = cmd->conn;
    pthread_mutex_lock(&c->dlock);
    cmd->error = *error;
    nbdc_list_del(cmd);
    nbdc_queue_push(&c->done_head, &c->done_tail, cmd);
    pthread_mutex_unlock(&c->dlock);
    return 1;
}

/* Block status: keep the first extent, grown over the following ones
 * that say the same. */
static int nbdc_cmd_extent(void *opaque, const char *context, uint64_t offset,
                           uint32_t *entries, size_t n, int *error)
{
    NbdCmd *cmd = opaque;
    NbdJob *job = cmd->job;
    if (strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0 || n < 2)
        return 0;
    uint32_t flags = entries[1];
    uint64_t len = 0;
    for (size_t i = 0; i + 1 < n && entries[i + 1] == flags; i += 2)
        len += entries[i];
    job->st_len = len;
    job->st_flags = (flags & LIBNBD_STATE_HOLE ? BH_BLOCK_HOLE : 0) |
                    (flags & LIBNBD_STATE_ZERO ? BH_BLOCK_ZERO : 0);
    return 0;
}

static void nbdc_conn_mark_down(NbdState *s, NbdConn *c)
{
    pthread_mutex_lock(&s->lock);
    if (c->up) {
        c->up = false;
        bool any = false;
        for (unsigned i = 0; i < s->nconns; i++)
            any |= s->conns[i].up;
        if (!any)
            s->down_since = nbdc_now_us();
    }
    pthread_mutex_unlock(&s->lock);
}

static void nbdc_cmd_requeue(NbdState *s, NbdCmd *cmd);

/* Issue cmd on c; on a connection that cannot take it, queue it again. */
static void nbdc_conn_issue(NbdConn *c, NbdCmd *cmd)
{
    nbd_completion_callback done = { .callback = nbdc_cmd_completed,
                                     .user_data = cmd };
    nbd_extent_callback extent = { .callback = nbdc_cmd_extent,
                                   .user_data = cmd };
    int64_t cookie = -1;
    int err = ENOTCONN;
    bool lost = true, kick = true;

    cmd->conn = c;
    pthread_rwlock_rdlock(&c->hlock);
    if (c->h) {
        pthread_mutex_lock(&c->dlock);
        nbdc_list_add(&c->inflight, cmd);
        pthread_mutex_unlock(&c->dlock);
        switch (cmd->op) {
        case NBD_CMD_READ:
            cookie = nbd_aio_pread(c->h, cmd->buf, cmd->len, cmd->offset,
                                   done, cmd->flags);
            break;
        case NBD_CMD_WRITE:
            cookie = nbd_aio_pwrite(c->h, cmd->buf, cmd->len, cmd->offset,
                                    done, cmd->flags);
            break;
        case NBD_CMD_FLUSH:
            cookie = nbd_aio_flush(c->h, done, 0);
            break;
        case NBD_CMD_TRIM:
            cookie = nbd_aio_trim(c->h, cmd->len, cmd->offset, done,
                                  cmd->flags);
            break;
        case NBD_CMD_ZERO:
            cookie = nbd_aio_zero(c->h, cmd->len, cmd->offset, done,
                                  cmd->flags);
            break;
        case NBD_CMD_STATUS:
            cookie = nbd_aio_block_status(c->h, cmd->len, cmd->offset,
                                          extent, done, 0);
            break;
        }
        /* The poller waits for replies already; it needs waking only
         * when part of this command is still to be sent. */
        kick = cookie < 0 ||
               (nbd_aio_get_direction(c->h) & LIBNBD_AIO_DIRECTION_WRITE);
        if (cookie < 0) {
            /* Not issued: libnbd will not call back. */
            err = nbd_get_errno();
            lost = nbd_aio_is_ready(c->h) <= 0 &&
                   nbd_aio_is_processing(c->h) <= 0;
            pthread_mutex_lock(&c->dlock);
            nbdc_list_del(cmd);
            pthread_mutex_unlock(&c->dlock);
        }
    }
    pthread_rwlock_unlock(&c->hlock);
    if (cookie < 0) {
        if (lost) {
            nbdc_conn_mark_down(c->s, c);
            nbdc_cmd_requeue(c->s, cmd);
        } else {
            nbdc_cmd_finish(cmd, err ? err : EIO);
        }
    }
    if (kick)
        nbdc_conn_kick(c);
}

/* The next connection that is up, round robin; NULL if none.  Without
 * s->lock it is a guess (the connection may go down before the command
 * reaches it, and then the command comes back here); with it, the
 * answer the pending queue relies on. */
static NbdConn *nbdc_conn_pick(NbdState *s)
{
    unsigned start = atomic_fetch_add(&s->rr, 1);
    for (unsigned k = 0; k < s->nconns; k++) {
        NbdConn *c = &s->conns[(start + k) % s->nconns];
        if (atomic_load(&c->up))
            return c;
    }
    return NULL;
}

/*
 * Send cmd where a connection is up; else keep it until one is, or until
 * its deadline: retry-timeout after the moment no connection was left
 * (for a command that was in flight on a connection that died while
 * others lived on: after it came back).  retry-timeout=0 fails at once.
 */
static void nbdc_cmd_requeue(NbdState *s, NbdCmd *cmd)
{
    /* The common case, a connection up, takes no lock. */
    NbdConn *c = nbdc_conn_pick(s);
    if (c) {
        nbdc_conn_issue(c, cmd);
        return;
    }
    int64_t now = nbdc_now_us();

    pthread_mutex_lock(&s->lock);
    c = nbdc_conn_pick(s);
    if (!c) {
        if (!cmd->deadline)
            cmd->deadline = (s->down_since ? s->down_since : now) +
                            s->retry_timeout_us;
        if (cmd->deadline <= now || s->retry_timeout_us == 0 ||
            atomic_load(&s->stopping)) {
            pthread_mutex_unlock(&s->lock);
            nbdc_cmd_expire(cmd);
            return;
        }
        nbdc_queue_push(&s->pending_head, &s->pending_tail, cmd);
    }
    pthread_mutex_unlock(&s->lock);
    if (c)
        nbdc_conn_issue(c, cmd);
    else
        nbdc_conn_kick_all(s);
}

void nbdc_cmd_dispatch(NbdState *s, NbdCmd *cmd)
{
    cmd->deadline = 0;
    nbdc_cmd_requeue(s, cmd);
}

/* ---- the poller ---- */

/* Finish what libnbd called back: results, or again elsewhere when the
 * connection went away under it. */
static void nbdc_conn_reap(NbdConn *c, bool dead)
{
    pthread_mutex_lock(&c->dlock);
    NbdCmd *cmd = c->done_head;
    c->done_head = c->done_tail = NULL;
    pthread_mutex_unlock(&c->dlock);
    while (cmd) {
        NbdCmd *next = cmd->next;
        int e = cmd->error;
        if (e && (dead || e == ENOTCONN || e == ESHUTDOWN))
            nbdc_cmd_requeue(c->s, cmd);
        else
            nbdc_cmd_finish(cmd, e);
        cmd = next;
    }
}

/* Issue what waits in the pending queue on c, which is up; fail what
 * waited too long when nothing is up. */
static int64_t nbdc_conn_pending(NbdConn *c)
{
    NbdState *s = c->s;
    int64_t now = nbdc_now_us(), next = 0;
    NbdCmd *take = NULL, *expired = NULL, **pp;

    pthread_mutex_lock(&s->lock);
    if (c->up) {
        take = s->pending_head;
        s->pending_head = s->pending_tail = NULL;
    } else {
        s->pending_tail = NULL;
        for (pp = &s->pending_head; *pp;) {
            NbdCmd *cmd = *pp;
            if (cmd->deadline <= now || atomic_load(&s->stopping)) {
                *pp = cmd->next;
                cmd->next = expired;
                expired = cmd;
            } else {
                if (!next || cmd->deadline < next)
                    next = cmd->deadline;
                s->pending_tail = cmd;
                pp = &cmd->next;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    while (take) {
        NbdCmd *n = take->next;
        nbdc_conn_issue(c, take);
        take = n;
    }
    while (expired) {
        NbdCmd *n = expired->next;
        nbdc_cmd_expire(expired);
        expired = n;
    }
    return next;
}

/* The handle died: close it and send its commands elsewhere. */
static void nbdc_conn_lost(NbdConn *c, char *why)
{
    NbdState *s = c->s;

    nbdc_conn_mark_down(s, c);
    pthread_rwlock_wrlock(&c->hlock);
    struct nbd_handle *h = c->h;
    c->h = NULL;
    pthread_rwlock_unlock(&c->hlock);
    nbd_close(h);
    if (why && !atomic_load(&s->stopping))
        fprintf(stderr, "blkhost: nbd: connection %d to '%s' lost (%s); "
                "reconnecting\n", c->index, s->uri, why);
    free(why);
    /* Whatever libnbd did not call back is as good as lost. */
    pthread_mutex_lock(&c->dlock);
    while (c->inflight.next != &c->inflight) {
        NbdCmd *cmd = c->inflight.next;
        nbdc_list_del(cmd);
        cmd->error = ENOTCONN;
        nbdc_queue_push(&c->done_head, &c->done_tail, cmd);
    }
    pthread_mutex_unlock(&c->dlock);
    nbdc_conn_reap(c, true);
}

/* A new handle must be the same export as before. */
static bool nbdc_conn_same_export(NbdState *s, struct nbd_handle *h,
                                  char **why)
{
    int64_t size = nbd_get_size(h);
    char buf[200];
    if (size != s->size) {
        snprintf(buf, sizeof(buf), "the export's size changed from %lld to "
                 "%lld bytes", (long long)s->size, (long long)size);
        *why = strdup(buf);
        return false;
    }
    if (s->writable && nbd_is_read_only(h) > 0) {
        *why = strdup("the export became read-only");
        return false;
    }
    return true;
}

static void nbdc_conn_try_reconnect(NbdConn *c)
{
    NbdState *s = c->s;
    char *msg = NULL;
    int err = 0;
    struct nbd_handle *h = nbdc_conn_connect(s, &msg, &err);

    if (h && !nbdc_conn_same_export(s, h, &msg)) {
        nbd_close(h);
        h = NULL;
    }
    if (!h) {
        free(msg);
        return;
    }
    pthread_rwlock_wrlock(&c->hlock);
    c->h = h;
    pthread_rwlock_unlock(&c->hlock);
    pthread_mutex_lock(&s->lock);
    c->up = true;
    s->down_since = 0;
    pthread_mutex_unlock(&s->lock);
    fprintf(stderr, "blkhost: nbd: connection %d to '%s' is back\n",
            c->index, s->uri);
}

static int nbdc_conn_closing(struct nbd_handle *h)
{
    return nbd_aio_is_closed(h) <= 0 && nbd_aio_is_dead(h) <= 0;
}

static void nbdc_conn_disconnect(NbdConn *c)
{
    if (!c->h)
        return;
    /* Tell the server politely, but never wait long for it. */
    if (nbd_aio_is_ready(c->h) > 0 && nbd_aio_disconnect(c->h, 0) == 0)
        nbdc_conn_pump(c->h, nbdc_now_us() + 1000000, nbdc_conn_closing);
    nbdc_conn_lost(c, NULL);
}

static void *nbdc_conn_main(void *opaque)
{
    NbdConn *c = opaque;
    NbdState *s = c->s;
    int64_t backoff = s->reconnect_delay_us, next_try = 0;

    while (!atomic_load(&s->stopping)) {
        int64_t now = nbdc_now_us();
        if (!c->h && now >= next_try) {
            nbdc_conn_try_reconnect(c);
            if (c->h) {
                backoff = s->reconnect_delay_us;
            } else {
                next_try = nbdc_now_us() + backoff;
                backoff *= 2;
                if (backoff > s->reconnect_delay_us * NBD_BACKOFF_MAX_FACTOR)
                    backoff = s->reconnect_delay_us * NBD_BACKOFF_MAX_FACTOR;
            }
        }
        int64_t wake = nbdc_conn_pending(c);
        if (!c->h && (!wake || next_try < wake))
            wake = next_try;

        struct pollfd p[2] = { { .fd = c->efd, .events = POLLIN } };
        unsigned dir = 0;
        int nfd = 1;
        if (c->h) {
            dir = nbd_aio_get_direction(c->h);
            p[1].fd = nbd_aio_get_fd(c->h);
            p[1].events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
                          (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
            nfd = p[1].fd >= 0 ? 2 : 1;
        }
        int timeout = 1000;
        if (wake) {
            int64_t left = wake - nbdc_now_us();
            timeout = left <= 0 ? 0 : left > 1000000 ? 1000
                                               : (int)((left + 999) / 1000);
        }
        /* A handle without a socket died inside an issuer's libnbd call
         * (a send that failed): nothing would wake this poll, and the
         * commands on it would wait out the timeout.  Look at once. */
        if (c->h && nfd == 1)
            timeout = 0;
        int n = poll(p, (nfds_t)nfd, timeout);
        if (n > 0 && (p[0].revents & POLLIN)) {
            uint64_t v;
            if (read(c->efd, &v, sizeof(v)) < 0) {
                /* EAGAIN: another wake-up took it. */
            }
        }
        char *why = NULL;
        if (n > 0 && nfd == 2 && p[1].revents) {
            if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
                (dir & LIBNBD_AIO_DIRECTION_READ) &&
                nbd_aio_notify_read(c->h) < 0)
                why = nbdc_conn_libnbd_msg();
            if (!why && (p[1].revents & (POLLOUT | POLLERR)) &&
                (dir & LIBNBD_AIO_DIRECTION_WRITE) &&
                nbd_aio_notify_write(c->h) < 0)
                why = nbdc_conn_libnbd_msg();
        }
        /* A dead handle first leaves the dispatch, so that what it
         * aborted goes elsewhere rather than back to it. */
        if (c->h && (why || nbd_aio_is_dead(c->h) > 0 ||
                     nbd_aio_is_closed(c->h) > 0)) {
            if (!why)
                why = strdup(nbd_aio_is_closed(c->h) > 0
                             ? "the server closed the connection"
                             : "the connection failed");
            nbdc_conn_lost(c, why);
            next_try = 0;
            backoff = s->reconnect_delay_us;
        } else {
            nbdc_conn_reap(c, false);
        }
    }
    nbdc_conn_disconnect(c);
    return NULL;
}

int nbdc_conn_start(NbdState *s, unsigned i, struct nbd_handle *h)
{
    NbdConn *c = &s->conns[i];
    c->s = s;
    c->index = (int)i;
    c->h = h;
    c->up = true;
    c->inflight.next = c->inflight.prev = &c->inflight;
    pthread_rwlock_init(&c->hlock, NULL);
    pthread_mutex_init(&c->dlock, NULL);
    c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->efd < 0)
        return -errno;
    int r = pthread_create(&c->thread, NULL, nbdc_conn_main, c);
    if (r)
        return -r;
    c->thread_started = true;
    return 0;
}

void nbdc_conn_stop_all(NbdState *s)
{
    atomic_store(&s->stopping, true);
    nbdc_conn_kick_all(s);
    for (unsigned i = 0; i < s->nconns; i++) {
        NbdConn *c = &s->conns[i];
        if (c->thread_started) {
            pthread_join(c->thread, NULL);
        } else if (c->h) {
            nbd_close(c->h);
            c->h = NULL;
        }
        if (c->efd >= 0)
            close(c->efd);
        if (c->thread_started) {
            pthread_rwlock_destroy(&c->hlock);
            pthread_mutex_destroy(&c->dlock);
        }
    }
    /* Nothing can be waiting any more: the core drained the node. */
    while (s->pending_head) {
        NbdCmd *cmd = s->pending_head;
        s->pending_head = cmd->next;
        nbdc_cmd_expire(cmd);
    }
}
