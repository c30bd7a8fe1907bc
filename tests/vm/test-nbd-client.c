/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The NBD client handshake (plugins/nbd-common/nbd-client.c) without a
 * kernel: URI parsing, then GO, the EXPORT_NAME fall-back, refusals and
 * LIST against the blkhost server engine or a scripted fake server on the
 * other end of a socketpair.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbd-client.h"
#include "tap.h"
#include <blkhost/glib.h>

static BhNode *node;

/* ---- URIs ---- */

static void uri_ok(const char *uri, bool is_unix, const char *host,
                   const char *port, const char *sock, const char *name)
{
    NbdUri u;
    BhError *err = NULL;
    bool r = nbd_uri_parse(uri, &u, &err);
    ok(r && u.is_unix == is_unix && g_strcmp0(u.host, host) == 0 &&
       g_strcmp0(u.port, port) == 0 && g_strcmp0(u.socket_path, sock) == 0 &&
       g_strcmp0(u.export_name, name) == 0, "uri %s parses", uri);
    if (err)
        diag("%s", bh_error_message(err));
    bh_error_clear(&err);
    nbd_uri_clear(&u);
}

static void uri_bad(const char *uri, const char *why)
{
    NbdUri u;
    BhError *err = NULL;
    bool r = nbd_uri_parse(uri, &u, &err);
    ok(!r && err && strstr(bh_error_message(err), why),
       "bad uri %s refused: %s", uri, why);
    if (err && !strstr(bh_error_message(err), why))
        diag("%s", bh_error_message(err));
    bh_error_clear(&err);
}

/* ---- servers ---- */

static bool lookup(void *data, const char *name, NbdExportView *v)
{
    if (strcmp(name, "") != 0 && strcmp(name, "disk") != 0)
        return false;
    v->name = "disk";
    v->description = "the disk";
    v->node = node;
    return true;
}

static void list(void *data, NbdListFn fn, void *ctx)
{
    fn(ctx, "disk", "the disk");
    fn(ctx, "other", NULL);
}

static const NbdHandshakeOps ops = { lookup, list };

typedef struct {
    int fd;
    const char *refuse;
    bool fake_no_go;      /* answer GO with ERR_UNSUP, then EXPORT_NAME */
    bool fake_oldstyle;
    int ret;
} Server;

static void fake_server(Server *sv)
{
    uint64_t greet[2] = { GUINT64_TO_BE(NBD_MAGIC),
                          GUINT64_TO_BE(sv->fake_oldstyle
                                        ? UINT64_C(0x0000420281861253)
                                        : NBD_IHAVEOPT) };
    uint16_t hf = GUINT16_TO_BE(NBD_FLAG_FIXED_NEWSTYLE);
    uint32_t cf;
    nbd_write_full(sv->fd, greet, sizeof(greet));
    if (sv->fake_oldstyle)
        return;
    nbd_write_full(sv->fd, &hf, 2);
    nbd_read_full(sv->fd, &cf, 4);
    for (;;) {
        NbdOptionHeader h;
        if (nbd_read_full(sv->fd, &h, sizeof(h)) < 0)
            return;
        uint32_t opt = GUINT32_FROM_BE(h.option);
        uint32_t len = GUINT32_FROM_BE(h.length);
        g_autofree char *data = g_malloc(len + 1);
        nbd_read_full(sv->fd, data, len);
        data[len] = 0;
        if (opt == NBD_OPT_EXPORT_NAME) {
            if (strcmp(data, "disk") != 0)
                return;   /* hang up: the only "no" EXPORT_NAME knows */
            char rep[10 + 124] = { 0 };
            uint64_t size = GUINT64_TO_BE(UINT64_C(1048576));
            uint16_t tf = GUINT16_TO_BE(NBD_FLAG_HAS_FLAGS |
                                        NBD_FLAG_READ_ONLY);
            memcpy(rep, &size, 8);
            memcpy(rep + 8, &tf, 2);
            nbd_write_full(sv->fd, rep, sizeof(rep));
            sv->ret = 1;
            return;
        }
        NbdOptionReply r = { GUINT64_TO_BE(NBD_REP_MAGIC), h.option,
                             GUINT32_TO_BE(NBD_REP_ERR_UNSUP), 0 };
        nbd_write_full(sv->fd, &r, sizeof(r));
    }
}

static gpointer server_thread(gpointer data)
{
    Server *sv = data;
    if (sv->fake_no_go || sv->fake_oldstyle) {
        fake_server(sv);
    } else {
        NbdSession s;
        memset(&s, 0, sizeof(s));
        BhError *err = NULL;
        sv->ret = nbd_handshake_server(sv->fd, &ops, NULL, sv->refuse, &s,
                                       &err);
        bh_error_clear(&err);
        if (sv->ret == 1)
            nbd_session_clear(&s);
    }
    shutdown(sv->fd, SHUT_RDWR);
    return NULL;
}

