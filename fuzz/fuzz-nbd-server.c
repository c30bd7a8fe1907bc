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
#include "fuzz-nbd.h"
#include <blkhost/glib.h>

/* The client stream's canned start for modes 1 and 2. */
static GByteArray *fuzz_nbd_prefix(uint8_t mode)
{
    GByteArray *b = g_byte_array_new();
    uint32_t flags = GUINT32_TO_BE(NBD_FLAG_C_FIXED_NEWSTYLE |
                                   NBD_FLAG_C_NO_ZEROES);
    g_byte_array_append(b, (const guint8 *)&flags, 4);
    fuzz_nbd_canned_go(b, mode == 2);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    fuzz_init();
    if (len < 1)
        return 0;
    uint8_t mode = data[0] % 3;
    g_autoptr(GByteArray) stream = mode ? fuzz_nbd_prefix(mode)
                                        : g_byte_array_new();
    g_byte_array_append(stream, data + 1, len - 1);

    fuzz_nbd_export = fuzz_memory_node(NULL, 0, 1024 * 1024);
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
    fuzz_nbd_finish(&s, sv, t);
    return 0;
}
