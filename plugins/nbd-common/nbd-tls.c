/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TLS sessions of the NBD server on GnuTLS: credentials from qemu's
 * directory layout or a psktool key file, the server handshake, peer
 * checks (certificate verification, allow-list) and record I/O.
 *
 * Without GnuTLS at build time only the stubs at the end are compiled:
 * they refuse every mode but off with a message naming the cause.
 */
#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <blkhost/blkhost.h>

#include "nbd-tls.h"

bool nbd_tls_mode_parse(const char *s, NbdTlsMode *mode)
{
    if (g_strcmp0(s, "off") == 0)
        *mode = NBD_TLS_OFF;
    else if (g_strcmp0(s, "on") == 0)
        *mode = NBD_TLS_ON;
    else if (g_strcmp0(s, "require") == 0)
        *mode = NBD_TLS_REQUIRE;
    else
        return false;
    return true;
}

int nbd_tls_read_full(NbdTlsConn *c, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = nbd_tls_recv(c, p, len);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

#ifdef HAVE_GNUTLS

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

/* Records are at most 16 KiB: smaller pieces of one reply are gathered
 * into shared records, larger ones go out directly without a copy. */
#define NBD_TLS_CORK_MAX 16384
/* Read-ahead of the transmission phase (nbd_tls_set_recv_hook). */
#define NBD_TLS_RBUF_SIZE 16384

struct NbdTls {
    NbdTlsMode mode;
    gnutls_certificate_credentials_t x509;   /* or NULL */
    gnutls_psk_server_credentials_t psk;     /* or NULL */
    gnutls_priority_t prio;
    GHashTable *keys;                        /* PSK identity -> key bytes */
    bool verify_peer;
    char **allow;
};

struct NbdTlsConn {
    gnutls_session_t s;
    NbdTls *tls;
    int fd;
    /* The sender asked for a non-blocking send (nbd_tls_send_some); only
     * the one thread that owns the send side reads or writes it. */
    bool nonblock;
    /* Read-ahead from fd once the transmission phase starts (reader
     * thread only): rbuf[rpos, rlen) is not yet given to GnuTLS. */
    uint8_t *rbuf;
    size_t rpos, rlen;
    void (*before_recv)(void *data);
    void *before_recv_data;
    char *identity;
    char *dn_compat;      /* the DN in GnuTLS's older order (qemu's) */
    char *psk_asked;      /* the identity the client's PSK handshake named */
};

bool nbd_tls_available(void)
{
    return true;
}

NbdTlsMode nbd_tls_mode(const NbdTls *tls)
{
    return tls ? tls->mode : NBD_TLS_OFF;
}

/* "WHAT: GnuTLS's reason", WHAT a format. */
static int tls_fail(BhError **errp, int err, int gr, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);
static int tls_fail(BhError **errp, int err, int gr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    return bh_error_set(errp, err, "%s: %s", what, gnutls_strerror(gr));
}

/* identity:hexkey lines, as psktool writes them.  The keys are held in
 * memory so that the file is read once and an unknown identity can be
 * named in the log. */
static bool tls_load_psk(NbdTls *tls, const char *path, BhError **errp)
{
    g_autofree char *text = NULL;
    GError *gerr = NULL;
    if (!g_file_get_contents(path, &text, NULL, &gerr)) {
        bh_error_set(errp, ENOENT, "cannot read the PSK file: %s",
                     gerr->message);
        g_error_free(gerr);
        return false;
    }
    tls->keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify)g_bytes_unref);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        char *line = g_strstrip(lines[i]);
        if (!*line || *line == '#')
            continue;
        char *colon = strrchr(line, ':');
        size_t hexlen = colon ? strlen(colon + 1) : 0;
        if (!colon || colon == line || hexlen == 0 || hexlen % 2) {
            bh_error_set(errp, EINVAL, "%s line %d: expected "
                         "IDENTITY:HEXKEY (as psktool writes)", path, i + 1);
            return false;
        }
        GByteArray *key = g_byte_array_sized_new(hexlen / 2);
        for (size_t j = 0; j < hexlen; j += 2) {
            int hi = g_ascii_xdigit_value(colon[1 + j]);
            int lo = g_ascii_xdigit_value(colon[2 + j]);
            if (hi < 0 || lo < 0) {
                g_byte_array_unref(key);
                bh_error_set(errp, EINVAL, "%s line %d: the key is not "
                             "hexadecimal", path, i + 1);
                return false;
            }
            guint8 b = (guint8)(hi << 4 | lo);
            g_byte_array_append(key, &b, 1);
        }
        g_hash_table_replace(tls->keys, g_strndup(line, colon - line),
                             g_byte_array_free_to_bytes(key));
    }
    if (g_hash_table_size(tls->keys) == 0) {
        bh_error_set(errp, EINVAL, "the PSK file %s holds no key", path);
        return false;
    }
    return true;
}

