/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhRequest: one I/O request moving down the node graph (core v2).
 *
 * Two sides use this header:
 *
 *  - a caller (a frontend, a format driver reading its child, a filter)
 *    builds a request with bh_request_new() and hands it to
 *    bh_node_submit(); its callback runs exactly once, possibly before
 *    bh_node_submit() returns, possibly on another thread.  The request
 *    is freed after the callback returns.  bh_node_pread() & co. in
 *    node.h are the same path, waited for.
 *
 *  - a driver that sets BhDriver.submit receives requests that already
 *    passed the core's checks (range, read-only, drain) and emulations
 *    (FUA by flush, zeroes by writes, detect-zeroes, discard modes, the
 *    probe guard), and finishes each with bh_request_complete(), exactly
 *    once, from any thread.  A driver without submit keeps the synchronous
 *    callbacks (pread, pwrite, ...), which the core calls on the caller's
 *    thread or on its own pool; that stays the easy way to write a driver.
 *
 * The request is opaque: fields are read with the accessors below, so the
 * struct can grow without breaking plugins.
 */
#ifndef BLKHOST_REQUEST_H
#define BLKHOST_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <blkhost/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BhNode BhNode;
typedef struct BhRequest BhRequest;

typedef enum {
    BH_OP_READ = 1,
    BH_OP_WRITE = 2,
    BH_OP_FLUSH = 3,
    BH_OP_DISCARD = 4,
    BH_OP_WRITE_ZEROES = 5,
} BhOp;

/* Called once when the request is done: ret is 0 or -errno; err (may be
 * NULL) the message, borrowed for the call. */
typedef void (*BhRequestDoneFn)(void *opaque, int ret, const BhError *err);

/* ---- caller side ---- */

/* A request of op on bs.  iov/niov describe the buffer of a read or write
 * (copied: the array, not the bytes, may go away after the call; the bytes
 * must stay until the callback); NULL/0 for the other ops.  len is the
 * total of the iovec lengths for reads and writes.  flags: BH_IO_*. */
BhRequest *bh_request_new(BhNode *bs, BhOp op, uint64_t offset, uint64_t len,
                          const struct iovec *iov, int niov, uint32_t flags,
                          BhRequestDoneFn done, void *opaque);
/* Start it.  Checks that fail complete the request at once with the
 * error, so the callback is the one place results arrive. */
void bh_node_submit(BhRequest *req);

/* ---- driver side (inside submit) ---- */

BhNode *bh_request_node(const BhRequest *req);
BhOp bh_request_op(const BhRequest *req);
uint64_t bh_request_offset(const BhRequest *req);
uint64_t bh_request_length(const BhRequest *req);
uint32_t bh_request_flags(const BhRequest *req); /* only declared flags */
const struct iovec *bh_request_iov(const BhRequest *req, int *niov);

/* Pass req on to child, unchanged but for its offset (a format or filter
 * that maps one request to one request below, as raw's window does): the
 * child's request carries req's op, length, buffer and declared flags,
 * and when it is done req completes with its result and message.  The
 * child's request is gone, its hold on child released, before req
 * completes, so a caller woken by req may close the node at once and its
 * file (and lock) go with it. */
void bh_request_forward(BhRequest *req, BhNode *child, uint64_t offset);

/* Finish the request: ret is 0 or -errno.  Exactly once, any thread.
 * Attach a message first with bh_request_error() if there is one to say. */
void bh_request_complete(BhRequest *req, int ret);
/* Record why the request failed (the message reaches the caller's
 * callback); returns -errnum for "return bh_request_error(...)" styles. */
int bh_request_error(BhRequest *req, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#endif
