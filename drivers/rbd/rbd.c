/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "rbd" protocol driver: a Ceph RBD image as a node, over librbd.
 *
 * Filenames are QEMU's (rbd:pool[/namespace]/image[@snap][:key=value...],
 * rbd-conn.c), so bh.open("rbd:rbd/vm1") opens it with the format probed
 * over it, and format=rbd with the pool=, namespace=, image=, snapshot=,
 * conf=, user=, key_secret=, keyring=, cluster= and connect-timeout=
 * options opens it alone.  Every read, write, discard, write-zeroes and
 * flush is one asynchronous librbd call whose completion (on librbd's
 * callback thread) finishes the core's request, so requests in flight
 * cost no thread of ours.  A write with FUA is followed by a flush before
 * it completes.  Snapshots (rbd-snap.c) are RBD's own, so `rbd snap ls`
 * sees what `blkhost snapshot` makes, and the other way round.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rbd.h"

static const char *const rbd_schemes[] = { "rbd:", NULL };

/* ---- open and close ---- */

static void rbd_state_free(RbdState *s)
{
    rbd_disconnect(s);
    rbd_spec_clear(&s->spec);
    free(s->label);
    free(s);
}

static int rbd_node_open(BhNode *bs, const char *filename, BhOpts *opts,
                         uint32_t open_flags, BhError **errp)
{
    RbdState *s = calloc(1, sizeof(*s));
    if (!s)
        return bh_error_set(errp, ENOMEM, "rbd: out of memory");
    s->writable = open_flags & BH_OPEN_RDWR;
    s->nocache = open_flags & BH_OPEN_DIRECT;
    int r = rbd_spec_parse(&s->spec, filename, opts, errp);
    if (r < 0)
        goto fail;
    s->label = rbd_spec_label(&s->spec, true);
    if (!s->label) {
        r = bh_error_set(errp, ENOMEM, "rbd: out of memory");
        goto fail;
    }
    if (s->writable && s->spec.snap) {
        r = bh_error_set(errp, EROFS, "rbd: '%s' is a snapshot: open it "
                         "read-only (readonly=on, blkhost nbd -r)", s->label);
        goto fail;
    }
    r = rbd_connect(s, errp);
    if (r < 0)
        goto fail;
    r = rbd_open_image(s, open_flags & BH_OPEN_NO_LOCK, errp);
    if (r < 0)
        goto fail;
    bh_node_set_caps(bs, BH_CAP_FUA | BH_CAP_DISCARD | BH_CAP_ZERO);
    /* librbd splits at objects itself; one object is the natural unit. */
    bh_node_set_block_limits(bs, 1, s->obj_size ? (uint32_t)s->obj_size
                                                : 4096, 0);
    bh_node_set_opaque(bs, s);
    return 0;

fail:
    rbd_state_free(s);
    return r < 0 ? r : -EIO;
}

static void rbd_node_close(BhNode *bs)
{
    RbdState *s = bh_node_get_opaque(bs);
    if (s)
        rbd_state_free(s);
    bh_node_set_opaque(bs, NULL);
}

static int64_t rbd_node_get_length(BhNode *bs)
{
    RbdState *s = bh_node_get_opaque(bs);
    uint64_t size;
    int r = rbd_get_size(s->image, &size);
    return r < 0 ? r : (int64_t)size;
}

/* ---- asynchronous I/O ---- */

typedef struct {
    BhRequest *req;
    RbdState *s;
    bool fua;                 /* a flush is still to follow the write */
    const char *what;
} RbdAio;

static int rbd_aio_issue(RbdAio *a);

static void rbd_aio_done(rbd_completion_t c, void *arg)
{
    RbdAio *a = arg;
    ssize_t r = rbd_aio_get_return_value(c);
    rbd_aio_release(c);

    if (r >= 0 && a->fua) {
        /* The write is in; FUA wants it durable before we answer. */
        a->fua = false;
        a->what = "flush after a FUA write";
        rbd_completion_t f;
        int e = rbd_aio_create_completion(a, rbd_aio_done, &f);
        if (e == 0 && (e = rbd_aio_flush(a->s->image, f)) < 0)
            rbd_aio_release(f);
        if (e == 0)
            return;
        r = e;
    }
    BhRequest *req = a->req;
    if (r < 0)
        bh_request_error(req, (int)-r, "rbd: %s of %" PRIu64 " bytes at "
                         "offset %" PRIu64 " on '%s' failed: %s", a->what,
                         bh_request_length(req), bh_request_offset(req),
                         a->s->label, rbd_cause((int)r));
    free(a);
    bh_request_complete(req, r < 0 ? (int)r : 0);
}

static void rbd_node_submit(BhNode *bs, BhRequest *req)
{
    RbdState *s = bh_node_get_opaque(bs);
    RbdAio *a = calloc(1, sizeof(*a));
    if (!a) {
        bh_request_error(req, ENOMEM, "rbd: out of memory");
        bh_request_complete(req, -ENOMEM);
        return;
    }
    a->req = req;
    a->s = s;
    int r = rbd_aio_issue(a);
    if (r < 0) {
        bh_request_error(req, -r, "rbd: cannot start a %s on '%s': %s",
                         a->what, s->label, rbd_cause(r));
        free(a);
        bh_request_complete(req, r);
    }
}

