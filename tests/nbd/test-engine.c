/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The NBD engine (plugins/nbd-common) in-process over a socketpair, the
 * way the nbd-kernel frontend uses it: once through the handshake with a
 * GO that negotiates nothing (so only simple replies, as the kernel
 * needs), once with a session built directly (no handshake at all).
 * The client side here is a few lines of C speaking the wire format.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbd-common.h"
#include "tap.h"
#include <blkhost/glib.h>

static BhNode *node;

static bool lookup(void *data, const char *name, NbdExportView *v)
{
    if (strcmp(name, "") != 0 && strcmp(name, "disk") != 0)
        return false;
    v->name = "disk";
    v->node = node;
    return true;
}

static void list(void *data, NbdListFn fn, void *ctx)
{
    fn(ctx, "disk", NULL);
}

static const NbdHandshakeOps ops = { lookup, list };

typedef struct {
    int fd;
    bool handshake;
    NbdPool *pool;
    NbdStats stats;
    int hs_ret, serve_ret;
} Server;

static gpointer server_thread(gpointer data)
{
    Server *sv = data;
    NbdSession s;
    BhError *err = NULL;
    if (sv->handshake) {
        sv->hs_ret = nbd_handshake_server(sv->fd, &ops, NULL, NULL, &s, &err);
        if (sv->hs_ret != 1) {
            diag("handshake: %s", err ? bh_error_message(err) : "ended");
            bh_error_clear(&err);
            return NULL;
        }
    } else {
        memset(&s, 0, sizeof(s));
        nbd_export_view_init(&s.exp, node, "disk", NULL, false, false);
    }
    sv->serve_ret = nbd_conn_serve(sv->fd, &s, sv->pool, &sv->stats, &err);
    if (err)
        diag("serve: %s", bh_error_message(err));
    bh_error_clear(&err);
    nbd_session_clear(&s);
    return NULL;
}

static void request(int fd, uint16_t type, uint64_t cookie, uint64_t off,
                    uint32_t len)
{
    NbdRequest rq = {
        .magic = GUINT32_TO_BE(NBD_REQUEST_MAGIC),
        .type = GUINT16_TO_BE(type),
        .cookie = GUINT64_TO_BE(cookie),
        .offset = GUINT64_TO_BE(off),
        .length = GUINT32_TO_BE(len),
    };
    nbd_write_full(fd, &rq, sizeof(rq));
}

/* Returns the error of a simple reply (or -1 if it is not one). */
static int reply(int fd, uint64_t *cookie)
{
    NbdSimpleReply r;
    if (nbd_read_full(fd, &r, sizeof(r)) < 0 ||
        GUINT32_FROM_BE(r.magic) != NBD_SIMPLE_REPLY_MAGIC)
        return -1;
    *cookie = GUINT64_FROM_BE(r.cookie);
    return (int)GUINT32_FROM_BE(r.error);
}

static void client_go(int fd, uint64_t *size, uint16_t *tflags)
{
    char greet[18];
    uint32_t flags = GUINT32_TO_BE(NBD_FLAG_C_FIXED_NEWSTYLE);
    nbd_read_full(fd, greet, sizeof(greet));
    nbd_write_full(fd, &flags, 4);
    char opt[16 + 4 + 2] = { 0 };
    NbdOptionHeader h = { GUINT64_TO_BE(NBD_IHAVEOPT),
                          GUINT32_TO_BE(NBD_OPT_GO), GUINT32_TO_BE(6) };
    memcpy(opt, &h, sizeof(h));
    nbd_write_full(fd, opt, sizeof(opt));
    for (;;) {
        NbdOptionReply r;
        if (nbd_read_full(fd, &r, sizeof(r)) < 0)
            return;
        uint32_t len = GUINT32_FROM_BE(r.length);
        g_autofree char *data = g_malloc(len + 1);
        nbd_read_full(fd, data, len);
        if (GUINT32_FROM_BE(r.type) != NBD_REP_INFO)
            return;
        uint16_t type;
        memcpy(&type, data, 2);
        if (GUINT16_FROM_BE(type) == NBD_INFO_EXPORT && len >= 12) {
            memcpy(size, data + 2, 8);
            memcpy(tflags, data + 10, 2);
            *size = GUINT64_FROM_BE(*size);
            *tflags = GUINT16_FROM_BE(*tflags);
        }
    }
}

static void exercise(const char *how, int fd)
{
    uint64_t cookie = 0;
    char buf[4096], back[4096];

    memset(buf, 0x5a, sizeof(buf));
    request(fd, NBD_CMD_WRITE, 1, 8192, sizeof(buf));
    nbd_write_full(fd, buf, sizeof(buf));
    is_int(reply(fd, &cookie), 0, "%s: write answered with a simple reply",
           how);
    is_int(cookie, 1, "%s: the reply carries the write's cookie", how);

    request(fd, NBD_CMD_READ, 2, 8192, sizeof(back));
    int e = reply(fd, &cookie);
    if (e == 0)
        nbd_read_full(fd, back, sizeof(back));
    ok(e == 0 && memcmp(buf, back, sizeof(buf)) == 0,
       "%s: read returns the data in a simple reply", how);

    request(fd, NBD_CMD_READ, 3, 1024 * 1024 - 512, 1024);
    is_int(reply(fd, &cookie), NBD_EINVAL,
           "%s: read past the end gets NBD_EINVAL, no payload", how);
    request(fd, NBD_CMD_FLUSH, 4, 0, 0);
    is_int(reply(fd, &cookie), 0, "%s: flush answered", how);
    request(fd, NBD_CMD_DISC, 5, 0, 0);
}

int main(void)
{
    BhError *err = NULL;
    g_autoptr(BhOpts) opts = bh_opts_new();
    bh_opts_set(opts, "format", "memory");
    bh_opts_set(opts, "size", "1M");
    node = bh_node_open(NULL, opts, &err);
    if (!node) {
        printf("1..0 # SKIP memory driver: %s\n", bh_error_message(err));
        return 0;
    }
    plan(14);
    NbdPool *pool = nbd_pool_new(2, &err);

    for (int pass = 0; pass < 2; pass++) {
        const char *how = pass == 0 ? "GO over a socketpair"
                                    : "no handshake (kernel style)";
        int sv[2];
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
        Server s = { .fd = sv[0], .handshake = pass == 0, .pool = pool };
        GThread *t = g_thread_new("server", server_thread, &s);
        if (pass == 0) {
            uint64_t size = 0;
            uint16_t tf = 0;
            client_go(sv[1], &size, &tf);
            ok(size == 1024 * 1024 && (tf & NBD_FLAG_HAS_FLAGS) &&
               !(tf & NBD_FLAG_SEND_DF),
               "%s: GO gives size 1 MiB, no DF without structured replies",
               how);
        } else {
            ok(true, "%s: session built with nbd_export_view_init", how);
        }
        exercise(how, sv[1]);
        g_thread_join(t);
        is_int(s.serve_ret, 0, "%s: DISC ends the connection cleanly", how);
        close(sv[0]);
        close(sv[1]);
    }
    nbd_pool_free(pool);
    bh_node_unref(node);
    return done();
}