/* Run a handshake for name against sv; returns the client's result. */
static int handshake(Server *sv, const char *name, NbdClientExport *ex,
                     BhError **errp)
{
    int fds[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
    sv->fd = fds[1];
    GThread *t = g_thread_new("server", server_thread, sv);
    int r = nbd_client_handshake(fds[0], name, ex, errp);
    shutdown(fds[0], SHUT_RDWR);
    g_thread_join(t);
    close(fds[0]);
    close(fds[1]);
    return r;
}

static void add_name(void *ctx, const char *name, const char *desc)
{
    g_string_append_printf(ctx, "%s=%s;", name, desc ? desc : "(none)");
}

int main(void)
{
    BhError *err = NULL;
    g_autoptr(BhOpts) opts = bh_opts_new();
    bh_opts_set(opts, "format", "memory");
    bh_opts_set(opts, "size", "1M");
    node = bh_node_open(NULL, opts, &err);
    if (!node) {
        printf("1..0 # SKIP memory node: %s\n", bh_error_message(err));
        return 0;
    }
    plan(26);

    uri_ok("nbd://localhost/disk", false, "localhost", "10809", NULL, "disk");
    uri_ok("nbd://127.0.0.1:1234", false, "127.0.0.1", "1234", NULL, "");
    uri_ok("nbd://[::1]:99/a%20b", false, "::1", "99", NULL, "a b");
    uri_ok("nbd+unix:///?socket=/tmp/s", true, NULL, NULL, "/tmp/s", "");
    uri_ok("nbd+unix:///exp?socket=/tmp/s%3Dx", true, NULL, NULL, "/tmp/s=x",
           "exp");
    uri_bad("localhost:10809", "no scheme");
    uri_bad("nbds://h/", "TLS");
    uri_bad("http://h/", "unknown scheme");
    uri_bad("nbd+unix://host/?socket=/s", "takes no host");
    uri_bad("nbd+unix:///x", "needs ?socket=PATH");
    uri_bad("nbd://h:0/", "port must be");
    uri_bad("nbd://h:port/", "port must be");
    uri_bad("nbd://::1/", "brackets");
    uri_bad("nbd:///x", "host is missing");
    uri_bad("nbd://h/?tls=on", "unsupported query parameter 'tls=on'");

    NbdClientExport ex;
    Server sv = { 0 };
    int r = handshake(&sv, "disk", &ex, &err);
    ok(r == 0 && sv.ret == 1 && ex.used_go && ex.size == 1048576,
       "GO against the blkhost engine: 1 MiB export");
    ok(!(ex.tflags & NBD_FLAG_SEND_DF),
       "GO negotiated no structured replies (no SEND_DF)");
    ok((ex.tflags & NBD_FLAG_CAN_MULTI_CONN) && ex.min_block >= 1 &&
       ex.max_block >= 4096, "GO: flags and block sizes received");
    bh_error_clear(&err);

    memset(&sv, 0, sizeof(sv));
    r = handshake(&sv, "nosuch", &ex, &err);
    ok(r == -ENOENT && err && strstr(bh_error_message(err), "no export named "
                                     "'nosuch'"),
       "GO for an unknown export: ENOENT naming it");
    bh_error_clear(&err);

    memset(&sv, 0, sizeof(sv));
    sv.refuse = "server is full";
    r = handshake(&sv, "disk", &ex, &err);
    ok(r == -EACCES && err && strstr(bh_error_message(err), "server is full"),
       "a refusing server: EACCES with its message");
    bh_error_clear(&err);

    memset(&sv, 0, sizeof(sv));
    sv.fake_no_go = true;
    r = handshake(&sv, "disk", &ex, &err);
    ok(r == 0 && !ex.used_go && ex.size == 1048576 &&
       (ex.tflags & NBD_FLAG_READ_ONLY),
       "server without GO: EXPORT_NAME fall-back gives size and flags");
    bh_error_clear(&err);

    memset(&sv, 0, sizeof(sv));
    sv.fake_no_go = true;
    r = handshake(&sv, "nosuch", &ex, &err);
    ok(r == -ENOENT && err && strstr(bh_error_message(err), "nosuch"),
       "EXPORT_NAME for an unknown export (server hangs up): ENOENT");
    bh_error_clear(&err);

    memset(&sv, 0, sizeof(sv));
    sv.fake_oldstyle = true;
    r = handshake(&sv, "", &ex, &err);
    ok(r == -EPROTO && err && strstr(bh_error_message(err), "oldstyle"),
       "oldstyle server refused with EPROTO");
    bh_error_clear(&err);

    char *longname = g_malloc0(NBD_MAX_STRING + 2);
    memset(longname, 'x', NBD_MAX_STRING + 1);
    memset(&sv, 0, sizeof(sv));
    r = nbd_client_handshake(-1, longname, &ex, &err);
    ok(r == -EINVAL, "an export name over 4096 bytes is refused");
    bh_error_clear(&err);
    g_free(longname);

    /* LIST */
    int fds[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
    memset(&sv, 0, sizeof(sv));
    sv.fd = fds[1];
    GThread *t = g_thread_new("server", server_thread, &sv);
    GString *names = g_string_new("");
    r = nbd_client_list(fds[0], add_name, names, &err);
    shutdown(fds[0], SHUT_RDWR);
    g_thread_join(t);
    close(fds[0]);
    close(fds[1]);
    ok(r == 0 && strcmp(names->str, "disk=the disk;other=(none);") == 0,
       "LIST returns names and descriptions");
    if (r == 0)
        diag("%s", names->str);
    bh_error_clear(&err);

    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
    memset(&sv, 0, sizeof(sv));
    sv.fd = fds[1];
    sv.fake_no_go = true;   /* answers everything ERR_UNSUP */
    t = g_thread_new("server", server_thread, &sv);
    g_string_truncate(names, 0);
    r = nbd_client_list(fds[0], add_name, names, &err);
    shutdown(fds[0], SHUT_RDWR);
    g_thread_join(t);
    close(fds[0]);
    close(fds[1]);
    ok(r == -ENOTSUP && err && strstr(bh_error_message(err), "does not support "
                                      "listing"),
       "LIST against a server without it: ENOTSUP");
    bh_error_clear(&err);
    g_string_free(names, TRUE);

    bh_node_unref(node);
    return done();
}
