/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the core's files share and no plugin sees: the BhNode struct and a
 * few loader helpers.
 */
#ifndef BLKHOST_CORE_PRIV_H
#define BLKHOST_CORE_PRIV_H

#include "blkhost/blkhost-plugin.h"
#include "blkhost/glib.h"
#include "blkhost/loader.h"
#include "blkhost/loop.h"
#include "blkhost/map.h"
#include "blkhost/snapshot.h"
#include "blkhost/version.h"

typedef struct {
    char *role;
    BhNode *node;
} BhChild;

struct BhNode {
    gint refcnt;
    const BhPluginRecord *plugin;
    const BhDriver *drv;
    void *opaque;
    char *filename;
    uint32_t open_flags;      /* BH_OPEN_* as given to the driver */
    bool readonly;
    bool growable;            /* under a format: may be written past its end */
    bool serialize;           /* driver asked for BH_THREAD_SERIALIZE */
    bool opened;              /* drv->open succeeded: close is due */
    bool stands_for_child;    /* a filter listed in bh_open_nodes() in
                               * its child's place (node.c) */
    BhCacheMode cache;
    BhDiscardMode discard;
    BhDetectZeroes detect_zeroes;
    bool locking;
    uint32_t caps;            /* BH_CAP_* */
    uint32_t bl_min, bl_pref, bl_max;
    gint64 size;              /* cached virtual size (non-growable) */
    GMutex serial_lock;
    GPtrArray *children;      /* BhChild* */
    /* The format this file was probed as when none was named (raw):
     * writes into its first BH_PROBE_BYTES must keep it probing so, and
     * run one at a time under probe_lock (probe.c). */
    const BhPluginRecord *probe_guard;
    GMutex probe_lock;
    /* Drain (drain.c): requests admitted and not yet finished, how many
     * drained sections hold the node, which thread holds them, the async
     * requests that arrived meanwhile, and the parents (no reference:
     * a parent holds its children, not the other way). */
    gint in_flight;
    gint quiesce;
    GThread *drain_owner;
    GMutex drain_lock;
    GCond drain_cond;
    BhRequest *drain_queue, **drain_queue_tail;
    GSList *drain_sets;       /* GPtrArray* of nodes drained, per begin */
    GPtrArray *parents;       /* BhNode* */
};

/* What a driver's snapshot_list appends to (snapshot-info.h). */
struct BhSnapshotList {
    GPtrArray *items;          /* BhSnapshotInfo* */
};

/* ---- request.c ---- */
/* A request moving through io.c.  The synchronous API builds one on its
 * stack; bh_request_new() on the heap. */
typedef struct BhRequestWaiter {
    GMutex lock;
    GCond cond;
    gint done;                /* 1: completed, 2: on the waiting thread */
    GThread *thread;          /* the waiting thread */
} BhRequestWaiter;

struct BhRequest {
    BhNode *bs;
    BhOp op;
    uint32_t flags;           /* as the caller gave them */
    uint32_t drv_flags;       /* what the driver sees: declared ones only */
    uint64_t offset, len;
    const struct iovec *iov;
    int niov;
    struct iovec iov_one;     /* the iovec of a one-buffer request */
    struct iovec *iov_heap;   /* a copy of a longer caller's array */
    BhRequestDoneFn done;     /* the caller's callback (heap requests) */
    void *opaque;
    BhError *err;
    int ret;
    BhRequestWaiter *waiter;  /* a synchronous caller waiting on submit */
    bool then_flush;          /* FUA emulated: flush once the write is in */
    BhRequest *forward_to;    /* bh_request_forward: the request it serves */
    BhRequest *next;          /* in a drained node's queue */
};

/* A one-buffer request on the caller's stack (no callback). */
void bh_request_init(BhRequest *req, BhNode *bs, BhOp op, uint64_t offset,
                     uint64_t len, void *buf, uint32_t flags);
/* Hand req to the submit driver and wait for its completion; returns its
 * result with *errp set from its message. */
int bh_request_submit_wait(BhRequest *req, BhError **errp);
/* Run the request's steps (bh_io_run) on the core's I/O pool, then
 * finish it. */
void bh_request_run_on_pool(BhRequest *req);
/* The end of a heap request: the caller's callback, the node's in-flight
 * count, the memory. */
void bh_request_finish(BhRequest *req, int ret);

/* ---- io.c ---- */
/* Everything a request goes through, run on this thread: checks,
 * emulations, the driver (waited for).  The request was admitted. */
int bh_io_run(BhRequest *req, BhError **errp);
/* bh_node_submit's path for a submit driver: true when req went to the
 * driver (or was completed) without needing the pool. */
bool bh_io_submit_direct(BhRequest *req);

/* ---- drain.c ---- */
/* Admit a request to bs: counts it in flight, or (drained by another
 * thread) waits for the drain to end.  Never fails. */
void bh_drain_enter(BhNode *bs);
/* The async form: false when bs is drained; req is then queued and
 * submitted again at drain_end. */
bool bh_drain_try_enter(BhNode *bs, BhRequest *req);
/* A request admitted by bh_drain_enter finished. */
void bh_drain_leave(BhNode *bs);
/* Parent links, kept by node.c. */
void bh_drain_link(BhNode *parent, BhNode *child);
void bh_drain_unlink(BhNode *parent, BhNode *child);
void bh_drain_init(BhNode *bs);
void bh_drain_clear(BhNode *bs);

bool bh_running_uninstalled(void);
/* A new reference on bs, unless its last one is already gone (it is
 * being freed on another thread): false then. */
bool bh_node_try_ref(BhNode *bs);
char *bh_plugin_names(BhPluginKind kind);

/* ---- probe.c ---- */
/* How much of a file probing looks at: QEMU's 512, one sector. */
#define BH_PROBE_BYTES 512

/* The driver most confident that buf is its format, or NULL. */
const BhPluginRecord *bh_probe_buffer(const uint8_t *buf, size_t len,
                                      const char *filename);
/* The protocol driver whose uri_schemes claim filename's "SCHEME://"
 * prefix, or NULL (then the file driver opens it). */
const BhPluginRecord *bh_probe_protocol(const char *filename);
/* The format of the data at the start of file; raw when nobody claims it. */
const BhPluginRecord *bh_probe_node(BhNode *file, const char *filename,
                                    BhError **errp);
/* Guard file's head so it keeps probing as probed; warn if writable. */
void bh_probe_guard(BhNode *file, const BhPluginRecord *probed,
                    bool writable);
/* With file->probe_lock held: -EPERM unless writing len bytes of data
 * (NULL: zeros) at offset (< BH_PROBE_BYTES) leaves a head that probes
 * as before.  head gets that head, for the caller to write from. */
int bh_probe_guard_check(BhNode *file, const char *what, uint64_t offset,
                         uint64_t len, const void *data,
                         uint8_t head[BH_PROBE_BYTES], BhError **errp);

/* Flush every child (used when a driver has no flush callback). */
int bh_node_flush_children(BhNode *bs, BhError **errp);

#endif
