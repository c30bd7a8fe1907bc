/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Accepting clients and running each one's thread: handshake, then the
 * transmission phase (the thread becomes the connection's reader), then
 * cleanup.  Connect and disconnect events go to the main thread through
 * bh_loop_invoke(); a non-persistent server lets go of the main loop when
 * its last client leaves.
 *
 * Limits, so that slow or hostile clients cannot lock others out:
 *  - the handshake has one deadline for all of it (handshake-timeout),
 *    enforced by the accept thread, which shuts the socket of a client
 *    past it (a client trickling one byte at a time gains nothing);
 *  - clients in the handshake have their own cap (max-handshakes), and
 *    max-clients counts served clients only;
 *  - past either cap the accept thread stops accepting, so new clients
 *    wait un-greeted in the listen backlog until a place frees, as with
 *    qemu-nbd; a client that ends its handshake while the served places
 *    are full waits, unserved, for one;
 *  - a client whose socket has not drained for send-timeout seconds is
 *    dropped (SO_SNDTIMEO, see nbd-reply.c).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "nbd-server.h"
#include <blkhost/glib.h>

#define NBD_STOP_GRACE 10   /* s before stop cuts off clients that read */

/* ---- events ---- */

typedef struct NbdEvent {
    NbdEventSink *sink;
    char *event;
    BhInfo *details;
} NbdEvent;

static void sink_unref(NbdEventSink *sink)
{
    if (g_atomic_int_dec_and_test(&sink->ref)) {
        g_mutex_clear(&sink->lock);
        g_free(sink);
    }
}

static void event_deliver(void *data)
{
    NbdEvent *ev = data;
    g_mutex_lock(&ev->sink->lock);
    BhFrontendEventFn cb = ev->sink->cb;
    void *cbdata = ev->sink->data;
    g_mutex_unlock(&ev->sink->lock);
    if (cb)
        cb(cbdata, ev->event, ev->details);
    sink_unref(ev->sink);
    g_free(ev->event);
    bh_info_free(ev->details);
    g_free(ev);
}

void nbd_server_emit(NbdServer *srv, const char *event, BhInfo *details)
{
    NbdEvent *ev = g_new0(NbdEvent, 1);
    g_atomic_int_inc(&srv->sink->ref);
    ev->sink = srv->sink;
    ev->event = g_strdup(event);
    ev->details = details;
    bh_loop_invoke(event_deliver, ev);
}

static void loop_release(void *data)
{
    bh_loop_release();
}

/* ---- export lookup for the handshake ---- */

static bool srv_lookup(void *data, const char *name, NbdExportView *v)
{
    NbdClient *cl = data;
    NbdServer *srv = cl->srv;
    BhExport *found = NULL;
    g_mutex_lock(&srv->lock);
    for (guint i = 0; i < srv->exports->len; i++) {
        BhExport *e = g_ptr_array_index(srv->exports, i);
        if (strcmp(bh_export_name(e), name) == 0) {
            found = e;
            break;
        }
    }
    /* With no export called "", the default name means the first one. */
    if (!found && !*name && srv->exports->len)
        found = g_ptr_array_index(srv->exports, 0);
    g_mutex_unlock(&srv->lock);
    if (!found)
        return false;
    v->name = bh_export_name(found);
    v->description = bh_export_description(found);
    v->node = bh_export_node(found);
    v->readonly = bh_export_readonly(found);
    v->single_conn = srv->max_clients == 1;
    v->opaque = found;
    return true;
}

static void srv_list(void *data, NbdListFn fn, void *ctx)
{
    NbdClient *cl = data;
    NbdServer *srv = cl->srv;
    g_mutex_lock(&srv->lock);
    /* Exports are never removed while clients run, so the names stay
     * valid after unlocking; copy the array, not the strings. */
    g_autoptr(GPtrArray) copy = g_ptr_array_new();
    for (guint i = 0; i < srv->exports->len; i++)
        g_ptr_array_add(copy, g_ptr_array_index(srv->exports, i));
    g_mutex_unlock(&srv->lock);
    for (guint i = 0; i < copy->len; i++) {
        BhExport *e = g_ptr_array_index(copy, i);
        fn(ctx, bh_export_name(e), bh_export_description(e));
    }
}

static void accept_wake(NbdServer *srv)
{
    char c = 0;
    /* The pipe is non-blocking: when full, a wake-up is pending anyway. */
    while (write(srv->wake[1], &c, 1) < 0 && errno == EINTR)
        ;
}

/* The client is out of the handshake: free its handshake place.  Under
 * srv->lock; true if it held one. */
static bool client_handshake_end(NbdClient *cl)
{
    if (!cl->handshaking)
        return false;
    cl->handshaking = false;
    cl->srv->nhandshakes--;
    return true;
}

/* At GO: take a served place, waiting for one while max-clients are
 * served (the handshake deadline no longer applies: the client did its
 * part).  False when the server stops meanwhile. */
static bool srv_enter(void *data)
{
    NbdClient *cl = data;
    NbdServer *srv = cl->srv;
    g_mutex_lock(&srv->lock);
    if (cl->timed_out) {
        g_mutex_unlock(&srv->lock);
        return false;
    }
    bool freed = client_handshake_end(cl);
    g_mutex_unlock(&srv->lock);
    if (freed)
        accept_wake(srv);
    g_mutex_lock(&srv->lock);
    while (srv->max_clients && srv->nclients >= srv->max_clients &&
           !srv->stopping)
        g_cond_wait(&srv->cond, &srv->lock);
    bool ok = !srv->stopping;
    if (ok) {
        cl->counted = true;
        srv->nclients++;
        srv->total_clients++;
    }
    g_mutex_unlock(&srv->lock);
    return ok;
}

static const NbdHandshakeOps srv_ops = {
    .lookup = srv_lookup,
    .list = srv_list,
    .enter = srv_enter,
};

/* ---- one client ---- */

static BhInfo *client_info(NbdClient *cl, const NbdSession *s)
{
    BhInfo *info = bh_info_new();
    bh_info_add_int(info, "id", (int64_t)cl->id);
    bh_info_add_str(info, "peer", cl->peer);
    bh_info_add_str(info, "export", s->exp.name);
    bh_info_add_bool(info, "tls", s->tls != NULL);
    if (nbd_tls_conn_identity(s->tls))
        bh_info_add_str(info, "tls_identity", nbd_tls_conn_identity(s->tls));
    return info;
}

static gpointer client_thread(gpointer data)
{
    NbdClient *cl = data;
    NbdServer *srv = cl->srv;
    NbdSession s;
    BhError *err = NULL;

    int r = nbd_handshake_server_tls(cl->fd, &srv_ops, cl, srv->tls, NULL,
                                     &s, &err);
    g_mutex_lock(&srv->lock);
    bool freed = client_handshake_end(cl);
    bool timed_out = cl->timed_out;
    if (r == 1)
        cl->export_name = g_strdup(s.exp.name);
    g_mutex_unlock(&srv->lock);
    if (freed)
        accept_wake(srv);    /* a handshake place is free */

    if (timed_out) {
        g_printerr("nbd-server: client %" G_GUINT64_FORMAT " (%s) did not "
                   "finish the handshake within %u s; disconnecting\n",
                   cl->id, cl->peer, srv->handshake_timeout);
        bh_error_clear(&err);
    } else if (r < 0) {
        g_printerr("nbd-server: client %" G_GUINT64_FORMAT " (%s): %s\n",
                   cl->id, cl->peer, bh_error_message(err));
        bh_error_clear(&err);
    } else if (r == 1) {
        if (srv->send_timeout) {
            struct timeval tv = { .tv_sec = srv->send_timeout };
            setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        }
        nbd_server_emit(srv, "connect", client_info(cl, &s));
        /* Below this point the client's traffic is the data path. */
        if (nbd_conn_serve(cl->fd, &s, srv->pool, &srv->stats, &err) < 0) {
            if (bh_error_errno(err) == ETIMEDOUT)
                g_printerr("nbd-server: client %" G_GUINT64_FORMAT " (%s) "
                           "read none of its replies for %u s; "
                           "disconnecting it\n", cl->id, cl->peer,
                           srv->send_timeout);
            else
                g_printerr("nbd-server: client %" G_GUINT64_FORMAT " (%s): "
                           "%s\n", cl->id, cl->peer, bh_error_message(err));
            bh_error_clear(&err);
        }
        nbd_server_emit(srv, "disconnect", client_info(cl, &s));
    }
    nbd_session_clear(&s);

    bool release = false;
    g_mutex_lock(&srv->lock);
    close(cl->fd);
    srv->clients = g_list_remove(srv->clients, cl);
    bool last = !srv->clients;
    if (cl->counted)
        srv->nclients--;
    /* Like qemu-nbd, a server that is not persistent ends when its last
     * client leaves, whether it was served or not. */
    if (!srv->clients && !srv->persistent && srv->holding) {
        srv->holding = false;
        release = true;
    }
    /* A served place is free.  Woken under the lock: once this client
     * is off the list and the lock is let go, a stopping server may free
     * srv (ASan saw the write land on a freed server). */
    if (cl->counted)
        accept_wake(srv);
    g_cond_broadcast(&srv->cond);
    g_mutex_unlock(&srv->lock);
    if (release)
        bh_loop_invoke(loop_release, NULL);
    g_free(cl->export_name);
    g_free(cl->peer);
    g_free(cl);
#ifdef __GLIBC__
    /* Each connection's threads spread their buffers over glibc's
     * per-thread arenas, which keep freed memory: after 64 clients left,
     * an idle server held 34 MiB of RSS with 1.2 MiB in use, and a longer
     * run held more (bench/soak.sh).  Give it back once nobody is
     * connected, as qemu trims after its RCU callbacks. */
    if (last)
        malloc_trim(0);
#endif
    return NULL;
}

static char *peer_name(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char a[INET6_ADDRSTRLEN] = "?";
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return g_strdup("unknown");
    switch (ss.ss_family) {
    case AF_INET: {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
        return g_strdup_printf("%s:%d", a, ntohs(in->sin_port));
    }
    case AF_INET6: {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
        return g_strdup_printf("[%s]:%d", a, ntohs(in6->sin6_port));
    }
    default:
        return g_strdup("unix");
    }
}

static void accept_one(NbdServer *srv, const NbdListener *l)
{
    int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
            errno == ENOMEM) {
            g_printerr("nbd-server: cannot accept a client: %s\n",
                       g_strerror(errno));
            g_usleep(100 * 1000);   /* don't spin while out of fds */
        }
        return;
    }
    if (l->family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    NbdClient *cl = g_new0(NbdClient, 1);
    cl->srv = srv;
    cl->fd = fd;
    cl->peer = peer_name(fd);

    g_mutex_lock(&srv->lock);
    if (srv->stopping) {
        g_mutex_unlock(&srv->lock);
        close(fd);
        g_free(cl->peer);
        g_free(cl);
        return;
    }
    cl->id = ++srv->next_id;
    cl->handshaking = true;
    srv->nhandshakes++;
    if (srv->handshake_timeout)
        cl->deadline = g_get_monotonic_time() +
                       srv->handshake_timeout * G_TIME_SPAN_SECOND;
    srv->clients = g_list_prepend(srv->clients, cl);
    g_mutex_unlock(&srv->lock);

    GError *err = NULL;
    GThread *t = g_thread_try_new("nbd-client", client_thread, cl, &err);
    if (!t) {
        g_printerr("nbd-server: cannot start a client thread: %s\n",
                   err->message);
        g_error_free(err);
        /* Undo as the thread would have. */
        g_mutex_lock(&srv->lock);
        close(fd);
        srv->clients = g_list_remove(srv->clients, cl);
        srv->nhandshakes--;
        g_cond_broadcast(&srv->cond);
        g_mutex_unlock(&srv->lock);
        g_free(cl->peer);
        g_free(cl);
        return;
    }
    g_thread_unref(t);   /* detached: it cleans up after itself */
}