static int tls_psk_lookup(gnutls_session_t s, const char *username,
                          gnutls_datum_t *key)
{
    NbdTlsConn *c = gnutls_session_get_ptr(s);
    g_free(c->psk_asked);
    c->psk_asked = g_strdup(username);
    GBytes *k = g_hash_table_lookup(c->tls->keys, username);
    if (!k)
        return -1;
    gsize len;
    const void *data = g_bytes_get_data(k, &len);
    key->data = gnutls_malloc(len);
    if (!key->data)
        return -1;
    memcpy(key->data, data, len);
    key->size = (unsigned)len;
    return 0;
}

static bool tls_load_x509(NbdTls *tls, const char *dir, BhError **errp)
{
    g_autofree char *ca = g_build_filename(dir, "ca-cert.pem", NULL);
    g_autofree char *crl = g_build_filename(dir, "ca-crl.pem", NULL);
    g_autofree char *cert = g_build_filename(dir, "server-cert.pem", NULL);
    g_autofree char *key = g_build_filename(dir, "server-key.pem", NULL);
    int r = gnutls_certificate_allocate_credentials(&tls->x509);
    if (r < 0)
        return tls_fail(errp, ENOMEM, r, "TLS credentials"), false;
    if (access(ca, R_OK) == 0) {
        r = gnutls_certificate_set_x509_trust_file(tls->x509, ca,
                                                   GNUTLS_X509_FMT_PEM);
        if (r < 0)
            return tls_fail(errp, EINVAL, r, "loading %s", ca), false;
    } else if (tls->verify_peer) {
        bh_error_set(errp, ENOENT, "verify-peer needs the CA certificate "
                     "%s: %s", ca, g_strerror(errno));
        return false;
    }
    /* A revocation list is optional, as in qemu's layout. */
    if (access(crl, R_OK) == 0 &&
        (r = gnutls_certificate_set_x509_crl_file(tls->x509, crl,
                                                  GNUTLS_X509_FMT_PEM)) < 0)
        return tls_fail(errp, EINVAL, r, "loading %s", crl), false;
    for (const char *f = cert; f; f = f == cert ? key : NULL)
        if (access(f, R_OK) != 0) {
            bh_error_set(errp, ENOENT, "the TLS certificate directory "
                         "needs %s: %s", f, g_strerror(errno));
            return false;
        }
    r = gnutls_certificate_set_x509_key_file(tls->x509, cert, key,
                                             GNUTLS_X509_FMT_PEM);
    if (r < 0)
        return tls_fail(errp, EINVAL, r, "loading %s and %s", cert, key),
               false;
    gnutls_certificate_set_known_dh_params(tls->x509, GNUTLS_SEC_PARAM_MEDIUM);
    return true;
}

/* Whether the CPU has AES and carry-less multiply instructions, which
 * make AES-GCM several times faster than ChaCha20-Poly1305 (on the
 * development VM, gnutls-cli --benchmark-ciphers: 3.2 GB/s against
 * 0.32 GB/s).  Clients tend to list ChaCha20 before AES-128-GCM, the
 * only other suite an external PSK (bound to SHA-256) allows in TLS 1.3,
 * so with such a CPU the server picks the cipher, ChaCha20 last: both
 * sides of a connection then spend a fraction of the time on crypto.
 * Without these instructions the client's order stands (software AES is
 * slower than ChaCha20, and its tables leak timing). */