/* Hand a's request to librbd; rbd_aio_done finishes it.  A negative
 * return means nothing was started. */
static int rbd_aio_issue(RbdAio *a)
{
    BhRequest *req = a->req;
    rbd_image_t img = a->s->image;
    uint64_t off = bh_request_offset(req), len = bh_request_length(req);
    uint32_t flags = bh_request_flags(req);
    const struct iovec *iov;
    int niov;
    rbd_completion_t c;

    int r = rbd_aio_create_completion(a, rbd_aio_done, &c);
    if (r < 0) {
        a->what = "request";
        return r;
    }
    switch (bh_request_op(req)) {
    case BH_OP_READ:
        a->what = "read";
        iov = bh_request_iov(req, &niov);
        r = rbd_aio_readv(img, iov, niov, off, c);
        break;
    case BH_OP_WRITE:
        a->what = "write";
        a->fua = flags & BH_IO_FUA;
        iov = bh_request_iov(req, &niov);
        r = rbd_aio_writev(img, iov, niov, off, c);
        break;
    case BH_OP_FLUSH:
        a->what = "flush";
        r = rbd_aio_flush(img, c);
        break;
    case BH_OP_DISCARD:
        a->what = "discard";
        r = rbd_aio_discard(img, off, len, c);
        break;
    case BH_OP_WRITE_ZEROES:
        a->what = "write zeroes";
        a->fua = flags & BH_IO_FUA;
        /* librbd zeroes whole objects by removing or truncating them: it
         * may deallocate.  Keeping the space means writing zeros
         * (THICK_PROVISION), which is not fast. */
        if (!(flags & BH_IO_MAY_UNMAP) && (flags & BH_IO_FAST_ZERO))
            r = -ENOTSUP;
        else
            r = rbd_aio_write_zeroes(img, off, len, c,
                                     flags & BH_IO_MAY_UNMAP ? 0 :
                                     RBD_WRITE_ZEROES_FLAG_THICK_PROVISION, 0);
        break;
    default:
        a->what = "request";
        r = -ENOTSUP;
    }
    if (r < 0)
        rbd_aio_release(c);
    return r;
}

/* ---- block status ---- */

typedef struct {
    uint64_t start, end;      /* the range asked about */
    uint64_t data_start, data_end; /* the first allocated run found */
    bool found;
} RbdExtents;

/* A run that neither touches the first one found nor comes first ends
 * the walk: everything needed is known. */
static int rbd_extent_cb(uint64_t off, size_t len, int exists, void *arg)
{
    RbdExtents *e = arg;
    if (!exists)
        return 0;
    if (!e->found) {
        e->found = true;
        e->data_start = off;
        e->data_end = off + len;
        return 0;
    }
    if (off <= e->data_end) {
        if (off + len > e->data_end)
            e->data_end = off + len;
        return 0;
    }
    return -ECANCELED;
}

/* Look at most this far per call: diff_iterate walks the object map of
 * the whole range before the callback can stop it. */
#define RBD_STATUS_MAX (1ull << 30)

static int rbd_node_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                                 uint64_t *pnum, uint32_t *status,
                                 BhError **errp)
{
    RbdState *s = bh_node_get_opaque(bs);
    if (len > RBD_STATUS_MAX)
        len = RBD_STATUS_MAX;
    RbdExtents e = { .start = offset, .end = offset + len };
    /* whole_object lets the fast-diff object map answer without reading
     * anything; an object that exists counts as data throughout. */
    int r = rbd_diff_iterate2(s->image, NULL, offset, len, 1,
                              (s->features & RBD_FEATURE_FAST_DIFF) ? 1 : 0,
                              rbd_extent_cb, &e);
    if (r < 0 && r != -ECANCELED)
        return bh_error_set(errp, -r, "rbd: block status at offset %" PRIu64
                            " of '%s' failed: %s", offset, s->label,
                            rbd_cause(r));
    if (!e.found || e.data_start >= e.end) {
        *pnum = len;
        *status = BH_BLOCK_HOLE | BH_BLOCK_ZERO;
    } else if (e.data_start > offset) {
        *pnum = e.data_start - offset;
        *status = BH_BLOCK_HOLE | BH_BLOCK_ZERO;
    } else {
        uint64_t end = e.data_end < e.end ? e.data_end : e.end;
        *pnum = end - offset;
        *status = 0;
    }
    return 0;
}

/* ---- size ---- */

static int rbd_node_truncate(BhNode *bs, uint64_t size, BhError **errp)
{
    RbdState *s = bh_node_get_opaque(bs);
    int r = rbd_resize(s->image, size);
    if (r < 0)
        return bh_error_set(errp, -r, "rbd: cannot resize '%s' to %" PRIu64
                            " bytes: %s", s->label, size, rbd_cause(r));
    return 0;
}

