/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhNode: one open block device.
 *
 * A node is a driver instance with its children: a format (qcow2, raw) sits
 * over a "file" child opened with a protocol driver (file, null, memory),
 * and may have a "backing" child.  Everybody — Lua, frontends, drivers
 * reading their own children — does I/O through the bh_node_* calls below,
 * which check ranges and permissions once and emulate what a driver lacks
 * (zeroes by writing zeros, FUA by flush, detect-zeroes, discard=ignore,
 * cache=writethrough/unsafe).  Nodes are reference counted and thread-safe
 * to call; a driver that declared BH_THREAD_SERIALIZE is serialized here.
 * Each call is one request (request.h) run on the caller's thread: the
 * same path as bh_node_submit(), waited for.  Nodes count their requests
 * in flight, so a node can be drained (bh_node_drain_begin).
 *
 * I/O calls return 0 or -errno; errp may be NULL (the NBD hot path passes
 * NULL so that nothing is allocated).  Errors follow NBD's choices: a read,
 * discard or status past the end is EINVAL, a write past the end ENOSPC, a
 * write to a read-only node EPERM.
 */
#ifndef BLKHOST_NODE_H
#define BLKHOST_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <blkhost/error.h>

#include <blkhost/check.h>

#include <blkhost/opts.h>
#include <blkhost/info.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BhNode BhNode;

/* Request flags for pwrite / write_zeroes. */
#define BH_IO_FUA        (1u << 0) /* durable before returning */
#define BH_IO_MAY_UNMAP  (1u << 1) /* write_zeroes may deallocate */
#define BH_IO_FAST_ZERO  (1u << 2) /* write_zeroes: fail ENOTSUP if slow */
#define BH_IO_KNOWN_FLAGS 0x7u  /* the loader refuses drivers declaring others */

/* block_status results (same bits as NBD base:allocation). */
#define BH_BLOCK_HOLE    (1u << 0) /* not allocated in storage */
#define BH_BLOCK_ZERO    (1u << 1) /* reads as zeros */

/* Cache modes, with qemu's meanings. */
typedef enum {
    BH_CACHE_WRITEBACK = 0,  /* page cache, flush honoured (default) */
    BH_CACHE_NONE,           /* O_DIRECT, flush honoured */
    BH_CACHE_WRITETHROUGH,   /* page cache, every write durable */
    BH_CACHE_DIRECTSYNC,     /* O_DIRECT, every write durable */
    BH_CACHE_UNSAFE,         /* page cache, flush ignored */
} BhCacheMode;

typedef enum { BH_DISCARD_IGNORE = 0, BH_DISCARD_UNMAP } BhDiscardMode;
typedef enum {
    BH_DETECT_ZEROES_OFF = 0,
    BH_DETECT_ZEROES_ON,
    BH_DETECT_ZEROES_UNMAP,
} BhDetectZeroes;

/*
 * Open a node.  Options the core takes (all optional):
 *   format         driver name; probed from the first bytes when absent
 *                  (raw is the fallback).  A protocol driver name (file,
 *                  null, memory) opens that driver directly.
 *   readonly       bool
 *   cache          writeback|none|writethrough|directsync|unsafe
 *   discard        ignore|unmap      (default ignore)
 *   detect-zeroes  off|on|unmap      (unmap needs discard=unmap)
 *   locking        on|off            (QEMU-compatible OFD locks; default on)
 *   file.KEY       passed to the protocol child
 * Every other key goes to the format driver; a key nobody takes is refused.
 * opts may be NULL; it is not modified.
 */
BhNode *bh_node_open(const char *filename, const BhOpts *opts, BhError **errp);

/* Open driver "format" over an existing node, which becomes its "file"
 * child (a reference is taken).  Used for windows and partitions:
 * bh_node_open_over(disk, "raw", {offset=, size=, readonly=}). */
BhNode *bh_node_open_over(BhNode *child, const char *format,
                          const BhOpts *opts, BhError **errp);

/* Open the filter driver name (a driver with BH_DRIVER_FILTER: log,
 * delay, cow, ...) over child, any node, which becomes its "file" child
 * (a reference is taken).  The modes default to child's; a writable
 * filter over a read-only child is allowed (cow writes elsewhere; any
 * other filter's writes are refused by the child).  Where child stood
 * in the list of open top-level nodes (savevm), the filter takes its
 * place while it lives. */
BhNode *bh_node_open_filter(BhNode *child, const char *name,
                            const BhOpts *opts, BhError **errp);

/* Create an image.  For a format driver the core creates (truncates) the
 * file with the file driver and passes it to the driver's create. */
bool bh_create(const char *filename, const char *format, const BhOpts *opts,
               BhError **errp);
/* The first half of bh_create alone: every option checked (the driver's
 * create_check, then unknown keys), nothing touched.  Lets a tool say what
 * it is about to create only once the options are known to be good. */
bool bh_create_check(const char *filename, const char *format,
                     const BhOpts *opts, BhError **errp);

BhNode *bh_node_ref(BhNode *bs);
void bh_node_unref(BhNode *bs);

int bh_node_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                  uint32_t flags, BhError **errp);
int bh_node_pwrite(BhNode *bs, const void *buf, uint64_t offset, size_t len,
                   uint32_t flags, BhError **errp);