static bool tls_cpu_has_aes(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
#elif defined(__aarch64__) && defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP);
    return (hw & HWCAP_AES) && (hw & HWCAP_PMULL);
#else
    return false;
#endif
}

NbdTls *nbd_tls_new(const NbdTlsConfig *cfg, BhError **errp)
{
    if (cfg->mode == NBD_TLS_OFF)
        return NULL;
    if (!cfg->x509_dir && !cfg->psk_file) {
        bh_error_set(errp, EINVAL, "TLS needs credentials: an X.509 "
                     "directory (tls-x509-dir) or a PSK file "
                     "(tls-psk-file)");
        return NULL;
    }
    NbdTls *tls = g_new0(NbdTls, 1);
    tls->mode = cfg->mode;
    tls->verify_peer = cfg->verify_peer;
    tls->allow = g_strdupv(cfg->allow);
    if (cfg->x509_dir && !tls_load_x509(tls, cfg->x509_dir, errp))
        goto fail;
    if (cfg->psk_file) {
        if (!tls_load_psk(tls, cfg->psk_file, errp))
            goto fail;
        int r = gnutls_psk_allocate_server_credentials(&tls->psk);
        if (r < 0) {
            tls_fail(errp, ENOMEM, r, "TLS PSK credentials");
            goto fail;
        }
        gnutls_psk_set_server_credentials_function(tls->psk, tls_psk_lookup);
        gnutls_psk_set_server_known_dh_params(tls->psk,
                                              GNUTLS_SEC_PARAM_MEDIUM);
    }
    /* PSK key exchanges are not in NORMAL: add them when a key file is
     * given (the same set qemu and nbdkit offer). */
    char *prio = g_strconcat(
        tls->psk ? "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK" : "NORMAL",
        tls_cpu_has_aes() ? ":-CHACHA20-POLY1305:+CHACHA20-POLY1305"
                            ":%SERVER_PRECEDENCE" : "", NULL);
    int r = gnutls_priority_init(&tls->prio, prio, NULL);
    g_free(prio);
    if (r < 0) {
        tls_fail(errp, EINVAL, r, "TLS priorities");
        goto fail;
    }
    return tls;
fail:
    nbd_tls_free(tls);
    return NULL;
}

void nbd_tls_free(NbdTls *tls)
{
    if (!tls)
        return;
    if (tls->x509)
        gnutls_certificate_free_credentials(tls->x509);
    if (tls->psk)
        gnutls_psk_free_server_credentials(tls->psk);
    if (tls->prio)
        gnutls_priority_deinit(tls->prio);
    if (tls->keys)
        g_hash_table_unref(tls->keys);
    g_strfreev(tls->allow);
    g_free(tls);
}

/* The client certificate's subject DN, checked against our CA.  Returns
 * NULL with *why set when the peer cannot be trusted. */
static char *tls_peer_dn(NbdTlsConn *c, char **why)
{
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(c->s, &n);
    if (!certs || n == 0) {
        if (c->tls->verify_peer || c->tls->allow)
            *why = g_strdup("the client sent no certificate, and this "
                            "server requires one");
        return NULL;
    }
    unsigned status = 0;
    int r = gnutls_certificate_verify_peers2(c->s, &status);
    if (r < 0 || status) {
        gnutls_datum_t out = { 0 };
        if (r >= 0 && gnutls_certificate_verification_status_print(
                          status, GNUTLS_CRT_X509, &out, 0) == 0) {
            *why = g_strdup_printf("the client certificate is not valid: %s",
                                   (const char *)out.data);
            gnutls_free(out.data);
        } else {
            *why = g_strdup_printf("the client certificate cannot be "
                                   "verified: %s", gnutls_strerror(r));
        }
    }
    gnutls_x509_crt_t crt;
    char *dn = NULL;
    if (gnutls_x509_crt_init(&crt) < 0)
        return NULL;
    gnutls_datum_t d = { 0 };
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
        gnutls_x509_crt_get_dn3(crt, &d, 0) == 0) {
        dn = g_strndup((const char *)d.data, d.size);
        gnutls_free(d.data);
        if (gnutls_x509_crt_get_dn3(crt, &d, GNUTLS_X509_DN_FLAG_COMPAT) == 0) {
            c->dn_compat = g_strndup((const char *)d.data, d.size);
            gnutls_free(d.data);
        }
    }
    gnutls_x509_crt_deinit(crt);
    return dn;
}