/* ---- creation ---- */

static const BhCreateOption rbd_create_options[] = {
    { "size", "size", "Virtual disk size" },
    { "cluster_size", "size", "RBD object size (a power of two, 4 KiB to "
      "32 MiB; default 4 MiB)" },
    { NULL, NULL, NULL },
};

static int rbd_create_parse(BhOpts *opts, uint64_t *size, int *order,
                            BhError **errp)
{
    uint64_t obj;
    if (!bh_opts_get_size(opts, "size", 0, size, errp) ||
        !bh_opts_get_size(opts, "cluster_size", 0, &obj, errp))
        return -EINVAL;
    *order = 0;
    if (obj) {
        if (obj < 4096 || obj > (32u << 20) || (obj & (obj - 1)))
            return bh_error_set(errp, EINVAL, "rbd: cluster_size %" PRIu64
                                " is not a power of two from 4 KiB to "
                                "32 MiB", obj);
        while ((1ull << *order) < obj)
            (*order)++;
    }
    return 0;
}

static int rbd_node_create_check(const char *filename, BhOpts *opts,
                                 BhError **errp)
{
    uint64_t size;
    int order;
    return rbd_create_parse(opts, &size, &order, errp);
}

static int rbd_node_create(const char *filename, BhNode *file, BhOpts *opts,
                           BhError **errp)
{
    RbdState s = { 0 };
    uint64_t size;
    int order;
    int r = rbd_create_parse(opts, &size, &order, errp);
    if (r < 0)
        return r;
    r = rbd_spec_parse(&s.spec, filename, opts, errp);
    if (r < 0)
        goto out;
    s.label = rbd_spec_label(&s.spec, false);
    if (s.spec.snap) {
        r = bh_error_set(errp, EINVAL, "rbd: cannot create '%s@%s': a "
                         "snapshot is made with `blkhost snapshot -c`",
                         s.label, s.spec.snap);
        goto out;
    }
    r = rbd_connect(&s, errp);
    if (r < 0)
        goto out;
    /* The cluster's defaults (rbd_default_features) decide the features,
     * as for `rbd create`. */
    rbd_image_options_t iopts;
    rbd_image_options_create(&iopts);
    if (order)
        rbd_image_options_set_uint64(iopts, RBD_IMAGE_OPTION_ORDER,
                                     (uint64_t)order);
    r = rbd_create4(s.io, s.spec.image, size, iopts);
    rbd_image_options_destroy(iopts);
    if (r < 0)
        r = bh_error_set(errp, -r, "rbd: cannot create '%s': %s", s.label,
                         r == -EEXIST ? "an image of that name exists "
                         "already (`rbd rm` it first)" : rbd_cause(r));
out:
    rbd_disconnect(&s);
    rbd_spec_clear(&s.spec);
    free(s.label);
    return r;
}

/* ---- info ---- */

static void rbd_node_info(BhNode *bs, BhInfo *info)
{
    RbdState *s = bh_node_get_opaque(bs);
    bh_info_add_str(info, "rbd-pool", s->spec.pool);
    if (s->spec.nspace)
        bh_info_add_str(info, "rbd-namespace", s->spec.nspace);
    bh_info_add_str(info, "rbd-image", s->spec.image);
    if (s->spec.snap)
        bh_info_add_str(info, "rbd-snapshot", s->spec.snap);
    bh_info_add_int(info, "rbd-object-size", (int64_t)s->obj_size);
    bh_info_add_bool(info, "rbd-exclusive-lock",
                     s->features & RBD_FEATURE_EXCLUSIVE_LOCK);
    bh_info_add_bool(info, "rbd-lock-held", s->locked);
}

static const BhDriver rbd_driver = {
    .flags = BH_DRIVER_PROTOCOL | BH_DRIVER_NO_PROBE,
    .open = rbd_node_open,
    .close = rbd_node_close,
    .get_length = rbd_node_get_length,
    .block_status = rbd_node_block_status,
    .truncate = rbd_node_truncate,
    .info = rbd_node_info,
    .create = rbd_node_create,
    .create_check = rbd_node_create_check,
    .create_options = rbd_create_options,
    .snapshot_list = rbd_snapshot_list,
    .snapshot_create = rbd_snapshot_create,
    .snapshot_apply = rbd_snapshot_apply,
    .snapshot_delete = rbd_snapshot_delete,
    .save_vmstate = rbd_save_vmstate,
    .load_vmstate = rbd_load_vmstate,
    .submit = rbd_node_submit,
    .request_flags = BH_IO_FUA | BH_IO_MAY_UNMAP | BH_IO_FAST_ZERO,
    .uri_schemes = rbd_schemes,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "rbd",
    .version = "1.0",
    .description = "a Ceph RBD image (rbd:pool/image), over librbd",
    .driver = &rbd_driver,
};

BH_PLUGIN_REGISTER(desc)
