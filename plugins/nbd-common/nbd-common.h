/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The NBD server engine shared by the frontends: the fixed-newstyle
 * handshake (nbd-handshake.c) and the transmission phase (nbd-conn.c,
 * nbd-cmd.c) over one connected socket.
 *
 * The nbd-server frontend calls nbd_handshake_server() then
 * nbd_conn_serve() from each connection's thread.  The nbd-kernel
 * frontend can do the same on one end of a socketpair (its client end
 * negotiates GO without structured replies, as the kernel needs simple
 * replies), or skip the handshake and build the session with
 * nbd_export_view_init() directly.
 *
 * Threads: nbd_conn_serve()'s caller becomes the connection's reader; the
 * requests it reads run on an NbdPool shared by every connection and
 * finish in any order.  Workers never block on a socket: a reply goes out
 * with one non-blocking sendmsg() (over TLS: record sends, nbd-tls.c)
 * when the socket is free, otherwise the connection's own writer thread
 * sends it (nbd-reply.c).  A client that stops reading thus stalls only itself;
 * with a send timeout on the socket (SO_SNDTIMEO) it is dropped.
 * Nothing is allocated per request: each
 * connection has a fixed set of request slots whose buffers grow lazily
 * to the largest request seen (at most NBD_MAX_PAYLOAD).
 */
#ifndef NBD_COMMON_H
#define NBD_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <blkhost/blkhost.h>

#include "nbd-proto.h"
#include "nbd-tls.h"

G_BEGIN_DECLS

/* One export as a session sees it, resolved at GO / EXPORT_NAME time. */
typedef struct NbdExportView {
    const char *name;          /* borrowed from the owner */
    const char *description;   /* borrowed, may be NULL */
    BhNode *node;              /* borrowed: the owner keeps it alive */
    uint64_t size;
    bool readonly;
    bool can_block_status;
    bool single_conn;          /* set by lookup: the owner serves one client
                                  at a time, so no CAN_MULTI_CONN */
    uint16_t tflags;           /* transmission flags sent to the client */
    uint32_t min_block, pref_block, max_block;
    void *opaque;              /* the owner's export object */
} NbdExportView;

/* Fill a view for node; tflags depend on whether structured replies were
 * negotiated (SEND_DF needs them). */
void nbd_export_view_init(NbdExportView *v, BhNode *node, const char *name,
                          const char *description, bool readonly,
                          bool structured);

typedef void (*NbdListFn)(void *ctx, const char *name, const char *desc);

/* How the handshake finds exports; called from the connection's thread. */
typedef struct NbdHandshakeOps {
    /* Fill name/description/node/readonly/opaque of *v for an export
     * name; false if there is no such export.  What is returned must stay
     * valid until the connection ends. */
    bool (*lookup)(void *data, const char *name, NbdExportView *v);
    void (*list)(void *data, NbdListFn fn, void *ctx);
    /* Optional: called before the reply that puts the client in
     * transmission (GO's ACK, EXPORT_NAME's answer).  It may wait, e.g.
     * for a place among the served clients; false refuses the client
     * (NBD_REP_ERR_SHUTDOWN, or a hang-up after EXPORT_NAME). */
    bool (*enter)(void *data);
} NbdHandshakeOps;

typedef struct NbdSession {
    NbdExportView exp;
    bool structured;           /* NBD_OPT_STRUCTURED_REPLY acknowledged */
    bool meta_base_allocation; /* base:allocation selected for exp */
    bool no_zeroes;
    char *meta_export;         /* export name SET_META_CONTEXT named */
    NbdTlsConn *tls;           /* after STARTTLS: all I/O goes through it */
} NbdSession;

void nbd_session_clear(NbdSession *s);

/*
 * Run the server side of the handshake on fd.  If refuse is not NULL,
 * every option but ABORT is answered NBD_REP_ERR_POLICY with that
 * message (used when the server is full or shutting down).
 * Returns 1 when the client entered transmission with *s filled, 0 when
 * it left cleanly (ABORT, EOF between options, refused), -errno on a
 * protocol violation or I/O error with errp saying what was wrong.
 */
int nbd_handshake_server(int fd, const NbdHandshakeOps *ops, void *data,
                         const char *refuse, NbdSession *s, BhError **errp);
/*
 * The same with TLS offered (tls not NULL): STARTTLS runs the TLS
 * handshake and the rest of the session goes through s->tls.  Under
 * NBD_TLS_REQUIRE every option before STARTTLS but ABORT is answered
 * NBD_REP_ERR_TLS_REQD (EXPORT_NAME: hang-up), so nothing, not even the
 * export list, is told to a plaintext client.  A TLS client refused by
 * the credentials' policy gets NBD_REP_ERR_POLICY with the reason, and
 * the call returns -EACCES with errp naming the client's identity.
 */
int nbd_handshake_server_tls(int fd, const NbdHandshakeOps *ops, void *data,
                             NbdTls *tls, const char *refuse, NbdSession *s,
                             BhError **errp);

/* ---- transmission ---- */

/* Counters a server keeps across its connections (updated atomically). */
typedef struct NbdStats {
    uint64_t requests;
    uint64_t bytes_read;
    uint64_t bytes_written;
    uint64_t errors;
} NbdStats;

typedef struct NbdPool NbdPool;

NbdPool *nbd_pool_new(unsigned nworkers, BhError **errp);
/* Joins the workers; no connection may still be served. */
void nbd_pool_free(NbdPool *pool);

/*
 * Serve the transmission phase on fd until the client sends DISC,
 * closes, violates the protocol, or someone calls shutdown(fd, SHUT_RD)
 * (how a server stops).  Waits for every request already read to be
 * answered.  Does not close fd.  Returns 0 on a clean end (DISC or EOF
 * between requests), -errno otherwise with errp set.
 */
int nbd_conn_serve(int fd, const NbdSession *s, NbdPool *pool,
                   NbdStats *stats, BhError **errp);

/* Write all of buf (blocking); -errno on failure. */
int nbd_write_full(int fd, const void *buf, size_t len);
/* Read exactly len bytes; 0 on success, -EPIPE on EOF, -errno else. */
int nbd_read_full(int fd, void *buf, size_t len);

G_END_DECLS

#endif