/* Whether a new client may be greeted now.  Under srv->lock. */
static bool accept_room(NbdServer *srv)
{
    return srv->nhandshakes < srv->max_handshakes &&
           (!srv->max_clients || srv->nclients < srv->max_clients);
}

/* Cut off handshakes past their deadline; returns the poll timeout (ms)
 * until the next deadline, -1 if none.  Under srv->lock. */
static int accept_reap(NbdServer *srv)
{
    gint64 now = g_get_monotonic_time(), next = G_MAXINT64;
    for (GList *l = srv->clients; l; l = l->next) {
        NbdClient *cl = l->data;
        if (!cl->handshaking || !cl->deadline || cl->timed_out)
            continue;
        if (cl->deadline <= now) {
            cl->timed_out = true;
            /* Wakes the client's thread wherever it blocks, TLS too. */
            shutdown(cl->fd, SHUT_RDWR);
        } else {
            next = MIN(next, cl->deadline);
        }
    }
    if (next == G_MAXINT64)
        return -1;
    return (int)MIN((next - now + 999) / 1000, G_MAXINT);
}

static gpointer accept_thread(gpointer data)
{
    NbdServer *srv = data;
    guint n = srv->listeners->len;
    struct pollfd *pfd = g_new0(struct pollfd, n + 1);
    pfd[n].fd = srv->wake[0];
    pfd[n].events = POLLIN;
    for (;;) {
        g_mutex_lock(&srv->lock);
        if (srv->stopping) {
            g_mutex_unlock(&srv->lock);
            break;
        }
        int timeout = accept_reap(srv);
        bool room = accept_room(srv);
        g_mutex_unlock(&srv->lock);
        /* Without room the listeners are left out of the poll: clients
         * wait in the backlog, un-greeted, until a place frees. */
        for (guint i = 0; i < n; i++) {
            pfd[i].fd = room ? g_array_index(srv->listeners, NbdListener,
                                             i).fd : -1;
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
        }
        int r = poll(pfd, n + 1, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        if (pfd[n].revents) {
            char buf[64];
            while (read(srv->wake[0], buf, sizeof(buf)) > 0)
                ;
            continue;    /* recheck stopping and room first */
        }
        for (guint i = 0; i < n; i++) {
            if (!(pfd[i].revents & POLLIN))
                continue;
            g_mutex_lock(&srv->lock);
            room = accept_room(srv);
            g_mutex_unlock(&srv->lock);
            if (room)
                accept_one(srv, &g_array_index(srv->listeners, NbdListener,
                                               i));
        }
    }
    g_free(pfd);
    return NULL;
}

bool nbd_accept_start(NbdServer *srv, BhError **errp)
{
    if (pipe2(srv->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        bh_error_set_errno(errp, errno, "pipe");
        return false;
    }
    GError *err = NULL;
    srv->accept_thread = g_thread_try_new("nbd-accept", accept_thread, srv,
                                          &err);
    if (!srv->accept_thread) {
        bh_error_set(errp, EAGAIN, "cannot start the accept thread: %s",
                     err->message);
        g_error_free(err);
        close(srv->wake[0]);
        close(srv->wake[1]);
        srv->wake[0] = srv->wake[1] = -1;
        return false;
    }
    return true;
}

/* Stop accepting, then end every client: shutting down the read side
 * makes each reader see EOF; requests already read are still answered.
 * A client that does not read its replies is cut off after a grace
 * period; one whose request never finishes (a hung driver) is given up
 * on at the stop deadline. */
bool nbd_accept_stop(NbdServer *srv)
{
    if (srv->accept_thread) {
        accept_wake(srv);       /* the caller set srv->stopping */
        g_thread_join(srv->accept_thread);
        srv->accept_thread = NULL;
    }
    g_mutex_lock(&srv->lock);
    g_cond_broadcast(&srv->cond);    /* clients waiting for a place */
    for (GList *l = srv->clients; l; l = l->next) {
        NbdClient *cl = l->data;
        shutdown(cl->fd, SHUT_RD);
    }
    gint64 start = g_get_monotonic_time();
    gint64 stop_end = srv->stop_timeout
        ? start + srv->stop_timeout * G_TIME_SPAN_SECOND : G_MAXINT64;
    gint64 grace_end = MIN(start + NBD_STOP_GRACE * G_TIME_SPAN_SECOND,
                           srv->stop_timeout
                           ? start + srv->stop_timeout * G_TIME_SPAN_SECOND / 2
                           : G_MAXINT64);
    bool cut = false, ok = true;
    while (srv->clients) {
        gint64 until = cut ? stop_end : grace_end;
        if (g_cond_wait_until(&srv->cond, &srv->lock, until))
            continue;
        if (!cut) {
            for (GList *l = srv->clients; l; l = l->next) {
                NbdClient *cl = l->data;
                g_printerr("nbd-server: client %" G_GUINT64_FORMAT " (%s) "
                           "did not finish within %" G_GINT64_FORMAT " s of "
                           "stop; cutting it off\n", cl->id, cl->peer,
                           (grace_end - start) / G_TIME_SPAN_SECOND);
                shutdown(cl->fd, SHUT_RDWR);
            }
            cut = true;
            continue;
        }
        /* What is left waits on a request that does not return: its
         * thread cannot be ended, only abandoned. */
        for (GList *l = srv->clients; l; l = l->next) {
            NbdClient *cl = l->data;
            g_printerr("nbd-server: export '%s': a request of client %"
                       G_GUINT64_FORMAT " (%s) did not finish within %u s "
                       "of stop (the driver is stuck)\n",
                       cl->export_name ? cl->export_name : "?", cl->id,
                       cl->peer, srv->stop_timeout);
        }
        ok = false;
        break;
    }
    g_mutex_unlock(&srv->lock);
    if (ok && srv->wake[0] >= 0) {
        /* Only now: client threads wake the accept thread until they end. */
        close(srv->wake[0]);
        close(srv->wake[1]);
        srv->wake[0] = srv->wake[1] = -1;
    }
    return ok;
}
