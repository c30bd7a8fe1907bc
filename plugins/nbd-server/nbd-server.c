/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The nbd-server frontend plugin: serves BhExports to NBD clients over
 * Unix sockets, TCP (IPv4/IPv6) and systemd-activated sockets.
 *
 * Options (BhOpts keys, '_' and '-' alike):
 *   listen        repeated: unix:PATH, tcp:HOST:PORT, fd:N, systemd
 *   max-clients   clients served at once (0, the default: no limit);
 *                 clients beyond it wait un-greeted for a place, as with
 *                 qemu-nbd, instead of being refused
 *   max-handshakes  clients in the handshake at once (default 1024); they
 *                 do not count toward max-clients
 *   handshake-timeout  seconds a client has for its whole handshake
 *                 (default 10; 0: no limit)
 *   send-timeout  seconds a client may leave its replies unread before it
 *                 is dropped (default 60; 0: never)
 *   stop-timeout  seconds stop waits for requests in progress (default
 *                 30; 0: forever); past it the sockets are closed, the
 *                 stuck export named and the process exits with status 1,
 *                 since a driver call that never returns cannot be ended
 *   persistent    keep serving after the last client leaves (default off:
 *                 like qemu-nbd, the server lets the main loop end when
 *                 its last client disconnects)
 *   threads       worker threads shared by all connections (default:
 *                 one per CPU, at least 2; on this project's 2-CPU bench
 *                 machine more threads only added context switches for
 *                 page-cache I/O.  Raise it for slow disks or cache=none,
 *                 where requests block)
 *   tls           off (default), on (offered) or require
 *   tls-x509-dir  directory with ca-cert.pem, server-cert.pem,
 *                 server-key.pem (qemu's and nbdkit's layout)
 *   tls-psk-file  keys as psktool writes them (identity:hexkey lines)
 *   tls-verify-peer  X.509: clients must show a certificate our CA signed
 *   tls-allow     repeated: client certificate DNs or PSK identities
 *                 allowed in (default: every client that passes TLS)
 *
 * The protocol engine lives in plugins/nbd-common so that the
 * nbd-kernel frontend can reuse it.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbd-server.h"
#include <blkhost/glib.h>

/* The tls-* options, checked and loaded now, so that bad credentials
 * fail the server's creation instead of its first client. */
static bool nbd_server_tls_new(BhOpts *opts, NbdTls **out, BhError **errp)
{
    const char *mode = bh_opts_get(opts, "tls");
    NbdTlsConfig cfg = {
        .x509_dir = bh_opts_get(opts, "tls-x509-dir"),
        .psk_file = bh_opts_get(opts, "tls-psk-file"),
    };
    g_auto(GStrv) allow = bh_opts_get_all(opts, "tls-allow");
    if (!bh_opts_get_bool(opts, "tls-verify-peer", false, &cfg.verify_peer,
                          errp))
        return false;
    if (mode && !nbd_tls_mode_parse(mode, &cfg.mode)) {
        bh_error_set(errp, EINVAL, "bad tls mode '%s': expected off, on or "
                     "require", mode);
        return false;
    }
    cfg.allow = allow && allow[0] ? allow : NULL;
    if (cfg.mode == NBD_TLS_OFF) {
        if (cfg.x509_dir || cfg.psk_file || cfg.allow || cfg.verify_peer) {
            bh_error_set(errp, EINVAL, "TLS credentials or an allow-list "
                         "were given but tls is off; set tls=on or "
                         "tls=require");
            return false;
        }
        return true;
    }
    *out = nbd_tls_new(&cfg, errp);
    return *out != NULL;
}

