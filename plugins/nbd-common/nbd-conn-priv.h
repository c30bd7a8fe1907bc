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
/* Content chunks one sparse read reply may use. */
#define NBD_READ_CHUNKS 16
/* Descriptors one BLOCK_STATUS reply may carry. */
#define NBD_STATUS_EXTENTS 1024
/* Reads at least this long ask for block status to send holes. */
#define NBD_SPARSE_READ_MIN (64u * 1024)

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
    /* payload / read data, grown on demand, never shrunk */
    uint8_t *buf;
    size_t cap;
    /* reply scratch */
    NbdReplyHead heads[NBD_READ_CHUNKS + 1];
    struct iovec iov[2 * NBD_READ_CHUNKS + 2];
    char msg[160];
} NbdSlot;

struct NbdConn {
    int fd;
    NbdTlsConn *tls;           /* NULL: plain socket I/O */
    const NbdSession *s;
    NbdStats *stats;

    NbdPool *pool;

    GMutex lock;               /* free list, inflight, waiting */
    GCond cond;
    NbdSlot *free;
    unsigned inflight;
    bool waiting;              /* the reader sleeps on cond */

    /* read by the reader, not yet queued (reader only) */
    NbdSlot *batch_first, *batch_last;
    unsigned batch_n;

    GMutex send_lock;
    bool dead;                 /* a send failed: drop further replies */

    NbdSlot slots[NBD_CONN_SLOTS];

    /* reader buffer */
    uint8_t *rbuf;
    size_t rpos, rlen;
};

/* nbd-cmd.c: run one request and send its reply (worker thread). */
void nbd_slot_run(NbdSlot *slot);
/* nbd-conn.c: give the slot back to its connection. */
void nbd_slot_done(NbdSlot *slot);
/* Make buf hold at least len bytes; false on allocation failure. */
bool nbd_slot_reserve(NbdSlot *slot, size_t len);

#endif
