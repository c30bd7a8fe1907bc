/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The NBD server with TLS (plugins/nbd-common: the STARTTLS option, the
 * TLS policy, nbd-tls.c's session, and the transmission phase over it):
 * the input is what a client sends, before and after STARTTLS.  The
 * server runs in process over a socketpair against a 1 MiB "memory"
 * export, with PSK credentials (two identities in the key file, only
 * "fuzz" on the allow-list).
 *
 * Input: [mode:1][plain length:2, big-endian][plain bytes][tls bytes].
 *   mode bit 0: the server requires TLS (else it only offers it);
 *   bit 1: after the server accepts STARTTLS, the client runs a real TLS
 *          handshake (GnuTLS, PSK) and sends the tls bytes inside the
 *          session; else it sends them raw, as TLS records of its own
 *          (GnuTLS's server handshake reads them);
 *   bit 2: the client's identity is "stranger" (known key, not allowed:
 *          the server must refuse its options) instead of "fuzz";
 *   bit 3: inside the session, a canned STRUCTURED_REPLY, SET_META_CONTEXT
 *          base:allocation and GO come before the tls bytes, so that
 *          mutations reach the transmission phase.
 * The plain bytes are the client's flags and options.  They are sent
 * option by option as their framing says; after a STARTTLS or GO option
 * the client reads the server's replies up to that option's last, and an
 * acknowledgement of STARTTLS starts TLS there (the plain bytes left are
 * dropped).  Plain bytes that break the framing, or that follow
 * EXPORT_NAME or an acknowledged GO (the server is in transmission then),
 * are sent as they are.  The client
 * reads everything the server sends and closes its end when done; the
 * server must then finish.  No check depends on timing.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "fuzz-util.h"
#include "fuzz-nbd.h"
#include "nbd-tls.h"
#include <blkhost/glib.h>

#define FUZZ_TLS_KEY "7ef6e7a3c8b1d52f0e4a6c9d1b3f5a7c9e2d4f6a8b0c2e4f6a8c0e2d4b6f8a1c"
#define FUZZ_TLS_STRANGER_KEY "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* The server's credentials, one set per policy (offer, require), loaded
 * once per process from a key file that is gone again at once. */
static NbdTls *fuzz_tls_server(bool require)
{
    static NbdTls *tls[2];
    if (tls[require])
        return tls[require];
    g_autofree char *dir = g_dir_make_tmp("fuzz-nbd-tls-XXXXXX", NULL);
    if (!dir)
        abort();
    g_autofree char *keys = g_build_filename(dir, "keys.psk", NULL);
    if (!g_file_set_contents(keys, "fuzz:" FUZZ_TLS_KEY "\n"
                             "stranger:" FUZZ_TLS_STRANGER_KEY "\n", -1,
                             NULL))
        abort();
    char *allow[] = { "fuzz", NULL };
    for (int i = 0; i < 2; i++) {
        NbdTlsConfig cfg = { .mode = i ? NBD_TLS_REQUIRE : NBD_TLS_ON,
                             .psk_file = keys, .allow = allow };
        BhError *err = NULL;
        tls[i] = nbd_tls_new(&cfg, &err);
        if (!tls[i]) {
            fprintf(stderr, "fuzz-nbd-tls: %s\n", bh_error_message(err));
            abort();
        }
    }
    unlink(keys);
    rmdir(dir);
    return tls[require];
}

/* ---- the client end ---- */

typedef struct FuzzTlsClient {
    int fd;
    uint8_t mode;
    const uint8_t *plain, *tls;
    size_t plain_len, tls_len;
} FuzzTlsClient;

/* Send all of buf on a blocking socket; false once the server is gone. */
static bool fuzz_tls_send(int fd, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, (const char *)buf + done, len - done,
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += (size_t)n;
    }
    return true;
}

static bool fuzz_tls_recv(int fd, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = recv(fd, (char *)buf + done, len - done, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += (size_t)n;
    }
    return true;
}

/* Read option replies (the greeting first, once) until the last one for
 * option want: an acknowledgement or an error (GO sends INFO replies
 * before it).  Its type, or 0 when the server closed or broke framing. */
