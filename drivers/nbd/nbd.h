/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The nbd client driver's shared pieces: the state of one open export,
 * its connections (nbd-conn.c) and the commands that move over them.
 *
 * A caller's request is a job; a job becomes one or more commands (long
 * reads and writes are split at the server's maximum).  Every command is
 * an asynchronous libnbd call on one connection, finished by that
 * connection's poller thread.  A command whose connection died goes back
 * to the export's pending queue and is issued again on whichever
 * connection is up next, until its deadline (retry-timeout) passes.
 */
#ifndef BLKHOST_NBD_H
#define BLKHOST_NBD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libnbd.h>

#include <blkhost/blkhost-plugin.h>

typedef enum {
    NBD_CMD_READ,
    NBD_CMD_WRITE,
    NBD_CMD_FLUSH,
    NBD_CMD_TRIM,
    NBD_CMD_ZERO,
    NBD_CMD_STATUS,
} NbdCmdOp;

typedef struct NbdState NbdState;
typedef struct NbdConn NbdConn;
typedef struct NbdJob NbdJob;
typedef struct NbdCmd NbdCmd;

/* One caller's request: done() runs once, when the last command ends. */
struct NbdJob {
    atomic_int pending;       /* commands not yet finished */
    atomic_int err;           /* the first errno, 0 while all went well */
    atomic_bool timed_out;    /* a command gave up for want of a server */
    void (*done)(NbdJob *job);
    /* Block status: the first extent's length and BH_BLOCK_* flags. */
    uint64_t st_len;
    uint32_t st_flags;
};

struct NbdCmd {
    NbdCmd *next, *prev;      /* in a connection's in-flight or done list,
                               * or in the pending queue (next only) */
    NbdJob *job;
    NbdCmdOp op;
    uint64_t offset, len;
    void *buf;
    uint32_t flags;           /* LIBNBD_CMD_FLAG_* */
    int64_t deadline;         /* monotonic µs; 0 until it first waits */
    int error;                /* as libnbd's completion reported it */
    NbdConn *conn;            /* where it was last issued */
};

struct NbdConn {
    NbdState *s;
    int index;
    pthread_t thread;
    bool thread_started;
    int efd;                  /* eventfd that wakes the poller */
    /* Issuers hold it for reading around each libnbd call on h; the
     * poller holds it for writing to close or replace h. */
    pthread_rwlock_t hlock;
    struct nbd_handle *h;     /* NULL while disconnected */
    atomic_bool up;           /* takes new commands; set under s->lock */
    pthread_mutex_t dlock;    /* the two lists below */
    NbdCmd inflight;          /* list head: issued, not yet called back */
    NbdCmd *done_head, *done_tail; /* called back, for the poller */
};

struct NbdState {
    char *uri;
    /* Options. */
    unsigned nconns;
    int64_t reconnect_delay_us;
    int64_t retry_timeout_us;
    int64_t connect_timeout_us;
    bool writable;
    /* What the server offered on the first connection. */
    int64_t size;
    bool can_flush, can_fua, can_trim, can_zero, can_fast_zero;
    bool can_multi_conn, has_status;
    uint32_t min_block, pref_block, max_io;
    char *tls;                /* "off"/"on": TLS negotiated */
    /* Dispatch. */
    pthread_mutex_t lock;     /* never held across a libnbd call */
    atomic_uint rr;           /* round robin over connections */
    int64_t down_since;       /* since when no connection is up; 0: one is */
    NbdCmd *pending_head, *pending_tail;
    atomic_bool stopping;
    NbdConn *conns;
};

/* Monotonic clock in microseconds. */
int64_t nbdc_now_us(void);
/* Connect one handle to s->uri within s->connect_timeout_us.  On failure
 * NULL, with *msg (malloc'ed) and *err saying why. */
struct nbd_handle *nbdc_conn_connect(NbdState *s, char **msg, int *err);
/* Start connection i's poller on h (already connected). */
int nbdc_conn_start(NbdState *s, unsigned i, struct nbd_handle *h);
/* Stop every poller, disconnect and free what is left. */
void nbdc_conn_stop_all(NbdState *s);
/* Send cmd on some connection, or queue it until one is up. */
void nbdc_cmd_dispatch(NbdState *s, NbdCmd *cmd);
/* A command is over (err: 0 or errno): account it in its job. */
void nbdc_cmd_finish(NbdCmd *cmd, int err);

#endif
