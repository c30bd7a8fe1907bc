/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhDriver: the vtable a driver plugin fills.
 *
 * A driver is either a protocol (BH_DRIVER_PROTOCOL: it opens the filename
 * itself — file, null, memory, an NBD client) or a format (raw, qcow2),
 * which never touches a file descriptor and does all its I/O on its "file"
 * child with bh_node_pread() & co.  The core opens that child before
 * calling open(), and the driver gets it with bh_node_child(bs, "file").
 *
 * What the core does so the driver does not have to:
 *  - range checks (offset + len within bh_node_size(), no overflow) and the
 *    read-only check, before any callback runs; growable children (the file
 *    under a format) accept writes past their end;
 *  - NULL callbacks: write_zeroes -> writes of zeros (ENOTSUP for
 *    BH_IO_FAST_ZERO); flush -> success; discard -> success (advisory);
 *    block_status -> all data; FUA without BH_CAP_FUA and BH_IO_FUA in
 *    request_flags -> write + flush; other undeclared request flags are
 *    dropped (BH_IO_FAST_ZERO: ENOTSUP);
 *  - cache, discard and detect-zeroes modes, image locking (the file
 *    driver calls bh_lock_apply()), serialization of BH_THREAD_SERIALIZE.
 * A write_zeroes callback may return -ENOTSUP to fall back to writing zeros.
 *
 * Required: open, get_length and pread (or submit); the loader refuses a
 * driver without them, or with a flag outside BH_DRIVER_KNOWN_FLAGS.
 * Without pwrite (or submit), the driver's nodes open read-only only.
 *
 * Versioning: struct_size first; new callbacks only at the end.  The core
 * treats callbacks beyond the plugin's struct_size as NULL.
 */
#ifndef BLKHOST_DRIVER_H
#define BLKHOST_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <blkhost/check.h>
#include <blkhost/error.h>
#include <blkhost/info.h>
#include <blkhost/node.h>
#include <blkhost/opts.h>
#include <blkhost/plugin.h>
#include <blkhost/request.h>
#include <blkhost/snapshot-info.h>