/* DNs compare without spaces after commas, so "CN=a, O=b" in an
 * allow-list matches GnuTLS's "CN=a,O=b"; either RDN order matches, as
 * qemu's authz lists DNs in GnuTLS's older order ("O=b,CN=a"). */
static bool tls_allowed(const NbdTls *tls, const char *id, const char *alt)
{
    if (!tls->allow)
        return true;
    if (!id)
        return false;
    for (char **a = tls->allow; *a; a++) {
        g_autoptr(GString) norm = g_string_new(NULL);
        for (const char *p = *a; *p; p++) {
            g_string_append_c(norm, *p);
            if (*p == ',')
                while (p[1] == ' ')
                    p++;
        }
        if (strcmp(norm->str, id) == 0 || g_strcmp0(norm->str, alt) == 0)
            return true;
    }
    return false;
}

/* GnuTLS's writes to the socket.  A worker that found the connection's
 * send side idle may try to send a reply without blocking (nbd-reply.c):
 * then the socket being full makes GnuTLS return GNUTLS_E_AGAIN with the
 * record kept, which whoever sends next finishes, blocking. */
static ssize_t tls_push(gnutls_transport_ptr_t ptr, const giovec_t *iov,
                        int n)
{
    NbdTlsConn *c = ptr;
    struct msghdr mh = { .msg_iov = (struct iovec *)iov,
                         .msg_iovlen = (size_t)n };
    ssize_t r = sendmsg(c->fd, &mh,
                        MSG_NOSIGNAL | (c->nonblock ? MSG_DONTWAIT : 0));
    if (r < 0 && errno == ENOTSOCK) {
        /* not a socket (a pipe in tests): no per-call non-blocking mode */
        if (c->nonblock)
            errno = EAGAIN;
        else
            r = writev(c->fd, (const struct iovec *)iov, n);
    }
    if (r < 0)
        gnutls_transport_set_errno(c->s, errno);
    return r;
}

/* GnuTLS reads a record in two steps, its 5-byte header then its body,
 * each with one recv() of just that size: two system calls for every
 * request a client sends.  Reading ahead lets one recv() take all the
 * records that arrived together; a body at least as big as the buffer
 * (most of a write's payload) is read straight into GnuTLS's buffer. */
static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *buf, size_t size)
{
    NbdTlsConn *c = ptr;
    if (c->rpos == c->rlen) {
        /* About to wait for the client: let the caller finish what it
         * holds first (the reader queues the requests it has read). */
        if (c->before_recv)
            c->before_recv(c->before_recv_data);
        bool direct = size >= NBD_TLS_RBUF_SIZE;
        void *dst = direct ? buf : c->rbuf;
        size_t want = direct ? size : NBD_TLS_RBUF_SIZE;
        ssize_t r = recv(c->fd, dst, want, 0);
        if (r < 0 && errno == ENOTSOCK)
            r = read(c->fd, dst, want);
        if (r < 0)
            gnutls_transport_set_errno(c->s, errno);
        if (r <= 0 || direct)
            return r;
        c->rpos = 0;
        c->rlen = (size_t)r;
    }
    size_t n = MIN(size, c->rlen - c->rpos);
    memcpy(buf, c->rbuf + c->rpos, n);
    c->rpos += n;
    return (ssize_t)n;
}

/* GnuTLS asks this only when a receive timeout is set; it must know
 * about the read-ahead, which poll() does not see. */
static int tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms)
{
    NbdTlsConn *c = ptr;
    if (c->rpos < c->rlen)
        return 1;
    struct pollfd p = { .fd = c->fd, .events = POLLIN };
    int timeout = ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms;
    int r = poll(&p, 1, timeout);
    if (r < 0)
        gnutls_transport_set_errno(c->s, errno);
    return r;
}

