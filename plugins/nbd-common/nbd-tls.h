/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TLS for the NBD server (STARTTLS in the handshake), on GnuTLS.
 *
 * An NbdTls holds a server's credentials (X.509 and/or PSK) and its
 * policy, loaded once at create time; an NbdTlsConn is one connection's
 * session.  When the build has no GnuTLS, nbd_tls_new() fails for every
 * mode but off with a message saying so, and nothing else is reachable.
 *
 * Threads: one thread may call nbd_tls_recv() while another sends;
 * sends must be serialised by the caller (nbd-reply.c: whoever holds the
 * connection's send side, a worker or the writer thread), as GnuTLS
 * allows one reader and one writer at a time per session.  A send that
 * hits the socket's send timeout returns -EAGAIN.
 */
#ifndef NBD_TLS_H
#define NBD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>
#include <glib.h>

G_BEGIN_DECLS

typedef enum {
    NBD_TLS_OFF,
    NBD_TLS_ON,        /* offered; plaintext clients still served */
    NBD_TLS_REQUIRE,   /* every option but ABORT/STARTTLS needs TLS first */
} NbdTlsMode;

typedef struct NbdTlsConfig {
    NbdTlsMode mode;
    const char *x509_dir;    /* ca-cert.pem, server-cert.pem, server-key.pem */
    const char *psk_file;    /* lines identity:hexkey (psktool) */
    bool verify_peer;        /* X.509: demand a client certificate */
    char **allow;            /* DNs / PSK identities; NULL: anyone */
} NbdTlsConfig;

typedef struct NbdTls NbdTls;
typedef struct NbdTlsConn NbdTlsConn;

/* Whether this build can do TLS at all. */
bool nbd_tls_available(void);
/* Parse "off" / "on" / "require"; false if it is none of them. */
bool nbd_tls_mode_parse(const char *s, NbdTlsMode *mode);

/* Load the credentials; NULL with errp set when they cannot be used. */
NbdTls *nbd_tls_new(const NbdTlsConfig *cfg, BhError **errp);
void nbd_tls_free(NbdTls *tls);
NbdTlsMode nbd_tls_mode(const NbdTls *tls);

/*
 * Run the server side of a TLS handshake on fd (after STARTTLS was
 * acknowledged).  NULL with errp set if it fails; then the connection
 * cannot go on.  A peer whose identity is not on the allow-list still
 * gets a session, with *refuse set to a message for its options, so it
 * learns why instead of seeing a hang-up.
 */
NbdTlsConn *nbd_tls_handshake(NbdTls *tls, int fd, char **refuse,
                              BhError **errp);
/* The client's identity: certificate DN or PSK username, or NULL. */
const char *nbd_tls_conn_identity(const NbdTlsConn *c);
/* Send close_notify (best effort) and free the session. */
void nbd_tls_conn_free(NbdTlsConn *c);

/* From now on read ahead from the socket (the transmission phase: the
 * client's requests are small records that often arrive together), and
 * call fn(data), when not NULL, in the receiving thread whenever a
 * receive is about to wait on the socket. */
void nbd_tls_set_recv_hook(NbdTlsConn *c, void (*fn)(void *data), void *data);
/* Up to len bytes: >0 read, 0 on EOF, -errno on error (-EAGAIN on a
 * receive timeout). */
ssize_t nbd_tls_recv(NbdTlsConn *c, void *buf, size_t len);
/* Exactly len bytes: 0, -EPIPE on EOF, -errno else. */
int nbd_tls_read_full(NbdTlsConn *c, void *buf, size_t len);
/* All of buf; 0 or -errno. */
int nbd_tls_send(NbdTlsConn *c, const void *buf, size_t len);
/* All of iov[0..n); 0 or -errno. */
int nbd_tls_sendv(NbdTlsConn *c, const struct iovec *iov, int n);
/* One record of at most 16 KiB from the start of buf: the bytes sent
 * (> 0), -EAGAIN when the socket is full (nonblock) or the send timeout
 * passed (blocking), -errno else.  After -EAGAIN part of the record may
 * be held by GnuTLS: the next send on the session must be this call again
 * with the same buf and len (nonblock may differ), which finishes that
 * record and returns its size. */
ssize_t nbd_tls_send_some(NbdTlsConn *c, const void *buf, size_t len,
                          bool nonblock);

G_END_DECLS

#endif
