/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internals of the nbd-server frontend: the server object shared by the
 * plugin vtable (nbd-server.c), the listening sockets (listen.c) and the
 * accept and connection threads (client.c).
 */
#ifndef NBD_SERVER_H
#define NBD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <glib.h>
#include <blkhost/blkhost.h>

#include "nbd-common.h"

typedef struct NbdListener {
    int fd;
    int family;          /* AF_UNIX, AF_INET, AF_INET6 */
    char *path;          /* AF_UNIX: the socket file we created, else NULL */
    dev_t dev;           /* of path, so stop removes only our own file */
    ino_t ino;
    bool owned;          /* we created fd (not systemd / fd:N) */
} NbdListener;

/* Where Lua (or any owner) wants events; outlives the server while
 * events are queued on the main loop. */
typedef struct NbdEventSink {
    gint ref;
    GMutex lock;
    BhFrontendEventFn cb;
    void *data;
} NbdEventSink;

typedef struct NbdClient {
    struct NbdServer *srv;
    int fd;
    uint64_t id;
    char *peer;
    char *export_name;   /* once the handshake chose one */
    bool handshaking;    /* counts toward max_handshakes */
    gint64 deadline;     /* monotonic end of the handshake */
    bool timed_out;      /* the accept thread cut the handshake off */
    bool counted;        /* holds a max-clients place */
} NbdClient;

typedef struct NbdServer {
    /* options */
    char **listen;       /* specs as given */
    unsigned max_clients;  /* served clients at once; 0: no limit */
    unsigned max_handshakes;  /* clients in the handshake at once */
    unsigned handshake_timeout;  /* s for the whole handshake; 0: none */
    unsigned send_timeout;   /* s a stuck reply may wait; 0: forever */
    unsigned stop_timeout;   /* s stop waits for requests; 0: forever */
    bool persistent;
    unsigned nthreads;
    NbdTls *tls;         /* TLS credentials and policy; NULL: tls=off */

    GMutex lock;         /* everything below */
    GCond cond;
    GPtrArray *exports;  /* BhExport * */
    GPtrArray *retired;  /* removed exports: sessions may still point into
                          * them, so they are freed with the server */
    GArray *listeners;   /* NbdListener */
    GList *clients;      /* NbdClient *, counted or not */
    unsigned nclients;   /* served (counted) */
    unsigned nhandshakes;
    uint64_t next_id;
    uint64_t total_clients;
    bool started, stopping, stopped;
    bool holding;        /* we hold the main loop */

    GThread *accept_thread;
    int wake[2];         /* pipe that wakes the accept thread */
    NbdPool *pool;
    NbdStats stats;
    NbdEventSink *sink;
} NbdServer;

/* listen.c */
bool nbd_listen_check_spec(const char *spec, BhError **errp);
/* Open every listener in srv->listen (or systemd's sockets). */
bool nbd_listen_open(NbdServer *srv, BhError **errp);
void nbd_listen_close(NbdServer *srv);
/* nbds:// and nbds+unix:// when tls (the server requires TLS). */
char *nbd_listen_uri(const NbdListener *l, const char *export_name,
                     bool tls);
char *nbd_listen_describe(const NbdListener *l);

/* client.c */
bool nbd_accept_start(NbdServer *srv, BhError **errp);
/* Ends every client; false if some did not finish within stop_timeout
 * (a driver call that never returns): then the sockets are shut down and
 * the stuck exports named on stderr. */
bool nbd_accept_stop(NbdServer *srv);
void nbd_server_emit(NbdServer *srv, const char *event, BhInfo *details);

#endif