static void *nbd_server_create(BhOpts *opts, BhError **errp)
{
    uint64_t max_clients = 0, threads = 0, max_handshakes = 0;
    uint64_t handshake_timeout = 0, send_timeout = 0, stop_timeout = 0;
    bool persistent = false;
    g_auto(GStrv) listen = bh_opts_get_all(opts, "listen");

    for (char **s = listen; s && *s; s++)
        if (!nbd_listen_check_spec(*s, errp))
            return NULL;
    if (!bh_opts_get_uint(opts, "max-clients", 0, 65536, &max_clients, errp) ||
        !bh_opts_get_bool(opts, "persistent", false, &persistent, errp) ||
        !bh_opts_get_uint(opts, "threads", 0, 1024, &threads, errp) ||
        !bh_opts_get_uint(opts, "max-handshakes", 1024, 65536,
                          &max_handshakes, errp) ||
        !bh_opts_get_uint(opts, "handshake-timeout", 10, 86400,
                          &handshake_timeout, errp) ||
        !bh_opts_get_uint(opts, "send-timeout", 60, 86400, &send_timeout,
                          errp) ||
        !bh_opts_get_uint(opts, "stop-timeout", 30, 86400, &stop_timeout,
                          errp))
        return NULL;
    if (max_handshakes == 0) {
        bh_error_set(errp, EINVAL, "max-handshakes must be at least 1");
        return NULL;
    }

    NbdTls *tls = NULL;
    if (!nbd_server_tls_new(opts, &tls, errp))
        return NULL;

    NbdServer *srv = g_new0(NbdServer, 1);
    srv->tls = tls;
    srv->listen = g_steal_pointer(&listen);
    srv->max_clients = (unsigned)max_clients;
    srv->max_handshakes = (unsigned)max_handshakes;
    srv->handshake_timeout = (unsigned)handshake_timeout;
    srv->send_timeout = (unsigned)send_timeout;
    srv->stop_timeout = (unsigned)stop_timeout;
    srv->persistent = persistent;
    srv->nthreads = (unsigned)threads;
    if (!srv->nthreads)
        srv->nthreads = MAX(2u, g_get_num_processors());
    g_mutex_init(&srv->lock);
    g_cond_init(&srv->cond);
    srv->exports = g_ptr_array_new_with_free_func(
        (GDestroyNotify)bh_export_free);
    srv->retired = g_ptr_array_new_with_free_func(
        (GDestroyNotify)bh_export_free);
    srv->listeners = g_array_new(FALSE, TRUE, sizeof(NbdListener));
    srv->wake[0] = srv->wake[1] = -1;
    srv->sink = g_new0(NbdEventSink, 1);
    srv->sink->ref = 1;
    g_mutex_init(&srv->sink->lock);
    return srv;
}

static int nbd_server_add_export(void *fe, BhExport *exp, BhError **errp)
{
    NbdServer *srv = fe;
    if (strlen(bh_export_name(exp)) > NBD_MAX_STRING) {
        int r = bh_error_set(errp, EINVAL, "export name is %zu bytes; NBD "
                             "allows at most %d", strlen(bh_export_name(exp)),
                             NBD_MAX_STRING);
        bh_export_free(exp);
        return r;
    }
    g_mutex_lock(&srv->lock);
    for (guint i = 0; i < srv->exports->len; i++) {
        BhExport *e = g_ptr_array_index(srv->exports, i);
        if (strcmp(bh_export_name(e), bh_export_name(exp)) == 0) {
            g_mutex_unlock(&srv->lock);
            int r = bh_error_set(errp, EEXIST, "there is already an export "
                                 "named '%s'", bh_export_name(exp));
            bh_export_free(exp);
            return r;
        }
    }
    g_ptr_array_add(srv->exports, exp);
    g_mutex_unlock(&srv->lock);
    return 0;
}

static int nbd_server_start(void *fe, BhError **errp)
{
    NbdServer *srv = fe;
    if (srv->started)
        return bh_error_set(errp, EALREADY, "the NBD server is already "
                            "started");
    if (!nbd_listen_open(srv, errp))
        return -EINVAL;
    srv->pool = nbd_pool_new(srv->nthreads, errp);
    if (!srv->pool) {
        nbd_listen_close(srv);
        return -EAGAIN;
    }
    if (!nbd_accept_start(srv, errp)) {
        nbd_pool_free(srv->pool);
        srv->pool = NULL;
        nbd_listen_close(srv);
        return -EAGAIN;
    }
    srv->started = true;
    srv->holding = true;
    bh_loop_hold();
    return 0;
}