static uint32_t fuzz_tls_await(int fd, bool *greeted, uint32_t want)
{
    uint8_t hdr[20];
    if (!*greeted) {
        /* NBDMAGIC, IHAVEOPT, the handshake flags. */
        if (!fuzz_tls_recv(fd, hdr, 18))
            return 0;
        *greeted = true;
    }
    for (;;) {
        if (!fuzz_tls_recv(fd, hdr, 20))
            return 0;
        uint64_t magic;
        uint32_t opt, type, len;
        memcpy(&magic, hdr, 8);
        memcpy(&opt, hdr + 8, 4);
        memcpy(&type, hdr + 12, 4);
        memcpy(&len, hdr + 16, 4);
        if (GUINT64_FROM_BE(magic) != NBD_REP_MAGIC)
            return 0;
        for (uint32_t left = GUINT32_FROM_BE(len); left;) {
            uint8_t sink[4096];
            uint32_t k = MIN(left, (uint32_t)sizeof(sink));
            if (!fuzz_tls_recv(fd, sink, k))
                return 0;
            left -= k;
        }
        type = GUINT32_FROM_BE(type);
        if (GUINT32_FROM_BE(opt) == want &&
            (type == NBD_REP_ACK || (type & NBD_REP_ERR_BASE)))
            return type;
    }
}

/* The plain phase: true when the server accepted STARTTLS.  Framing
 * ends where the handshake may: after EXPORT_NAME, or a GO the server
 * acknowledged, it is in transmission and reads requests, not options,
 * so the rest goes as it is (waiting there for a STARTTLS reply would
 * deadlock client and server). */
static bool fuzz_tls_plain(FuzzTlsClient *c)
{
    const uint8_t *p = c->plain;
    size_t left = c->plain_len;
    bool greeted = false;

    size_t k = MIN(left, (size_t)4);        /* the client's flags */
    if (!fuzz_tls_send(c->fd, p, k))
        return false;
    p += k;
    left -= k;
    while (left >= 16) {
        uint64_t magic;
        uint32_t opt, len;
        memcpy(&magic, p, 8);
        memcpy(&opt, p + 8, 4);
        memcpy(&len, p + 12, 4);
        opt = GUINT32_FROM_BE(opt);
        size_t whole = 16 + (size_t)GUINT32_FROM_BE(len);
        if (GUINT64_FROM_BE(magic) != NBD_IHAVEOPT || whole > left)
            break;
        if (!fuzz_tls_send(c->fd, p, whole))
            return false;
        p += whole;
        left -= whole;
        if (opt == NBD_OPT_EXPORT_NAME)
            break;
        if (opt == NBD_OPT_STARTTLS || opt == NBD_OPT_GO) {
            uint32_t type = fuzz_tls_await(c->fd, &greeted, opt);
            if (!type)
                return false;               /* the server is gone */
            if (type == NBD_REP_ACK) {
                if (opt == NBD_OPT_STARTTLS)
                    return true;
                break;
            }
        }
    }
    /* Whatever does not frame as options goes as it is. */
    fuzz_tls_send(c->fd, p, left);
    return false;
}

