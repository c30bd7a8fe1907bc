/*
 * Accepting clients and running each one's thread: handshake, then the
 * transmission phase (the thread becomes the connection's reader), then
 * cleanup.  Connect and disconnect events go to the main thread through
 * bh_loop_invoke(); a non-persistent server lets go of the main loop when
 * its last client leaves.
 *
 * Over max-clients, a client still gets the handshake, where every option
 * is answered NBD_REP_ERR_POLICY with a message saying why, instead of a
 * silent hang-up.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "nbd-server.h"

#define NBD_HANDSHAKE_TIMEOUT 30   /* seconds between handshake messages */
#define NBD_STOP_GRACE 10          /* seconds stop waits for clients */

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
    NbdServer *srv = data;
    BhExport *found = NULL;
    g_mutex_lock(&srv->lock);
    for (guint i = 0; i < srv->exports->len; i++) {
        BhExport *e = g_ptr_array_index(srv->exports, i);
        if (strcmp(e->name, name) == 0) {
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
    v->name = found->name;
    v->description = found->description;
    v->node = found->node;
    v->readonly = found->readonly;
    v->single_conn = srv->max_clients == 1;
    v->opaque = found;
    return true;
}

static void srv_list(void *data, NbdListFn fn, void *ctx)
{
    NbdServer *srv = data;
    g_mutex_lock(&srv->lock);
    /* Exports are never removed while clients run, so the names stay
     * valid after unlocking; copy the array, not the strings. */
    g_autoptr(GPtrArray) copy = g_ptr_array_new();
    for (guint i = 0; i < srv->exports->len; i++)
        g_ptr_array_add(copy, g_ptr_array_index(srv->exports, i));
    g_mutex_unlock(&srv->lock);
    for (guint i = 0; i < copy->len; i++) {
        BhExport *e = g_ptr_array_index(copy, i);
        fn(ctx, e->name, e->description);
    }
}

static const NbdHandshakeOps srv_ops = {
    .lookup = srv_lookup,
    .list = srv_list,
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
    GError *err = NULL;
    g_autofree char *refuse = NULL;

    if (cl->refused)
        refuse = g_strdup_printf("the server is full: at most %u clients "
                                 "at once", srv->max_clients);
    /* A client that connects and says nothing must not hold a place. */
    struct timeval tv = { .tv_sec = NBD_HANDSHAKE_TIMEOUT };
    setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int r = nbd_handshake_server_tls(cl->fd, &srv_ops, srv, srv->tls, refuse,
                                     &s, &err);
    tv.tv_sec = 0;
    setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (r < 0 && err->code == EAGAIN) {
        g_printerr("nbd-server: client %" G_GUINT64_FORMAT " (%s): sent "
                   "nothing for %d s during the handshake; disconnecting\n",
                   cl->id, cl->peer, NBD_HANDSHAKE_TIMEOUT);
        g_clear_error(&err);
    } else if (r < 0) {
        g_printerr("nbd-server: client %" G_GUINT64_FORMAT " (%s): %s\n",
                   cl->id, cl->peer, err->message);
        g_clear_error(&err);
    } else if (r == 1) {
        nbd_server_emit(srv, "connect", client_info(cl, &s));
        /* Below this point the client's traffic is the data path. */
        if (nbd_conn_serve(cl->fd, &s, srv->pool, &srv->stats, &err) < 0) {
            g_printerr("nbd-server: client %" G_GUINT64_FORMAT " (%s): %s\n",
                       cl->id, cl->peer, err->message);
            g_clear_error(&err);
        }
        nbd_server_emit(srv, "disconnect", client_info(cl, &s));
    }
    nbd_session_clear(&s);

    bool release = false;
    g_mutex_lock(&srv->lock);
    close(cl->fd);
    srv->clients = g_list_remove(srv->clients, cl);
    if (cl->counted) {
        srv->nclients--;
        if (srv->nclients == 0 && !srv->persistent && srv->holding) {
            srv->holding = false;
            release = true;
        }
    }
    g_cond_broadcast(&srv->cond);
    g_mutex_unlock(&srv->lock);
    if (release)
        bh_loop_invoke(loop_release, NULL);
    g_free(cl->peer);
    g_free(cl);
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
    if (srv->max_clients && srv->nclients >= srv->max_clients) {
        cl->refused = true;
    } else {
        cl->counted = true;
        srv->nclients++;
        srv->total_clients++;
    }
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
        if (cl->counted)
            srv->nclients--;
        g_cond_broadcast(&srv->cond);
        g_mutex_unlock(&srv->lock);
        g_free(cl->peer);
        g_free(cl);
        return;
    }
    g_thread_unref(t);   /* detached: it cleans up after itself */
}

static gpointer accept_thread(gpointer data)
{
    NbdServer *srv = data;
    guint n = srv->listeners->len;
    struct pollfd *pfd = g_new0(struct pollfd, n + 1);
    for (guint i = 0; i < n; i++) {
        pfd[i].fd = g_array_index(srv->listeners, NbdListener, i).fd;
        pfd[i].events = POLLIN;
    }
    pfd[n].fd = srv->wake[0];
    pfd[n].events = POLLIN;
    for (;;) {
        int r = poll(pfd, n + 1, -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || pfd[n].revents)
            break;
        for (guint i = 0; i < n; i++)
            if (pfd[i].revents & POLLIN)
                accept_one(srv, &g_array_index(srv->listeners, NbdListener,
                                               i));
    }
    g_free(pfd);
    return NULL;
}

bool nbd_accept_start(NbdServer *srv, GError **errp)
{
    if (pipe2(srv->wake, O_CLOEXEC) < 0) {
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
 * makes each reader see EOF; requests already read are still answered. */
void nbd_accept_stop(NbdServer *srv)
{
    if (srv->accept_thread) {
        char c = 0;
        while (write(srv->wake[1], &c, 1) < 0 && errno == EINTR)
            ;
        g_thread_join(srv->accept_thread);
        srv->accept_thread = NULL;
        close(srv->wake[0]);
        close(srv->wake[1]);
        srv->wake[0] = srv->wake[1] = -1;
    }
    g_mutex_lock(&srv->lock);
    for (GList *l = srv->clients; l; l = l->next) {
        NbdClient *cl = l->data;
        shutdown(cl->fd, SHUT_RD);
    }
    /* A client that stopped reading its replies would keep a worker in
     * sendmsg() forever: after a grace period, cut it off completely. */
    gint64 deadline = g_get_monotonic_time() +
                      NBD_STOP_GRACE * G_TIME_SPAN_SECOND;
    while (srv->clients) {
        if (!g_cond_wait_until(&srv->cond, &srv->lock, deadline)) {
            for (GList *l = srv->clients; l; l = l->next) {
                NbdClient *cl = l->data;
                g_printerr("nbd-server: client %" G_GUINT64_FORMAT " (%s) "
                           "did not finish within %d s of stop; cutting it "
                           "off\n", cl->id, cl->peer, NBD_STOP_GRACE);
                shutdown(cl->fd, SHUT_RDWR);
            }
            deadline = G_MAXINT64;
        }
    }
    g_mutex_unlock(&srv->lock);
}
