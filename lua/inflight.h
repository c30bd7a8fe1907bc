/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Keeping many requests in flight from one thread, and the two engines
 * built on it: the copy loop of convert (bh_copy_run) and the request loop
 * of bench (bh_bench_run).  Plain C over the public node calls: no Lua
 * here, so a C program could drive them too; copy.c and bench.c bind
 * them to Lua.
 *
 * Each request runs as the ordinary blocking call (bh_node_pread & co.)
 * on one of the threads of the BhInflight, as many as requests may be in
 * flight up to 64 (qemu's thread pool's size; more wait their turn); its result is queued, and the thread that submitted collects
 * results with bh_inflight_wait and does all the work after them, so
 * code that must run on one thread (Lua) runs there only.
 *
 * Why not bh_node_submit: a submitted request's callback runs before the
 * request lets go of its node, so a node closed right after the last
 * result may find its last reference still with a request; the node is
 * then closed later on the core's pool, and a process about to exit
 * loses the close (a qcow2 target without its metadata).  A blocking
 * call has returned, reference and all, when its result is queued.
 */
#ifndef BH_LUA_INFLIGHT_H
#define BH_LUA_INFLIGHT_H

#include <stdbool.h>
#include <stdint.h>

#include "blkhost/blkhost.h"

typedef struct BhInflight BhInflight;

/* At most depth requests will be in flight at once. */
BhInflight *bh_inflight_new(unsigned depth);
/* Waits for whatever is still in flight first. */
void bh_inflight_free(BhInflight *q);

/* Start op on bs (reads, writes, write zeroes, flushes) ([offset, offset+len), buf for reads and writes, flags
 * BH_IO_*); tag comes back with its result. */
void bh_inflight_submit(BhInflight *q, BhNode *bs, BhOp op, uint64_t offset,
                        uint64_t len, void *buf, uint32_t flags, void *tag);
/* Requests submitted and not yet collected. */
unsigned bh_inflight_count(const BhInflight *q);
/* Wait for one result (something must be in flight): its tag, its return
 * (0 or -errno) and, when it failed, its error (the caller's to free;
 * NULL if the driver said nothing). */
void *bh_inflight_wait(BhInflight *q, int *ret, BhError **err);

/* ---- the copy engine (copy.c) ---- */

typedef struct {
    BhNode *src, *dst;
    uint64_t offset, length;  /* the source's bytes to copy */
    uint64_t dst_offset;      /* where they land in dst */
    unsigned workers;         /* requests in flight (1 at least) */
    bool in_order;            /* writes one at a time, in offset order */
    uint64_t sparse;          /* zero blocks this long are not written
                               * (aligned in dst); 0: write everything */
    bool zero_init;           /* dst reads as zeros already */
    bool zeros_as_requests;   /* with sparse 0 too, areas reading as
                               * zeros are zero requests (or nothing
                               * with zero_init), not written zeros */
    bool skip_backing;        /* leave alone what src's backing holds */
    unsigned max_depth;       /* >0: copy only what a layer of src's
                               * chain above this depth holds (commit) */
    uint64_t chunk;           /* bytes per read (0: 2 MiB) */
    uint64_t align;           /* >0: chunks start and end on multiples
                               * of it in dst (or at the range's ends) */
    uint32_t write_flags;     /* BH_IO_* for the data writes */
    /* Called on the calling thread after each piece is done with how
     * many bytes of the source it covered; false stops the copy (its
     * error in *errp). */
    bool (*progress)(void *opaque, uint64_t bytes, BhError **errp);
    void *opaque;
} BhCopy;

/* Copy as c says; 0 or -errno with *errp set.  On failure nothing more
 * is started and what is in flight is waited for before returning. */
int bh_copy_run(const BhCopy *c, BhError **errp);

/* ---- the bench loop (bench.c) ---- */

typedef struct {
    BhNode *bs;
    bool write;
    uint64_t count;           /* requests */
    unsigned depth;           /* in flight at most (1 at least) */
    uint64_t offset;          /* of the first request */
    uint64_t bufsize;         /* bytes per request */
    uint64_t step;            /* between requests (0: bufsize) */
    uint64_t flush_interval;  /* writes: a flush every so many (0: none) */
    bool drain_on_flush;      /* let the queue empty before a flush */
    uint8_t pattern;          /* the bytes written */
} BhBench;

/* Run qemu-img bench's request loop; 0 or -errno with *errp set.
 * *seconds: how long the requests took. */
int bh_bench_run(const BhBench *b, double *seconds, BhError **errp);

#endif
