/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NBD server engine (plugins/nbd-common): the input is what a client
 * sends, handshake and transmission, fed over a socketpair to the engine
 * running in process against a 1 MiB "memory" export (named "" and
 * "disk").  The first byte picks how the stream starts, so mutations
 * reach the transmission phase in each reply mode:
 *   0  raw: the input is the whole client stream (flags, options, ...);
 *   1  a canned GO negotiating nothing (simple replies), then the input;
 *   2  canned STRUCTURED_REPLY, SET_META_CONTEXT base:allocation and GO
 *      (structured replies and block status), then the input.
 * A helper thread writes the stream and reads every reply (so a large
 * read reply cannot block the server), and closes its end when done; the
 * engine must then finish.  No checks depend on timing.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz-util.h"
#include "nbd-common.h"
#include <blkhost/glib.h>

static BhNode *export_node;

static bool fuzz_nbd_lookup(void *data, const char *name, NbdExportView *v)
{
    if (strcmp(name, "") != 0 && strcmp(name, "disk") != 0)
        return false;
    v->name = "disk";
    v->description = "fuzz";
    v->node = export_node;
    return true;
}

static void fuzz_nbd_list(void *data, NbdListFn fn, void *ctx)
{
    fn(ctx, "disk", "fuzz");
}

static const NbdHandshakeOps fuzz_nbd_ops = { fuzz_nbd_lookup,
                                              fuzz_nbd_list };

/* ---- canned handshake prefixes ---- */

static void fuzz_nbd_put32(GByteArray *b, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    g_byte_array_append(b, (const guint8 *)&v, 4);
}

static void fuzz_nbd_option(GByteArray *b, uint32_t opt, const void *data,
                            uint32_t len)
{
    uint64_t magic = GUINT64_TO_BE(NBD_IHAVEOPT);
    g_byte_array_append(b, (const guint8 *)&magic, 8);
    fuzz_nbd_put32(b, opt);
    fuzz_nbd_put32(b, len);
    g_byte_array_append(b, data, len);
}

static GByteArray *fuzz_nbd_prefix(uint8_t mode)
{
    GByteArray *b = g_byte_array_new();
    static const uint8_t go[6] = { 0 };     /* name "", no info requests */
    fuzz_nbd_put32(b, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    if (mode == 2) {
        g_autoptr(GByteArray) meta = g_byte_array_new();
        static const char q[] = "base:allocation";
        fuzz_nbd_option(b, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
        fuzz_nbd_put32(meta, 0);                 /* export name "" */
        fuzz_nbd_put32(meta, 1);                 /* one query */
        fuzz_nbd_put32(meta, sizeof(q) - 1);
        g_byte_array_append(meta, (const guint8 *)q, sizeof(q) - 1);
        fuzz_nbd_option(b, NBD_OPT_SET_META_CONTEXT, meta->data, meta->len);
    }
    fuzz_nbd_option(b, NBD_OPT_GO, go, sizeof(go));
    return b;
}

/* ---- the client end ---- */

typedef struct FuzzNbdClient {
    int fd;
    const uint8_t *data;
    size_t len;
} FuzzNbdClient;

/* Write the whole stream while reading replies, then half-close and read
 * until the server closes its end. */
static gpointer fuzz_nbd_client(gpointer opaque)
{
    FuzzNbdClient *c = opaque;
    size_t done = 0;
    bool wr_open = true;
    char sink[65536];

    if (c->len == 0) {
        shutdown(c->fd, SHUT_WR);
        wr_open = false;
    }
    for (;;) {
        struct pollfd p = { c->fd, POLLIN | (wr_open ? POLLOUT : 0), 0 };
        if (poll(&p, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            abort();
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                break;
        }
        if (wr_open && (p.revents & POLLOUT)) {
            ssize_t n = send(c->fd, c->data + done, c->len - done,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0)
                done += (size_t)n;
            if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
                done == c->len) {
                shutdown(c->fd, SHUT_WR);
                wr_open = false;
            }
        }
    }
    return NULL;
}

static NbdPool *fuzz_nbd_pool(void)
{
    static NbdPool *pool;
    if (!pool) {
        BhError *err = NULL;
        pool = nbd_pool_new(2, &err);
        if (!pool)
            abort();
    }
    return pool;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    fuzz_init();
    if (len < 1)
        return 0;
    uint8_t mode = data[0] % 3;
    g_autoptr(GByteArray) stream = mode ? fuzz_nbd_prefix(mode)
                                        : g_byte_array_new();
    g_byte_array_append(stream, data + 1, len - 1);

    export_node = fuzz_memory_node(NULL, 0, 1024 * 1024);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    FuzzNbdClient c = { sv[1], stream->data, stream->len };
    GThread *t = g_thread_new("fuzz-client", fuzz_nbd_client, &c);

    NbdSession s;
    memset(&s, 0, sizeof(s));
    if (nbd_handshake_server(sv[0], &fuzz_nbd_ops, NULL, NULL, &s,
                             NULL) == 1) {
        NbdStats stats = { 0 };
        nbd_conn_serve(sv[0], &s, fuzz_nbd_pool(), &stats, NULL);
    }
    nbd_session_clear(&s);
    /* The server is done: closing its end ends the client's reads. */
    close(sv[0]);
    g_thread_join(t);
    close(sv[1]);
    bh_node_unref(export_node);
    return 0;
}