static void nbd_server_stop(void *fe)
{
    NbdServer *srv = fe;
    g_mutex_lock(&srv->lock);
    if (!srv->started || srv->stopping) {
        g_mutex_unlock(&srv->lock);
        return;
    }
    srv->stopping = true;
    g_mutex_unlock(&srv->lock);

    if (!nbd_accept_stop(srv)) {
        /* A worker is inside a driver call that does not return: the
         * pool cannot be joined nor the node closed.  Give up the way a
         * stuck process should: sockets closed, a non-zero status. */
        nbd_listen_close(srv);
        g_printerr("nbd-server: giving up after stop-timeout=%u s; "
                   "exiting with status 1\n", srv->stop_timeout);
        _exit(1);
    }
    nbd_listen_close(srv);
    nbd_pool_free(srv->pool);
    srv->pool = NULL;

    for (guint i = 0; i < srv->exports->len; i++) {
        BhExport *e = g_ptr_array_index(srv->exports, i);
        if (!bh_export_readonly(e) && !bh_node_is_readonly(bh_export_node(e))) {
            g_autoptr(BhError) err = NULL;
            if (bh_node_flush(bh_export_node(e), &err) < 0)
                g_printerr("nbd-server: flushing export '%s': %s\n",
                           bh_export_name(e), bh_error_message(err));
        }
    }
    g_mutex_lock(&srv->lock);
    bool release = srv->holding;
    srv->holding = false;
    srv->stopped = true;
    g_mutex_unlock(&srv->lock);
    if (release)
        bh_loop_release();
}

static void nbd_server_destroy(void *fe)
{
    NbdServer *srv = fe;
    nbd_server_stop(srv);
    g_mutex_lock(&srv->sink->lock);
    srv->sink->cb = NULL;
    srv->sink->data = NULL;
    g_mutex_unlock(&srv->sink->lock);
    if (g_atomic_int_dec_and_test(&srv->sink->ref)) {
        g_mutex_clear(&srv->sink->lock);
        g_free(srv->sink);
    }
    g_ptr_array_unref(srv->exports);
    g_ptr_array_unref(srv->retired);
    g_array_unref(srv->listeners);
    g_strfreev(srv->listen);
    nbd_tls_free(srv->tls);
    g_mutex_clear(&srv->lock);
    g_cond_clear(&srv->cond);
    g_free(srv);
}

static char *nbd_server_uri(void *fe, const char *export_name)
{
    NbdServer *srv = fe;
    char *uri = NULL;
    g_mutex_lock(&srv->lock);
    if (srv->listeners->len)
        uri = nbd_listen_uri(&g_array_index(srv->listeners, NbdListener, 0),
                             export_name,
                             nbd_tls_mode(srv->tls) == NBD_TLS_REQUIRE);
    g_mutex_unlock(&srv->lock);
    return uri;
}

static void nbd_server_status(void *fe, BhInfo *info)
{
    NbdServer *srv = fe;
    g_mutex_lock(&srv->lock);
    bh_info_add_str(info, "state", srv->stopping ? "stopped"
                    : srv->started ? "running" : "created");
    for (guint i = 0; i < srv->listeners->len; i++) {
        g_autofree char *d = nbd_listen_describe(
            &g_array_index(srv->listeners, NbdListener, i));
        g_autofree char *key = i ? g_strdup_printf("listen-%u", i)
                                 : g_strdup("listen");
        bh_info_add_str(info, key, d);
    }
    bh_info_add_int(info, "exports", srv->exports->len);
    bh_info_add_int(info, "clients", srv->nclients);
    bh_info_add_int(info, "max-clients", srv->max_clients);
    bh_info_add_int(info, "handshakes", srv->nhandshakes);
    bh_info_add_int(info, "total-clients", (int64_t)srv->total_clients);
    bh_info_add_bool(info, "persistent", srv->persistent);
    bh_info_add_int(info, "threads", srv->nthreads);
    static const char *const tls_modes[] = { "off", "on", "require" };
    bh_info_add_str(info, "tls", tls_modes[nbd_tls_mode(srv->tls)]);
    g_mutex_unlock(&srv->lock);
    bh_info_add_int(info, "requests",
                    (int64_t)__atomic_load_n(&srv->stats.requests,
                                             __ATOMIC_RELAXED));
    bh_info_add_int(info, "bytes-read",
                    (int64_t)__atomic_load_n(&srv->stats.bytes_read,
                                             __ATOMIC_RELAXED));
    bh_info_add_int(info, "bytes-written",
                    (int64_t)__atomic_load_n(&srv->stats.bytes_written,
                                             __ATOMIC_RELAXED));
    bh_info_add_int(info, "errors",
                    (int64_t)__atomic_load_n(&srv->stats.errors,
                                             __ATOMIC_RELAXED));
}

/* Clients of export name (NULL: all); those still in the handshake
 * count for every name, since they may be choosing it.  Under srv->lock. */
