/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The rbd driver's shared pieces: the state of one open RBD image and the
 * helpers its files share.  rbd-conn.c turns a filename and options into
 * a connected cluster handle and an open image (with its errors and the
 * exclusive-lock check), rbd-snap.c holds the snapshot callbacks, rbd.c
 * the driver table and the I/O.
 */
#ifndef BLKHOST_RBD_H
#define BLKHOST_RBD_H

#include <stdbool.h>
#include <stdint.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include <blkhost/blkhost-plugin.h>

/* Where an image is and how to reach its cluster: from the filename
 * (rbd:pool[/namespace]/image[@snap][:key=value...]) and the options. */
typedef struct RbdSpec {
    char *pool, *nspace, *image, *snap;
    char *conf, *user, *cluster;
    char *key, *keyring;
    /* Other key=value pairs of the filename, for rados_conf_set, as QEMU
     * passes them (mon_host=..., client_mount_timeout=...). */
    char **extra_keys, **extra_values;
    int nextra;
    double timeout;           /* seconds; connect and monitor operations */
} RbdSpec;

typedef struct RbdState {
    RbdSpec spec;
    char *label;              /* "pool/image" or "pool/ns/image@snap" */
    rados_t cluster;
    rados_ioctx_t io;
    rbd_image_t image;
    bool writable;
    bool nocache;             /* cache=none/directsync: librbd's off too */
    bool locked;              /* we hold the exclusive lock */
    uint64_t features;
    uint64_t obj_size;
} RbdState;

/* Parse filename (may be NULL or empty when the options name the image)
 * and the options into spec.  Options win over the filename. */
int rbd_spec_parse(RbdSpec *spec, const char *filename, BhOpts *opts,
                   BhError **errp);
void rbd_spec_clear(RbdSpec *spec);
/* "pool/image", "pool/ns/image", with "@snap" when snap. */
char *rbd_spec_label(const RbdSpec *spec, bool snap);

/* Connect to the spec's cluster and open its pool (s->cluster, s->io).
 * Errors name the cluster or pool and the cause. */
int rbd_connect(RbdState *s, BhError **errp);
void rbd_disconnect(RbdState *s);
/* Open s->spec's image (read-only at a snapshot or when !s->writable);
 * writable: refuse an image another live client holds, then take its
 * exclusive lock (unless nolock). */
int rbd_open_image(RbdState *s, bool nolock, BhError **errp);

/* A librbd or librados error (negative errno) as what it means for the
 * image: "no such image", "permission denied" ... */
const char *rbd_cause(int r);

/* Snapshots (rbd-snap.c). */
int rbd_snapshot_list(BhNode *bs, BhSnapshotList *out, BhError **errp);
int rbd_snapshot_create(BhNode *bs, BhSnapshotInfo *info, BhError **errp);
int rbd_snapshot_apply(BhNode *bs, const char *id_or_name, BhError **errp);
int rbd_snapshot_delete(BhNode *bs, const char *id_or_name, BhError **errp);
int rbd_save_vmstate(BhNode *bs, const void *buf, uint64_t pos, size_t len,
                     BhError **errp);
int rbd_load_vmstate(BhNode *bs, void *buf, uint64_t pos, size_t len,
                     BhError **errp);

#endif