void nbd_tls_set_recv_hook(NbdTlsConn *c, void (*fn)(void *data), void *data)
{
    if (!c->rbuf) {
        /* GnuTLS's own pull read exactly what it asked for, so nothing
         * of the next record is lost by switching now. */
        c->rbuf = g_malloc(NBD_TLS_RBUF_SIZE);
        gnutls_transport_set_ptr2(c->s, c, c);
        gnutls_transport_set_pull_function(c->s, tls_pull);
        gnutls_transport_set_pull_timeout_function(c->s, tls_pull_timeout);
    }
    c->before_recv = fn;
    c->before_recv_data = data;
}

NbdTlsConn *nbd_tls_handshake(NbdTls *tls, int fd, char **refuse,
                              BhError **errp)
{
    NbdTlsConn *c = g_new0(NbdTlsConn, 1);
    c->tls = tls;
    int r = gnutls_init(&c->s, GNUTLS_SERVER | GNUTLS_NO_SIGNAL);
    if (r < 0) {
        tls_fail(errp, ENOMEM, r, "starting a TLS session");
        g_free(c);
        return NULL;
    }
    gnutls_session_set_ptr(c->s, c);
    gnutls_priority_set(c->s, tls->prio);
    if (tls->x509) {
        gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, tls->x509);
        gnutls_certificate_server_set_request(
            c->s, tls->verify_peer || tls->allow ? GNUTLS_CERT_REQUIRE
                                                 : GNUTLS_CERT_IGNORE);
    }
    if (tls->psk)
        gnutls_credentials_set(c->s, GNUTLS_CRD_PSK, tls->psk);
    /* Receiving stays GnuTLS's own recv() on fd; sending goes through
     * tls_push, which can be told not to block. */
    c->fd = fd;
    gnutls_transport_set_ptr2(c->s, GINT_TO_POINTER(fd), c);
    gnutls_transport_set_vec_push_function(c->s, tls_push);

    do
        r = gnutls_handshake(c->s);
    while (r < 0 && r != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(r));
    if (r == GNUTLS_E_AGAIN) {
        bh_error_set(errp, EAGAIN, "the client stalled in the TLS "
                     "handshake");
        goto fail;
    }
    if (r < 0) {
        if (c->psk_asked && !g_hash_table_contains(tls->keys, c->psk_asked))
            bh_error_set(errp, EACCES, "TLS handshake failed: unknown PSK "
                         "identity '%s'", c->psk_asked);
        else if (c->psk_asked)
            bh_error_set(errp, EACCES, "TLS handshake failed for PSK "
                         "identity '%s' (wrong key?): %s", c->psk_asked,
                         gnutls_strerror(r));
        else
            tls_fail(errp, EACCES, r, "TLS handshake failed");
        goto fail;
    }

    char *why = NULL;
    if (gnutls_auth_get_type(c->s) == GNUTLS_CRD_PSK) {
        const char *u = gnutls_psk_server_get_username(c->s);
        c->identity = u ? g_strdup(u) : NULL;
    } else {
        c->identity = tls_peer_dn(c, &why);
    }
    if (!why && !tls_allowed(tls, c->identity, c->dn_compat))
        why = g_strdup_printf("client identity '%s' is not on this "
                              "server's allow-list",
                              c->identity ? c->identity : "(none)");
    *refuse = why;
    return c;
fail:
    gnutls_deinit(c->s);
    g_free(c->psk_asked);
    g_free(c);
    return NULL;
}

const char *nbd_tls_conn_identity(const NbdTlsConn *c)
{
    return c ? c->identity : NULL;
}

void nbd_tls_conn_free(NbdTlsConn *c)
{
    if (!c)
        return;
    /* Don't wait for the peer's close_notify: it may be gone. */
    gnutls_bye(c->s, GNUTLS_SHUT_WR);
    gnutls_deinit(c->s);
    g_free(c->identity);
    g_free(c->dn_compat);
    g_free(c->psk_asked);
    g_free(c->rbuf);
    g_free(c);
}