static unsigned nbd_server_clients_of(NbdServer *srv, const char *name,
                                      bool shut)
{
    unsigned n = 0;
    for (GList *l = srv->clients; l; l = l->next) {
        NbdClient *cl = l->data;
        if (name && cl->export_name && strcmp(cl->export_name, name) != 0)
            continue;
        if (shut)
            shutdown(cl->fd, SHUT_RDWR);
        n++;
    }
    return n;
}

static int nbd_server_disconnect(void *fe, const char *name, BhError **errp)
{
    NbdServer *srv = fe;
    g_mutex_lock(&srv->lock);
    /* Shut the sockets down (not close: the client threads own the fds):
     * each connection ends its requests in flight and leaves. */
    int n = (int)nbd_server_clients_of(srv, name, true);
    gint64 until = g_get_monotonic_time() +
                   (srv->stop_timeout ? srv->stop_timeout : 30) *
                   G_TIME_SPAN_SECOND;
    while (nbd_server_clients_of(srv, name, false)) {
        if (!g_cond_wait_until(&srv->cond, &srv->lock, until)) {
            g_mutex_unlock(&srv->lock);
            return bh_error_set(errp, ETIMEDOUT, "clients of export '%s' "
                                "did not leave within %u s", name ? name : "*",
                                srv->stop_timeout ? srv->stop_timeout : 30);
        }
    }
    g_mutex_unlock(&srv->lock);
    return n;
}

static int nbd_server_remove_export(void *fe, const char *name, bool hard,
                                    BhError **errp)
{
    NbdServer *srv = fe;
    g_mutex_lock(&srv->lock);
    BhExport *found = NULL;
    guint idx = 0;
    for (guint i = 0; i < srv->exports->len && !found; i++) {
        BhExport *e = g_ptr_array_index(srv->exports, i);
        if (strcmp(bh_export_name(e), name) == 0) {
            found = e;
            idx = i;
        }
    }
    if (!found) {
        g_mutex_unlock(&srv->lock);
        return bh_error_set(errp, ENOENT, "no export named '%s'", name);
    }
    unsigned busy = 0;
    for (GList *l = srv->clients; l; l = l->next) {
        NbdClient *cl = l->data;
        if (cl->export_name && strcmp(cl->export_name, name) == 0)
            busy++;
    }
    if (busy && !hard) {
        g_mutex_unlock(&srv->lock);
        return bh_error_set(errp, EBUSY, "export '%s' has %u connected "
                            "client(s)", name, busy);
    }
    /* New handshakes stop finding it now; sessions keep their pointers. */
    g_ptr_array_add(srv->retired, g_ptr_array_steal_index(srv->exports, idx));
    g_mutex_unlock(&srv->lock);
    if (hard && busy && nbd_server_disconnect(fe, name, errp) < 0)
        return -ETIMEDOUT;
    /* Free it (and let its node go: the image lock with it) unless a
     * client may still point into it: one serving it, or one whose
     * handshake may have picked it before it was removed. */
    g_mutex_lock(&srv->lock);
    bool used = false;
    for (GList *l = srv->clients; l; l = l->next) {
        NbdClient *cl = l->data;
        if (!cl->export_name || strcmp(cl->export_name, name) == 0)
            used = true;
    }
    if (!used)
        g_ptr_array_remove(srv->retired, found);
    g_mutex_unlock(&srv->lock);
    return 0;
}

static void nbd_server_set_event_cb(void *fe, BhFrontendEventFn cb, void *data)
{
    NbdServer *srv = fe;
    g_mutex_lock(&srv->sink->lock);
    srv->sink->cb = cb;
    srv->sink->data = data;
    g_mutex_unlock(&srv->sink->lock);
}

static const BhFrontend nbd_server_frontend = {
    .create = nbd_server_create,
    .add_export = nbd_server_add_export,
    .start = nbd_server_start,
    .stop = nbd_server_stop,
    .destroy = nbd_server_destroy,
    .uri = nbd_server_uri,
    .status = nbd_server_status,
    .set_event_cb = nbd_server_set_event_cb,
    .remove_export = nbd_server_remove_export,
    .disconnect = nbd_server_disconnect,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_FRONTEND,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "nbd-server",
    .version = "0.1.0",
    .description = "NBD server: serves exports over Unix sockets and TCP",
    .frontend = &nbd_server_frontend,
};

BH_PLUGIN_REGISTER(desc)
