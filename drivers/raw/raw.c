/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "raw" format driver: the image is the bytes of its "file" child,
 * optionally a window of them (options offset and size).  Everything is
 * passed to the child with the window's offset added, so raw is as fast,
 * as parallel and as capable (FUA, discard, zeroes, block status) as what
 * lies below it.  It is also the format used when no other driver
 * recognises an image, and what partition selection opens over a disk.
 */
#include <errno.h>
#include <inttypes.h>

#include <blkhost/driver.h>
#include <blkhost/glib.h>

typedef struct RawState {
    BhNode *file;     /* borrowed: the core owns the child */
    uint64_t offset;
    uint64_t size;
    bool has_size;    /* a fixed window; else the size follows the file */
} RawState;

static int raw_probe(const uint8_t *buf, size_t len, const char *filename)
{
    return 1;  /* anything is raw, but anything else is more likely */
}

static int raw_open(BhNode *bs, const char *filename, BhOpts *opts,
                    uint32_t open_flags, BhError **errp)
{
    BhNode *file = bh_node_child(bs, "file");
    if (!file)
        return bh_error_set(errp, EINVAL, "raw: no file child to open "
                            "'%s' over", filename);

    uint64_t offset, size = 0;
    bool has_size = bh_opts_get(opts, "size") != NULL;
    if (!bh_opts_get_size(opts, "offset", 0, &offset, errp) ||
        !bh_opts_get_size(opts, "size", 0, &size, errp))
        return -EINVAL;

    int64_t flen = bh_node_size(file);
    if (flen < 0)
        return bh_error_set(errp, (int)-flen, "raw: cannot get the size of "
                            "'%s'", filename);
    if (has_size && (offset > (uint64_t)flen ||
                     size > (uint64_t)flen - offset))
        return bh_error_set(errp, EINVAL, "offset %" PRIu64 " + size %" PRIu64
                            " is beyond the end of the file (%" PRId64
                            " bytes)", offset, size, flen);
    if (offset > (uint64_t)flen)
        return bh_error_set(errp, EINVAL, "offset %" PRIu64 " is beyond the "
                            "end of the file (%" PRId64 " bytes)", offset,
                            flen);

    RawState *s = g_new0(RawState, 1);
    s->file = file;
    s->offset = offset;
    s->size = size;
    s->has_size = has_size;
    bh_node_set_opaque(bs, s);

    bh_node_inherit_from(bs, file);
    return 0;
}

static void raw_close(BhNode *bs)
{
    g_free(bh_node_get_opaque(bs));
    bh_node_set_opaque(bs, NULL);
}

static int64_t raw_get_length(BhNode *bs)
{
    RawState *s = bh_node_get_opaque(bs);
    if (s->has_size)
        return s->size;
    int64_t flen = bh_node_size(s->file);
    if (flen < 0)
        return flen;
    return (uint64_t)flen > s->offset ? flen - (int64_t)s->offset : 0;
}

static int raw_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                     uint32_t flags, BhError **errp)
{
    RawState *s = bh_node_get_opaque(bs);
    return bh_node_pread(s->file, buf, offset + s->offset, len, flags, errp);
}

static int raw_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                      size_t len, uint32_t flags, BhError **errp)
{
    RawState *s = bh_node_get_opaque(bs);
    return bh_node_pwrite(s->file, buf, offset + s->offset, len, flags, errp);
}

static int raw_flush(BhNode *bs, BhError **errp)
{
    RawState *s = bh_node_get_opaque(bs);
    return bh_node_flush(s->file, errp);
}

static int raw_discard(BhNode *bs, uint64_t offset, uint64_t len,
                       BhError **errp)
{
    RawState *s = bh_node_get_opaque(bs);
    return bh_node_discard(s->file, offset + s->offset, len, errp);
}

static int raw_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                            uint32_t flags, BhError **errp)
{
    RawState *s = bh_node_get_opaque(bs);
    return bh_node_write_zeroes(s->file, offset + s->offset, len, flags,
                                errp);
}

/*
 * Requests pass to the file, shifted by the window's offset, as requests:
 * a frontend that keeps many in flight (bh_node_can_submit) gets the
 * file's io_uring or AIO, an RBD or NBD child's queue, through raw too.
 * The core has checked the range against raw_get_length already.
 */
static void raw_submit(BhNode *bs, BhRequest *req)
{
    RawState *s = bh_node_get_opaque(bs);

    bh_request_forward(req, s->file, bh_request_offset(req) + s->offset);
}

static int raw_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                            uint64_t *pnum, uint32_t *status, BhError **errp)
{
    RawState *s = bh_node_get_opaque(bs);
    return bh_node_block_status(s->file, offset + s->offset, len, pnum,
                                status, errp);
}

/* The bytes are the file's, shifted by the window: let the file say. */
static int raw_block_map(BhNode *bs, uint64_t offset, uint64_t len,
                         uint64_t *pnum, uint32_t *flags, uint64_t *map,
                         BhNode **file, BhError **errp)
{
    RawState *s = bh_node_get_opaque(bs);
    (void)errp;
    *pnum = len;
    *flags = BH_MAP_RAW | BH_MAP_OFFSET;
    *map = offset + s->offset;
    *file = s->file;
    return 0;
}