ssize_t nbd_tls_recv(NbdTlsConn *c, void *buf, size_t len)
{
    for (;;) {
        ssize_t r = gnutls_record_recv(c->s, buf, len);
        if (r >= 0)
            return r;
        switch (r) {
        case GNUTLS_E_INTERRUPTED:
            continue;
        case GNUTLS_E_AGAIN:
            return -EAGAIN;
        case GNUTLS_E_PREMATURE_TERMINATION:
            return 0;     /* a hang-up without close_notify */
        case GNUTLS_E_PULL_ERROR:
            return -ECONNRESET;
        default:
            return -EPROTO;
        }
    }
}

int nbd_tls_send(NbdTlsConn *c, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t r = gnutls_record_send(c->s, p, len);
        if (r == GNUTLS_E_INTERRUPTED)
            continue;
        /* Only a send timeout (SO_SNDTIMEO) makes a blocking socket say
         * EAGAIN: the peer stopped reading. */
        if (r == GNUTLS_E_AGAIN)
            return -EAGAIN;
        if (r < 0)
            return -EPIPE;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

ssize_t nbd_tls_send_some(NbdTlsConn *c, const void *buf, size_t len,
                          bool nonblock)
{
    c->nonblock = nonblock;
    ssize_t r;
    do
        r = gnutls_record_send(c->s, buf, len);
    while (r == GNUTLS_E_INTERRUPTED);
    c->nonblock = false;
    if (r >= 0)
        return r;
    return r == GNUTLS_E_AGAIN ? -EAGAIN : -EPIPE;
}

/* GNUTLS_RECORD_WAIT would retry EAGAIN forever, even past a send
 * timeout; retry only interruptions. */
static int tls_uncork(NbdTlsConn *c)
{
    for (;;) {
        int r = gnutls_record_uncork(c->s, 0);
        if (r >= 0)
            return 0;
        if (r == GNUTLS_E_INTERRUPTED)
            continue;
        return r == GNUTLS_E_AGAIN ? -EAGAIN : -EPIPE;
    }
}

int nbd_tls_sendv(NbdTlsConn *c, const struct iovec *iov, int n)
{
    bool corked = false;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len < NBD_TLS_CORK_MAX) {
            if (!corked) {
                gnutls_record_cork(c->s);
                corked = true;
            }
        } else if (corked) {
            corked = false;
            int r = tls_uncork(c);
            if (r < 0)
                return r;
        }
        int r = nbd_tls_send(c, iov[i].iov_base, iov[i].iov_len);
        if (r < 0)
            return r;
    }
    return corked ? tls_uncork(c) : 0;
}

#else /* !HAVE_GNUTLS */

struct NbdTls { int unused; };
struct NbdTlsConn { int unused; };

bool nbd_tls_available(void)
{
    return false;
}

NbdTlsMode nbd_tls_mode(const NbdTls *tls)
{
    return NBD_TLS_OFF;
}

NbdTls *nbd_tls_new(const NbdTlsConfig *cfg, BhError **errp)
{
    if (cfg->mode != NBD_TLS_OFF)
        bh_error_set(errp, ENOTSUP, "TLS is not available: blkhost was "
                     "built without GnuTLS (install libgnutls28-dev and "
                     "rebuild)");
    return NULL;
}

void nbd_tls_free(NbdTls *tls) { }

NbdTlsConn *nbd_tls_handshake(NbdTls *tls, int fd, char **refuse,
                              BhError **errp)
{
    bh_error_set(errp, ENOTSUP, "TLS is not available in this build");
    return NULL;
}

const char *nbd_tls_conn_identity(const NbdTlsConn *c) { return NULL; }
void nbd_tls_conn_free(NbdTlsConn *c) { }
ssize_t nbd_tls_recv(NbdTlsConn *c, void *buf, size_t len) { return -ENOTSUP; }
int nbd_tls_send(NbdTlsConn *c, const void *buf, size_t len) { return -ENOTSUP; }
int nbd_tls_sendv(NbdTlsConn *c, const struct iovec *iov, int n)
{
    return -ENOTSUP;
}
ssize_t nbd_tls_send_some(NbdTlsConn *c, const void *buf, size_t len,
                          bool nonblock)
{
    return -ENOTSUP;
}
void nbd_tls_set_recv_hook(NbdTlsConn *c, void (*fn)(void *data), void *data)
{
}

#endif