#ifdef __cplusplus
extern "C" {
#endif

/* BhDriver.flags */
#define BH_DRIVER_PROTOCOL  (1u << 0) /* opens filename itself, no child */
#define BH_DRIVER_NO_PROBE  (1u << 1) /* only opened when named */
/* A format that keeps no metadata in its file (raw): the image's bytes
 * are the file's.  A read-only user of it lets others write, as QEMU's
 * raw readers do; a guess of it by probing guards the file's first
 * bytes against becoming another format's header. */
#define BH_DRIVER_DATA_ONLY (1u << 2)
/* A filter (drivers/filters): a driver over any node, its "file" child,
 * whose bytes it shows unchanged.  bh_node_open_filter() takes only
 * these; snapshot and vmstate calls its driver has no callback for go to
 * the child (snapshot.c), so a filter stacks under snapshots. */
#define BH_DRIVER_FILTER    (1u << 3)
#define BH_DRIVER_KNOWN_FLAGS 0xfu   /* the loader refuses other bits */

/* open() flags */
#define BH_OPEN_RDWR      (1u << 0)
#define BH_OPEN_DIRECT    (1u << 1) /* O_DIRECT (cache=none/directsync) */
#define BH_OPEN_NO_LOCK   (1u << 2) /* locking=off */
#define BH_OPEN_GROWABLE  (1u << 3) /* child of a format: may grow */
#define BH_OPEN_SHARE_WRITES (1u << 4) /* read-only under a data-only
                                        * format: let others write and
                                        * resize (lock nothing unshared) */

/* Capabilities a driver sets with bh_node_set_caps() in open(). */
#define BH_CAP_FUA        (1u << 0) /* honours BH_IO_FUA natively */
#define BH_CAP_DISCARD    (1u << 1) /* discard really frees space */
#define BH_CAP_ZERO       (1u << 2) /* write_zeroes is fast (no data I/O) */

/* One creation option, as `qemu-img create -o help` lists them.  Arrays of
 * it are versioned by BhDriver.create_option_size (the element size the
 * plugin was built with, filled by BH_PLUGIN_REGISTER), so fields can be
 * added at the end as for the other structs. */
typedef struct BhCreateOption {
    const char *name;   /* "cluster_size" */
    const char *type;   /* "str", "size", "num" or "bool (on/off)" */
    const char *help;   /* one line */
} BhCreateOption;

typedef struct BhDriver {
    uint32_t struct_size; /* sizeof(BhDriver) at build time */
    uint32_t flags;       /* BH_DRIVER_* */

    /* Formats: how sure (0..100) that buf (the first len bytes of the
     * file, at most 512 as in QEMU; fewer for a shorter file) is this
     * format.  raw answers 1. */
    int (*probe)(const uint8_t *buf, size_t len, const char *filename);

    /* Set up bs: parse opts with bh_opts_get_*() (unused keys are refused
     * by the core afterwards), store state with bh_node_set_opaque(), set
     * caps and limits.  Returns 0 or -errno with *errp set. */
    int (*open)(BhNode *bs, const char *filename, BhOpts *opts,
                uint32_t open_flags, BhError **errp);
    void (*close)(BhNode *bs);
    int64_t (*get_length)(BhNode *bs);

    int (*pread)(BhNode *bs, void *buf, uint64_t offset, size_t len,
                 uint32_t flags, BhError **errp);
    int (*pwrite)(BhNode *bs, const void *buf, uint64_t offset, size_t len,
                  uint32_t flags, BhError **errp);
    int (*flush)(BhNode *bs, BhError **errp);
    int (*discard)(BhNode *bs, uint64_t offset, uint64_t len, BhError **errp);
    int (*write_zeroes)(BhNode *bs, uint64_t offset, uint64_t len,
                        uint32_t flags, BhError **errp);
    int (*block_status)(BhNode *bs, uint64_t offset, uint64_t len,
                        uint64_t *pnum, uint32_t *status, BhError **errp);
    int (*truncate)(BhNode *bs, uint64_t size, BhError **errp);

    /* Optional extras for `blkhost info`. */
    void (*info)(BhNode *bs, BhInfo *info);
    int64_t (*get_allocated_size)(BhNode *bs);

    /* Image creation.  Protocols get file == NULL and create filename;
     * formats get their freshly created, empty, writable file node. */
    int (*create)(const char *filename, BhNode *file, BhOpts *opts,
                  BhError **errp);

    /* Internal snapshots (snapshot.h).  list appends BhSnapshotInfo* to
     * out; create fills info->id (max numeric id + 1) when it is NULL;
     * apply and delete find the snapshot by id, then by name. */
    int (*snapshot_list)(BhNode *bs, BhSnapshotList *out, BhError **errp);
    int (*snapshot_create)(BhNode *bs, BhSnapshotInfo *info, BhError **errp);
    int (*snapshot_apply)(BhNode *bs, const char *id_or_name, BhError **errp);
    int (*snapshot_delete)(BhNode *bs, const char *id_or_name,
                           BhError **errp);
    /* The vmstate area: bytes past the virtual disk, read and written by
     * position (0 = its first byte); a snapshot keeps what was there. */
    int (*save_vmstate)(BhNode *bs, const void *buf, uint64_t pos,
                        size_t len, BhError **errp);
    int (*load_vmstate)(BhNode *bs, void *buf, uint64_t pos, size_t len,
                        BhError **errp);

    /* Creation, first step: check every creation option (values, size,
     * backing file) without touching filename.  The core calls it before
     * it creates or empties any file, then refuses the keys it did not
     * take, so a typo never costs an existing image.  create then gets the
     * same options.  Optional: without it the checks happen in create. */
    int (*create_check)(const char *filename, BhOpts *opts, BhError **errp);
    /* The creation options, for `blkhost create -o help`: an array ended
     * by an entry whose name is NULL.  Optional. */
    const BhCreateOption *create_options;

    /* Where [offset, offset+*pnum) of this layer alone lives, for
     * bh_node_block_map() (`blkhost map`).  Unlike block_status it never
     * looks into a backing file: an area it does not hold gets neither
     * BH_MAP_DATA nor BH_MAP_ZERO and the core asks the backing child.
     * With BH_MAP_OFFSET, *map is the offset in *file (a borrowed child)
     * holding the bytes; with BH_MAP_RAW too the core asks *file at *map
     * instead (a format that passes bytes through, as raw); with
     * BH_MAP_RECURSE on data with an offset, the core asks *file whether
     * those bytes are a hole and then reports them as zeros too (QEMU
     * does so for images that look preallocated).  Optional:
     * without it the core derives the answer from block_status. */
    int (*block_map)(BhNode *bs, uint64_t offset, uint64_t len,
                     uint64_t *pnum, uint32_t *flags, uint64_t *map,
                     BhNode **file, BhError **errp);

    /* Consistency check (`blkhost check`): count into res what is wrong
     * with the image's metadata and, as fix (BH_CHECK_FIX_*) asks,
     * repair it; res comes zeroed with messages set.  A negative return
     * (-errno, *errp set) means the check could not run.  Optional:
     * without it bh_node_check() answers -ENOTSUP. */
    int (*check)(BhNode *bs, uint32_t fix, BhCheckResult *res,
                 BhError **errp);

    /* Asynchronous I/O (request.h): when set, the core hands every read,
     * write, flush, discard and write-zeroes to submit instead of the
     * synchronous callbacks (which may still be set, for tools that call
     * them directly).  The driver completes each request exactly once
     * with bh_request_complete(), from any thread. */
    void (*submit)(BhNode *bs, BhRequest *req);
    /* The BH_IO_* request flags this driver handles itself.  The core
     * never passes others: it emulates FUA by a flush, and drops
     * BH_IO_MAY_UNMAP (and fails BH_IO_FAST_ZERO with ENOTSUP) for a
     * driver that does not declare them. */
    uint32_t request_flags;
    /* sizeof(BhCreateOption) at build time: the stride of create_options.
     * Filled by BH_PLUGIN_REGISTER. */
    uint32_t create_option_size;

    /* Protocols only: the URI schemes this driver opens, ended by NULL
     * ({"nbd", "nbd+unix", NULL}).  A filename "SCHEME://..." opened
     * without a format gets this driver where the file driver would go,
     * and the format is probed over it as over a file.  An entry ending
     * in ':' ("rbd:") claims filenames starting with it, with no "//"
     * (QEMU's rbd:pool/image).  Optional. */
    const char *const *uri_schemes;

    /* Change options of an existing image (`blkhost amend`, as
     * `qemu-img amend -o`).  opts holds only keys amend_options lists:
     * the core refuses the others first.  The driver checks every value
     * and combination before it changes anything, so that a refused
     * amend leaves the image as it was, and makes each step crash safe.
     * flags: BH_AMEND_*.  progress (may be NULL) gets the work done and
     * the total as it goes.  Runs with the node drained.  Optional:
     * without it bh_node_amend() answers -ENOTSUP. */
    int (*amend)(BhNode *bs, BhOpts *opts, uint32_t flags,
                 BhAmendProgress progress, void *opaque, BhError **errp);
    /* The options amend takes, for `blkhost amend -o help` and the key
     * check: as create_options (same element type and stride).  An entry
     * whose help is NULL is not taken nor listed: it names a creation
     * option beyond create_options (qemu-img's encryption, say), which
     * is then refused with the "only supported for image creation" hint
     * like the create_options amend does not list. */
    const BhCreateOption *amend_options;

    /* New callbacks go here, at the end. */
} BhDriver;

/* ---- what a driver may call on its own node ---- */
void bh_node_set_opaque(BhNode *bs, void *opaque);
void *bh_node_get_opaque(const BhNode *bs);
void bh_node_set_caps(BhNode *bs, uint32_t caps);
void bh_node_set_block_limits(BhNode *bs, uint32_t min, uint32_t pref,
                              uint32_t max);
/* For a node that passes its requests to child (raw windows, filters):
 * FUA, plus discard and zero where child offers them, and child's block
 * limits. */
void bh_node_inherit_from(BhNode *bs, BhNode *child);
/* Tell the core the virtual size changed (after a resize). */
void bh_node_refresh_size(BhNode *bs);

/* Open filename as a child of bs under role ("backing", ...), inheriting
 * bs's cache mode and locking, read-only unless opts says readonly=off.
 * The child is owned by bs and returned borrowed. */
BhNode *bh_node_open_child(BhNode *bs, const char *role, const char *filename,
                           const BhOpts *opts, BhError **errp);
/* Detach and drop a child (e.g. before replacing it). */
void bh_node_drop_child(BhNode *bs, const char *role);

/* ---- QEMU-compatible image locking, for protocol drivers with an fd ---- */
/* Permission bits, as QEMU numbers them (lock bytes 100+i and 200+i). */
#define BH_PERM_CONSISTENT_READ (1u << 0)
#define BH_PERM_WRITE           (1u << 1)
#define BH_PERM_WRITE_UNCHANGED (1u << 2)
#define BH_PERM_RESIZE          (1u << 3)
#define BH_PERM_ALL             0xfu

/* Check that nobody else's locks conflict with holding perms while sharing
 * shared, then take the locks (OFD, so per open file description).  On
 * conflict: -EAGAIN and a message naming the file, the permission and,
 * where /proc tells, the process holding it. */
int bh_lock_apply(int fd, const char *filename, uint32_t perms,
                  uint32_t shared, BhError **errp);

#ifdef __cplusplus
}
#endif

#endif