int bh_node_flush(BhNode *bs, BhError **errp);
int bh_node_discard(BhNode *bs, uint64_t offset, uint64_t len, BhError **errp);
int bh_node_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                         uint32_t flags, BhError **errp);
/* Status of [offset, offset+*pnum): *pnum gets how many bytes from offset
 * share *status (at least 1, at most len). */
int bh_node_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                         uint64_t *pnum, uint32_t *status, BhError **errp);
/* Block-map flags: what a driver's block_map callback answers, and what
 * bh_node_block_map (map.h) reports. */
#define BH_MAP_DATA    (1u << 0) /* read from stored data */
#define BH_MAP_ZERO    (1u << 1) /* reads as zeros */
#define BH_MAP_OFFSET  (1u << 2) /* the bytes sit at map in file */
#define BH_MAP_RAW     (1u << 3) /* driver only: ask file at map instead */
#define BH_MAP_RECURSE (1u << 4) /* driver only: data that may be a hole in
                                  * file: ask file whether it reads as zeros */
/* (bh_node_block_map and BhMapEntry, the library side, are in map.h.) */
/* Check bs's own metadata (not its backing chain) as `qemu-img check`
 * does and repair what fix (BH_CHECK_FIX_*) asks; res is initialised
 * here and cleared by the caller.  -ENOTSUP when bs's format has no
 * check; other negative returns: the check could not run. */
int bh_node_check(BhNode *bs, uint32_t fix, BhCheckResult *res,
                  BhError **errp);
/* Change options of an existing image (qemu-img amend -o): the driver's
 * amend callback, with the node drained.  Keys the driver does not list
 * in its amend options are refused before anything is touched, as
 * qemu-img words it ("Invalid parameter 'cluster_size'", and for a
 * creation option "This option is only supported for image creation"
 * on a second line).  progress (may be NULL) is called on this thread
 * with the work done and the total.  -ENOTSUP when the format cannot
 * amend. */
#define BH_AMEND_FORCE (1u << 0)  /* qemu-img amend --force */
typedef void (*BhAmendProgress)(void *opaque, uint64_t done, uint64_t total);
int bh_node_amend(BhNode *bs, const BhOpts *opts, uint32_t flags,
                  BhAmendProgress progress, void *opaque, BhError **errp);
/* Change the size (file and formats that can).  Not range checked.
 * Runs drained (below). */
int bh_node_truncate(BhNode *bs, uint64_t size, BhError **errp);

/*
 * Drain: quiesce bs and every node above it (its parents, theirs, ...)
 * until drain_end.  drain_begin closes the nodes parents first and
 * returns once none of them has a request in flight, callbacks included;
 * until drain_end, other threads' requests on them wait (synchronous
 * calls block, bh_node_submit() requests are queued and sent at
 * drain_end).  The calling thread's own requests pass, so the drained
 * section does its work (snapshot, vmstate, truncate do so) with the
 * ordinary calls.  Sections nest on one thread; another thread's
 * drain_begin of a drained node waits for its end.  Every begin needs
 * one end, on the same thread.  Returns 0.
 */
int bh_node_drain_begin(BhNode *bs);
void bh_node_drain_end(BhNode *bs);

int64_t bh_node_size(BhNode *bs);
bool bh_node_is_readonly(const BhNode *bs);
const char *bh_node_filename(const BhNode *bs);
const char *bh_node_driver_name(const BhNode *bs);
/* Bytes used on the host by the bottom-most file, -1 if unknown. */
int64_t bh_node_allocated_size(BhNode *bs);
BhCacheMode bh_node_cache_mode(const BhNode *bs);
BhDiscardMode bh_node_discard_mode(const BhNode *bs);
BhDetectZeroes bh_node_detect_zeroes(const BhNode *bs);

/* Child by role ("file", "backing"); borrowed, NULL if none. */
BhNode *bh_node_child(const BhNode *bs, const char *role);

/* Whether bs's driver completes requests itself, asynchronously (it has
 * submit): a frontend then gains by keeping many requests in flight with
 * bh_node_submit() instead of blocking a thread per request.  For other
 * nodes bh_node_submit() runs the synchronous callbacks on the core's
 * pool, a thread hop a frontend with its own workers can save. */
bool bh_node_can_submit(const BhNode *bs);

/* Capabilities a frontend advertises. */
bool bh_node_can_fua(const BhNode *bs);      /* native or emulated: true */
bool bh_node_can_zero(const BhNode *bs);     /* driver zeroes natively */
bool bh_node_can_discard(const BhNode *bs);  /* discard=unmap and driver can */
bool bh_node_can_block_status(const BhNode *bs);
bool bh_node_is_parallel(const BhNode *bs);  /* whole chain thread-safe */

/* min: smallest useful request (1, 512 with O_DIRECT); pref: preferred
 * (e.g. cluster size); max: largest single request the node wants. */
void bh_node_block_limits(const BhNode *bs, uint32_t *min, uint32_t *pref,
                          uint32_t *max);

/* Facts for `blkhost info`: format, virtual-size, disk-size, filename,
 * read-only, plus the driver's own (cluster-size, ...). */
void bh_node_info(BhNode *bs, BhInfo *info);

#ifdef __cplusplus
}
#endif

#endif