static int raw_truncate(BhNode *bs, uint64_t size, BhError **errp)
{
    RawState *s = bh_node_get_opaque(bs);
    if (s->has_size)
        return bh_error_set(errp, ENOTSUP, "cannot resize '%s': it is a "
                            "window (offset %" PRIu64 ", size %" PRIu64 ") "
                            "onto its file", bh_node_filename(bs), s->offset,
                            s->size);
    if (size > UINT64_MAX - s->offset)
        return bh_error_set(errp, EFBIG, "size %" PRIu64 " is too large",
                            size);
    return bh_node_truncate(s->file, size + s->offset, errp);
}

static void raw_info(BhNode *bs, BhInfo *info)
{
    RawState *s = bh_node_get_opaque(bs);
    if (s->offset || s->has_size) {
        bh_info_add_int(info, "offset", (int64_t)s->offset);
        bh_info_add_int(info, "size", raw_get_length(bs));
    }
}

static int64_t raw_get_allocated_size(BhNode *bs)
{
    RawState *s = bh_node_get_opaque(bs);
    return bh_node_allocated_size(s->file);
}

/*
 * Creation.  Options, as qemu-img's raw format and file protocol take them
 * together: size (rounded up to 512 bytes, as qemu-img does) and
 * preallocation=off|falloc|full.  "metadata" means nothing for raw and is
 * refused, as qemu-img refuses it (it does so only after emptying the file;
 * here it is refused before anything is touched).
 */
enum { RAW_PREALLOC_OFF, RAW_PREALLOC_METADATA, RAW_PREALLOC_FALLOC,
       RAW_PREALLOC_FULL };

static const BhCreateOption raw_create_options[] = {
    { "preallocation", "str", "Preallocation mode (allowed values: off, "
      "falloc, full)" },
    { "size", "size", "Virtual disk size" },
    { NULL, NULL, NULL },
};

static int raw_create_parse(BhOpts *opts, uint64_t *size, int *prealloc,
                            BhError **errp)
{
    static const char *const names[] = { "off", "metadata", "falloc", "full",
                                         NULL };
    if (!bh_opts_get_size(opts, "size", 0, size, errp) ||
        !bh_opts_get_enum(opts, "preallocation", names, RAW_PREALLOC_OFF,
                          prealloc, errp))
        return -EINVAL;
    if (*prealloc == RAW_PREALLOC_METADATA)
        return bh_error_set(errp, ENOTSUP, "Unsupported preallocation mode: "
                            "metadata (raw takes off, falloc or full)");
    if (*size > INT64_MAX - 511)
        return bh_error_set(errp, EFBIG, "raw: size %" PRIu64 " is too large"
                            " (at most 8 EiB)", *size);
    *size = (*size + 511) & ~(uint64_t)511;
    return 0;
}

static int raw_create_check(const char *filename, BhOpts *opts,
                            BhError **errp)
{
    uint64_t size;
    int prealloc;
    return raw_create_parse(opts, &size, &prealloc, errp);
}

/* Zeros written in 1 MiB pieces, so that full preallocation has every block
 * on disk (the file node never turns zeros into holes: detect-zeroes is
 * off under create). */
static int raw_write_zeros(BhNode *file, uint64_t size, BhError **errp)
{
    const size_t chunk = 1 << 20;
    g_autofree uint8_t *zeros = g_malloc0(MIN(chunk, size));
    for (uint64_t off = 0; off < size; off += chunk) {
        size_t n = MIN(chunk, size - off);
        int ret = bh_node_pwrite(file, zeros, off, n, 0, errp);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* The core created an empty file node; give it the requested size.
 * falloc reserves the blocks without writing them: write-zeroes on the
 * file is fallocate(ZERO_RANGE), or zeros written where that is missing. */
static int raw_create(const char *filename, BhNode *file, BhOpts *opts,
                      BhError **errp)
{
    uint64_t size;
    int prealloc, ret;
    if (!file)
        return bh_error_set(errp, EINVAL, "raw: creating '%s' needs a file "
                            "node", filename);
    ret = raw_create_parse(opts, &size, &prealloc, errp);
    if (ret < 0)
        return ret;
    if (prealloc == RAW_PREALLOC_OFF || !size)
        return bh_node_truncate(file, size, errp);
    ret = prealloc == RAW_PREALLOC_FALLOC ?
          bh_node_write_zeroes(file, 0, size, 0, errp) :
          raw_write_zeros(file, size, errp);
    /* Out of space half way: give the blocks back rather than leave a
     * file of the wrong size, as qemu-img does. */
    if (ret < 0)
        bh_node_truncate(file, 0, NULL);
    return ret;
}

static const BhDriver raw_driver = {
    .flags = BH_DRIVER_DATA_ONLY,
    .probe = raw_probe,
    .open = raw_open,
    .close = raw_close,
    .get_length = raw_get_length,
    .pread = raw_pread,
    .pwrite = raw_pwrite,
    .flush = raw_flush,
    .discard = raw_discard,
    .write_zeroes = raw_write_zeroes,
    .submit = raw_submit,
    .block_status = raw_block_status,
    .block_map = raw_block_map,
    .truncate = raw_truncate,
    .info = raw_info,
    .get_allocated_size = raw_get_allocated_size,
    .create = raw_create,
    .create_check = raw_create_check,
    .create_options = raw_create_options,
    .request_flags = BH_IO_FUA | BH_IO_MAY_UNMAP | BH_IO_FAST_ZERO,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "raw",
    .version = "1.0",
    .description = "raw image over a file, optionally a window of it "
                   "(offset=, size=)",
    .driver = &raw_driver,
};

BH_PLUGIN_REGISTER(desc)