/* Read until the server closes, so that it never blocks on a reply. */
static void fuzz_tls_drain(int fd)
{
    char sink[65536];
    for (;;) {
        ssize_t n = recv(fd, sink, sizeof(sink), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
    }
}

static gpointer fuzz_tls_reader(gpointer opaque)
{
    gnutls_session_t s = opaque;
    char sink[65536];
    for (;;) {
        ssize_t n = gnutls_record_recv(s, sink, sizeof(sink));
        if (n > 0 || n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
            continue;
        if (n < 0 && !gnutls_error_is_fatal((int)n))
            continue;
        return NULL;
    }
}

/* The TLS phase as a real client: handshake, then the tls bytes inside
 * the session while another thread reads the replies. */
static void fuzz_tls_session(FuzzTlsClient *c)
{
    gnutls_session_t s;
    gnutls_psk_client_credentials_t cred;
    bool stranger = c->mode & 4;
    const gnutls_datum_t key = {
        (unsigned char *)(stranger ? FUZZ_TLS_STRANGER_KEY : FUZZ_TLS_KEY),
        64 };

    if (gnutls_psk_allocate_client_credentials(&cred) < 0)
        abort();
    gnutls_psk_set_client_credentials(cred, stranger ? "stranger" : "fuzz",
                                      &key, GNUTLS_PSK_KEY_HEX);
    if (gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL) < 0)
        abort();
    /* Plain PSK, no (EC)DHE: the server allows it, and the key exchange
     * is GnuTLS's code, not blkhost's.  Without it a handshake costs a
     * fifth less CPU (3000 inputs: 4.6 -> 3.5 s user). */
    gnutls_priority_set_direct(s, "NORMAL:+PSK", NULL);
    gnutls_credentials_set(s, GNUTLS_CRD_PSK, cred);
    gnutls_transport_set_int(s, c->fd);
    int r;
    do
        r = gnutls_handshake(s);
    while (r < 0 && !gnutls_error_is_fatal(r));
    if (r == 0) {
        GThread *t = g_thread_new("fuzz-tls-reader", fuzz_tls_reader, s);
        g_autoptr(GByteArray) b = g_byte_array_new();
        if (c->mode & 8)
            fuzz_nbd_canned_go(b, true);
        g_byte_array_append(b, c->tls, c->tls_len);
        for (size_t done = 0; done < b->len;) {
            ssize_t n = gnutls_record_send(s, b->data + done,
                                           MIN(b->len - done, 16384));
            if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
                continue;
            if (n <= 0)
                break;
            done += (size_t)n;
        }
        gnutls_bye(s, GNUTLS_SHUT_WR);
        shutdown(c->fd, SHUT_WR);
        g_thread_join(t);
    } else {
        shutdown(c->fd, SHUT_WR);
        fuzz_tls_drain(c->fd);
    }
    gnutls_deinit(s);
    gnutls_psk_free_client_credentials(cred);
}

static gpointer fuzz_tls_client(gpointer opaque)
{
    FuzzTlsClient *c = opaque;
    if (!fuzz_tls_plain(c)) {
        shutdown(c->fd, SHUT_WR);
        fuzz_tls_drain(c->fd);
    } else if (c->mode & 2) {
        fuzz_tls_session(c);
    } else {
        fuzz_tls_send(c->fd, c->tls, c->tls_len);
        shutdown(c->fd, SHUT_WR);
        fuzz_tls_drain(c->fd);
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    fuzz_init();
    if (len < 3 || !nbd_tls_available())
        return 0;
    size_t plain_len = MIN((size_t)(data[1] << 8 | data[2]), len - 3);
    FuzzTlsClient c = { .mode = data[0], .plain = data + 3,
                        .plain_len = plain_len,
                        .tls = data + 3 + plain_len,
                        .tls_len = len - 3 - plain_len };
    NbdTls *tls = fuzz_tls_server(data[0] & 1);

    fuzz_nbd_export = fuzz_memory_node(NULL, 0, 1024 * 1024);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    c.fd = sv[1];
    GThread *t = g_thread_new("fuzz-client", fuzz_tls_client, &c);

    NbdSession s;
    NbdStats stats = { 0 };
    BhError *err = NULL;
    if (nbd_handshake_server_tls(sv[0], &fuzz_nbd_ops, NULL, tls, NULL, &s,
                                 &err) == 1)
        nbd_conn_serve(sv[0], &s, fuzz_nbd_pool(), &stats, NULL);
    const char *v = g_getenv("FUZZ_VERBOSE");
    if (v && *v && strcmp(v, "0"))
        fprintf(stderr, "fuzz-nbd-tls: %s; %s, %" G_GUINT64_FORMAT
                " requests (%" G_GUINT64_FORMAT " errors)\n",
                err ? bh_error_message(err) : "handshake done",
                s.tls ? "over TLS" : "plaintext", stats.requests,
                stats.errors);
    bh_error_free(err);
    fuzz_nbd_finish(&s, sv, t);
    return 0;
}
