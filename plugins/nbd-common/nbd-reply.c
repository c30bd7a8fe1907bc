/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The reply path of one NBD connection.
 *
 * The worker pool is shared by every connection, so a worker must never
 * block on one client's socket: a client that stops reading its replies
 * would otherwise stall everybody's requests.  A worker that finds the
 * socket idle and nothing queued tries one non-blocking send (the common
 * case then costs no thread hop), over TLS too; what does not fit, and a
 * TLS reply in several pieces, is queued on the connection, and the
 * connection's own writer thread drains the queue with blocking sends.
 * Replies never interleave: whoever sends holds c->sending, and a partly
 * sent reply goes back to the head of the queue (over TLS, a record
 * GnuTLS holds half sent stays its own: nbd_tls_send_some()).  A slot is
 * given back once its reply is out, so the reader's slot and byte limits
 * (nbd-conn.c) turn a stuck socket into back-pressure on that one client.
 *
 * The frontend may give the socket a send timeout (SO_SNDTIMEO).  A
 * blocking send that made no progress for that long fails with EAGAIN,
 * which here means the client stopped reading: the connection is dropped
 * and nbd_conn_serve() reports ETIMEDOUT.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "nbd-conn-priv.h"
#include <blkhost/glib.h>

/* The slot's iov lost its first done bytes to a send. */
static void reply_advance(NbdSlot *slot, size_t done)
{
    while (slot->iov_first < slot->niov &&
           done >= slot->iov[slot->iov_first].iov_len) {
        done -= slot->iov[slot->iov_first].iov_len;
        slot->iov_first++;
    }
    if (done) {
        struct iovec *iov = &slot->iov[slot->iov_first];
        iov->iov_base = (char *)iov->iov_base + done;
        iov->iov_len -= done;
    }
}

/* Send what is left of the slot's iov.  0 when all went out; -EAGAIN when
 * a non-blocking send found the socket full (the slot records how far it
 * got); -ETIMEDOUT when a blocking send hit the send timeout; -errno. */
static int reply_write(NbdConn *c, NbdSlot *slot, bool nonblock)
{
    while (slot->iov_first < slot->niov) {
        struct iovec *iov = slot->iov + slot->iov_first;
        int n = slot->niov - slot->iov_first;
        ssize_t done;
        if (c->tls && n == 1) {
            /* One piece (header and data together): record by record,
             * so that a full socket leaves a place to resume from; a
             * record GnuTLS kept is finished by the same call again. */
            done = nbd_tls_send_some(c->tls, iov->iov_base, iov->iov_len,
                                     nonblock);
            if (done == -EAGAIN)
                return nonblock ? -EAGAIN : -ETIMEDOUT;
            if (done < 0)
                return (int)done;
            reply_advance(slot, (size_t)done);
            continue;
        }
        if (c->tls) {
            /* Several pieces (sparse reads, error messages): only the
             * writer thread sends these, blocking (nbd_reply_send). */
            int r = nbd_tls_sendv(c->tls, iov, n);
            return r == -EAGAIN ? -ETIMEDOUT : r;
        }
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        done = sendmsg(c->fd, &mh, MSG_NOSIGNAL | (nonblock ? MSG_DONTWAIT : 0));
        if (done < 0 && errno == ENOTSOCK) {
            if (nonblock)
                return -EAGAIN;     /* a pipe: the writer may block on it */
            done = writev(c->fd, iov, n);
        }
        if (done < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return nonblock ? -EAGAIN : -ETIMEDOUT;
            return -errno;
        }
        reply_advance(slot, (size_t)done);
    }
    return 0;
}

/* A send failed: the client is gone or stuck.  Later replies are dropped
 * and the reader is woken so that the connection ends.  Under c->lock. */
static void reply_fail(NbdConn *c, int err)
{
    if (!c->dead) {
        c->dead = true;
        c->send_err = err;
        shutdown(c->fd, SHUT_RDWR);
    }
}

