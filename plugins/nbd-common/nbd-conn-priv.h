/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internals shared by the connection reader (nbd-conn.c) and the command
 * execution and reply code (nbd-cmd.c).  Not for the frontends.
 */
#ifndef NBD_CONN_PRIV_H
#define NBD_CONN_PRIV_H

#include <sys/uio.h>

#include "nbd-common.h"

/* Requests one connection may have in flight; the reader waits for a free
 * slot when a client queues more (TCP then holds the rest). */
#define NBD_CONN_SLOTS 32
/* Slot buffers up to this size are kept between requests. */
#define NBD_SLOT_KEEP (4u * 1024 * 1024)
/* Bytes reserved in front of every slot buffer (slot->buf), so that a
 * reply's header can be written right before the data read into the
 * buffer and header and payload leave as one contiguous piece: one iovec
 * for sendmsg(), one TLS record without a copy.  A page, so that buf
 * itself stays page aligned for O_DIRECT. */
#define NBD_SLOT_HEADROOM 4096
/* Content chunks one sparse read reply may use. */
#define NBD_READ_CHUNKS 16
/* Descriptors one BLOCK_STATUS reply may carry. */
#define NBD_STATUS_EXTENTS 1024
/* Reads at least this long ask for block status to send holes. */
#define NBD_SPARSE_READ_MIN (64u * 1024)
/* Read and write bytes one connection may have in flight: past this the
 * reader stops reading that client's requests until replies drain, so a
 * client that does not read its replies pins a bounded amount of memory
 * and never more than its own slots. */
#define NBD_CONN_MAX_BYTES (64u * 1024 * 1024)

typedef struct NbdConn NbdConn;

/* A chunk or simple-reply header with the fixed fields that follow it. */
typedef struct __attribute__((packed)) NbdReplyHead {
    union {
        NbdSimpleReply simple;
        NbdChunkHeader chunk;
    } h;
    union {
        struct __attribute__((packed)) { uint64_t offset; uint32_t size; } c;
        struct __attribute__((packed)) { uint32_t error; uint16_t len; } e;
        uint32_t context_id;
    } u;
} NbdReplyHead;

typedef struct NbdSlot {
    struct NbdSlot *next;      /* free list or pool queue */
    NbdConn *conn;
    /* the request, host order */
    uint16_t flags;
    uint16_t type;
    uint64_t cookie;
    uint64_t offset;
    uint32_t len;
    /* error decided by the reader (bad flags, range, size), or 0 */
    int err;
    const char *errmsg;
    /* payload / read data, grown on demand, never shrunk; the
     * NBD_SLOT_HEADROOM bytes before buf are ours too (reply headers) */
    uint8_t *buf;
    size_t cap;
    /* bytes this request counts against NBD_CONN_MAX_BYTES */
    uint32_t cost;
    /* reply scratch; iov[iov_first, niov) is what is left to send */
    NbdReplyHead heads[NBD_READ_CHUNKS + 1];
    struct iovec iov[2 * NBD_READ_CHUNKS + 2];
    int iov_first, niov;
    char msg[160];
} NbdSlot;

struct NbdConn {
    int fd;
    NbdTlsConn *tls;           /* NULL: plain socket I/O */
    const NbdSession *s;
    NbdStats *stats;

    NbdPool *pool;

    GMutex lock;               /* free list, inflight, waiting, out */
    GCond cond;
    NbdSlot *free;
    unsigned inflight;
    size_t inflight_bytes;     /* sum of the cost of slots in flight */
    bool waiting;              /* the reader sleeps on cond */

    /* The reply path (nbd-reply.c): replies the connection's writer
     * thread still has to send, in order, and whether someone (the
     * writer, or a worker trying a non-blocking send) owns the socket's
     * write side right now. */
    NbdSlot *out_head, *out_tail;
    bool sending;
    bool writer_quit;
    GCond out_cond;
    GThread *writer;

    /* read by the reader, not yet queued (reader only) */
    NbdSlot *batch_first, *batch_last;
    unsigned batch_n;

    bool dead;                 /* a send failed: drop further replies */
    int send_err;              /* why, as -errno (-ETIMEDOUT: stuck) */

    NbdSlot slots[NBD_CONN_SLOTS];

    /* reader buffer */
    uint8_t *rbuf;
    size_t rpos, rlen;
};

/* nbd-cmd.c: run one request and hand its reply to nbd_reply_send()
 * (worker thread). */
void nbd_slot_run(NbdSlot *slot);
/* nbd-conn.c: give the slot back to its connection. */
void nbd_slot_done(NbdSlot *slot);
/* The same in two steps, for a caller that holds c->lock anyway: drop an
 * oversized buffer (without the lock), then return the slot (under it;
 * once the lock is released the connection may be gone). */
void nbd_slot_trim(NbdSlot *slot);
void nbd_slot_put_locked(NbdConn *c, NbdSlot *slot);

/* nbd-reply.c: the connection's reply path. */
bool nbd_reply_start(NbdConn *c, BhError **errp);
/* Send slot->iov[0, niov) without ever blocking the calling worker; the
 * slot is given back (nbd_slot_done) once sent or dropped. */
void nbd_reply_send(NbdSlot *slot, int niov);
/* After the last slot came back: end the writer thread. */
void nbd_reply_stop(NbdConn *c);
/* Make buf hold at least len bytes; false on allocation failure. */
bool nbd_slot_reserve(NbdSlot *slot, size_t len);

#endif