static gpointer reply_writer(gpointer data)
{
    NbdConn *c = data;
    g_mutex_lock(&c->lock);
    for (;;) {
        while ((!c->out_head || c->sending) && !c->writer_quit)
            g_cond_wait(&c->out_cond, &c->lock);
        NbdSlot *slot = c->out_head;
        if (!slot || c->sending)
            break;
        c->out_head = slot->next;
        if (!c->out_head)
            c->out_tail = NULL;
        bool dead = c->dead;
        c->sending = true;
        g_mutex_unlock(&c->lock);
        int r = dead ? 0 : reply_write(c, slot, false);
        nbd_slot_trim(slot);
        g_mutex_lock(&c->lock);
        if (r < 0)
            reply_fail(c, r);
        c->sending = false;
        /* The reader joins this thread before freeing c, so c outlives
         * the slot's return. */
        nbd_slot_put_locked(c, slot);
    }
    g_mutex_unlock(&c->lock);
    return NULL;
}

bool nbd_reply_start(NbdConn *c, BhError **errp)
{
    GError *err = NULL;
    g_cond_init(&c->out_cond);
    c->writer = g_thread_try_new("nbd-writer", reply_writer, c, &err);
    if (!c->writer) {
        bh_error_set(errp, EAGAIN, "cannot start the connection's writer "
                     "thread: %s", err->message);
        g_error_free(err);
        g_cond_clear(&c->out_cond);
        return false;
    }
    return true;
}

void nbd_reply_stop(NbdConn *c)
{
    g_mutex_lock(&c->lock);
    c->writer_quit = true;
    g_cond_signal(&c->out_cond);
    g_mutex_unlock(&c->lock);
    g_thread_join(c->writer);
    c->writer = NULL;
    g_cond_clear(&c->out_cond);
}

/* Queue the slot; front: a partly sent reply, which must be finished
 * before any other.  Whoever holds the send side sends it; the writer
 * thread is woken only when nobody does.  Under c->lock. */
static void reply_queue(NbdConn *c, NbdSlot *slot, bool front)
{
    if (front) {
        slot->next = c->out_head;
        c->out_head = slot;
        if (!c->out_tail)
            c->out_tail = slot;
    } else {
        slot->next = NULL;
        if (c->out_tail)
            c->out_tail->next = slot;
        else
            c->out_head = slot;
        c->out_tail = slot;
    }
    if (!c->sending)
        g_cond_signal(&c->out_cond);
}

/* Over TLS a worker sends only a reply in one piece: record by record
 * with plain record sends, which the writer can resume after EAGAIN;
 * several pieces need corking, whose EAGAIN cannot be resumed that way. */
static bool reply_worker_can_send(NbdConn *c, NbdSlot *slot)
{
    return !c->tls || slot->niov - slot->iov_first == 1;
}

void nbd_reply_send(NbdSlot *slot, int niov)
{
    NbdConn *c = slot->conn;
    slot->iov_first = 0;
    slot->niov = niov;

    g_mutex_lock(&c->lock);
    if (c->dead) {
        g_mutex_unlock(&c->lock);
        nbd_slot_done(slot);
        return;
    }
    /* Someone else sends: the reply joins the queue, which the sender
     * (a worker, below, or the writer) goes on to send.  A queue with
     * nobody sending is the writer's after a full socket. */
    if (c->sending || c->out_head || !reply_worker_can_send(c, slot)) {
        reply_queue(c, slot, false);
        g_mutex_unlock(&c->lock);
        return;
    }
    c->sending = true;
    for (int sent = 0;; sent++) {
        g_mutex_unlock(&c->lock);
        int r = reply_write(c, slot, true);
        if (r != -EAGAIN)
            nbd_slot_trim(slot);
        g_mutex_lock(&c->lock);
        if (r == -EAGAIN) {
            reply_queue(c, slot, true);
            break;
        }
        if (r < 0)
            reply_fail(c, r);
        /* One lock for both: the slot goes back with the send side. */
        nbd_slot_put_locked(c, slot);
        /* Replies that other workers queued meanwhile go out now, as
         * long as the socket takes them without waiting; past a
         * connection's worth of them the writer takes over, so that a
         * busy client cannot keep a pool worker from other clients. */
        slot = c->out_head;
        if (!slot || c->dead || sent >= NBD_CONN_SLOTS ||
            !reply_worker_can_send(c, slot))
            break;
        c->out_head = slot->next;
        if (!c->out_head)
            c->out_tail = NULL;
    }
    c->sending = false;
    if (c->out_head)
        g_cond_signal(&c->out_cond);
    /* After this unlock the reader may free the connection. */
    g_mutex_unlock(&c->lock);
}
