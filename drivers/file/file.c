/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "file" protocol driver: a POSIX regular file or block device.
 *
 * It is the bottom of most node chains (raw or qcow2 over file).  This half
 * opens the descriptor and takes QEMU-compatible image locks, knows the
 * size, and does the operations that need no data transfer: block status
 * from SEEK_DATA/SEEK_HOLE, discard by punching holes, write-zeroes with
 * fallocate, truncate, creation.  The data path lives in file-io.c.
 *
 * Options: aio=io_uring (file-uring.c), aio=native (Linux AIO, file-aio.c;
 * needs O_DIRECT, i.e. cache=none or directsync) or aio=threads (pread/
 * pwrite on the caller's thread).  They say how submit (file-submit.c)
 * reaches the kernel.  Without aio=, an O_DIRECT file takes the first of
 * io_uring, native, threads that the kernel grants; a buffered one takes
 * threads, since a page-cache hit is a memcpy that a pread on the
 * caller's thread does faster than a trip through a queue.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#include <blkhost/driver.h>
#include <blkhost/glib.h>

#include "file.h"

/* What a writer holds and lets others hold, as QEMU's file-posix does:
 * nobody else may write or resize, anybody may read or rewrite the same
 * bytes. */
#define PERMS_RW (BH_PERM_CONSISTENT_READ | BH_PERM_WRITE | \
                  BH_PERM_WRITE_UNCHANGED | BH_PERM_RESIZE)
#define PERMS_RO BH_PERM_CONSISTENT_READ
#define SHARED   (BH_PERM_CONSISTENT_READ | BH_PERM_WRITE_UNCHANGED)

static void file_state_free(FileState *s)
{
    file_uring_cleanup(s);
    file_aio_queue_cleanup(s);
    file_aio_cleanup(s);
    if (s->buffered_fd >= 0)
        close(s->buffered_fd);
    if (s->fd >= 0)
        close(s->fd);
    g_mutex_clear(&s->rmw_lock);
    g_free(s->filename);
    g_free(s);
}

/* O_DIRECT alignment of offsets/lengths and of buffers.  Linux 6.1+ says it
 * through statx; older kernels get the logical block size of a device or a
 * safe 4096 for files.  Never below 512. */
static void file_probe_alignment(FileState *s)
{
    uint32_t align = 0, mem_align = 0;
#ifdef STATX_DIOALIGN
    struct statx stx;
    if (statx(s->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
        (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
        align = stx.stx_dio_offset_align;
        mem_align = stx.stx_dio_mem_align;
    }
#endif
    if (!align && s->is_blockdev) {
        int ssz = 0;
        if (ioctl(s->fd, BLKSSZGET, &ssz) == 0 && ssz > 0)
            align = ssz;
    }
    if (!align)
        align = 4096;
    s->align = MAX(align, 512u);
    /* The bounce buffer is aligned to the larger of the two anyway. */
    s->mem_align = MAX(mem_align ? mem_align : s->align, 1u);
}

static int file_open_error(const char *filename, int err, bool direct,
                           BhError **errp)
{
    switch (err) {
    case EISDIR:
        return bh_error_set(errp, EISDIR, "'%s' is a directory (expected a "
                            "regular file or a block device)", filename);
    case EINVAL:
        if (direct)
            return bh_error_set(errp, EINVAL, "could not open '%s' with "
                                "O_DIRECT (cache=none/directsync): its "
                                "filesystem does not support direct I/O",
                                filename);
        break;
    }
    return bh_error_set_errno(errp, err, "could not open '%s'", filename);
}

/* A second descriptor of the same file without O_DIRECT (see
 * pwrite_bounced).  Through /proc, so it is the file already open even if
 * its name was replaced meanwhile; no image lock is taken on it (ours on
 * fd cover it). */
static int file_open_buffered(FileState *s, BhError **errp)
{
    char path[64];
    g_snprintf(path, sizeof(path), "/proc/self/fd/%d", s->fd);
    s->buffered_fd = open(path, O_RDWR | O_CLOEXEC);
    if (s->buffered_fd < 0)
        s->buffered_fd = open(s->filename, O_RDWR | O_CLOEXEC);
    if (s->buffered_fd < 0)
        return bh_error_set_errno(errp, errno, "could not open '%s' a "
                                  "second time (for unaligned writes at "
                                  "its end under cache=none)", s->filename);
    return 0;
}

/*
 * Set up the queue aio= asks for.  An explicit mode that the kernel
 * refuses fails the open with the reason; without aio= (FILE_AIO_AUTO)
 * the next mode is tried, quietly, down to threads.
 */
static int file_aio_setup(FileState *s, int aio, BhError **errp)
{
    int ret;
    if (aio == FILE_AIO_AUTO && !s->direct)
        aio = FILE_AIO_THREADS;
    if (aio == FILE_AIO_IO_URING || aio == FILE_AIO_AUTO) {
        ret = file_uring_init(s, aio == FILE_AIO_AUTO ? NULL : errp);
        if (ret == 0) {
            s->mode = FILE_AIO_IO_URING;
            return 0;
        }
        if (aio != FILE_AIO_AUTO)
            return ret;
    }
    if (aio == FILE_AIO_NATIVE || aio == FILE_AIO_AUTO) {
        BhError **e = aio == FILE_AIO_AUTO ? NULL : errp;
        ret = file_aio_init(s, e);
        if (ret == 0 && (ret = file_aio_queue_init(s, e)) < 0)
            file_aio_cleanup(s);
        if (ret == 0) {
            s->mode = FILE_AIO_NATIVE;
            return 0;
        }
        if (aio != FILE_AIO_AUTO)
            return ret;
    }
    s->mode = FILE_AIO_THREADS;
    return 0;
}

static int file_open(BhNode *bs, const char *filename, BhOpts *opts,
                     uint32_t open_flags, BhError **errp)
{
    bool rdwr = open_flags & BH_OPEN_RDWR;
    bool direct = open_flags & BH_OPEN_DIRECT;
    /* O_NONBLOCK so that a fifo given by mistake is refused below
     * instead of hanging the open; it is cleared again for real files. */
    int oflags = (rdwr ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK |
                 (direct ? O_DIRECT : 0);

    static const char *const aio_names[] = { "threads", "native",
                                             "io_uring", NULL };
    int aio = FILE_AIO_AUTO;
    if (!bh_opts_get_enum(opts, "aio", aio_names, FILE_AIO_AUTO, &aio, errp))
        return -EINVAL;

    if (!filename || !*filename)
        return bh_error_set(errp, EINVAL, "file: no filename given");
    /* As in qemu: native AIO without O_DIRECT would block in io_submit
     * on the page cache, so it is refused rather than quietly slow. */
    if (aio == FILE_AIO_NATIVE && !direct)
        return bh_error_set(errp, EINVAL, "file: aio=native needs "
                            "cache=none or cache=directsync (O_DIRECT) "
                            "for '%s'", filename);

    int fd = open(filename, oflags);
    if (fd < 0)
        return file_open_error(filename, errno, direct, errp);

    FileState *s = g_new0(FileState, 1);
    s->fd = fd;
    s->buffered_fd = -1;
    s->filename = g_strdup(filename);
    s->direct = direct;
    s->growable = open_flags & BH_OPEN_GROWABLE;
    s->align = s->mem_align = 1;
    g_mutex_init(&s->rmw_lock);

    struct stat st;
    int ret;
    if (fstat(fd, &st) < 0) {
        ret = bh_error_set_errno(errp, errno, "could not stat '%s'",
                                 filename);
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        ret = file_open_error(filename, EISDIR, false, errp);
        goto fail;
    }
    if (S_ISBLK(st.st_mode)) {
        uint64_t bytes = 0;
        s->is_blockdev = true;
        if (ioctl(fd, BLKGETSIZE64, &bytes) < 0) {
            ret = bh_error_set_errno(errp, errno, "could not get the size "
                                     "of block device '%s'", filename);
            goto fail;
        }
        atomic_store(&s->size, (int64_t)bytes);
        int ssz = 0;
        s->sector = ioctl(fd, BLKSSZGET, &ssz) == 0 && ssz > 0 ? ssz : 512;
    } else if (S_ISREG(st.st_mode)) {
        atomic_store(&s->size, (int64_t)st.st_size);
    } else {
        ret = bh_error_set(errp, EINVAL, "'%s' is not a regular file or a "
                           "block device", filename);
        goto fail;
    }

    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
        ret = bh_error_set_errno(errp, errno, "could not set up '%s'",
                                 filename);
        goto fail;
    }

    if (!(open_flags & BH_OPEN_NO_LOCK)) {
        /* A reader under raw shares everything, as QEMU's raw readers
         * do; the core asks for it only where no metadata is at stake. */
        uint32_t shared = (!rdwr && (open_flags & BH_OPEN_SHARE_WRITES))
                              ? BH_PERM_ALL : SHARED;
        ret = bh_lock_apply(fd, filename, rdwr ? PERMS_RW : PERMS_RO, shared,
                            errp);
        if (ret < 0)
            goto fail;
    }

    if (direct)
        file_probe_alignment(s);
    if (direct && rdwr && !s->is_blockdev &&
        (ret = file_open_buffered(s, errp)) < 0)
        goto fail;
    if ((ret = file_aio_setup(s, aio, errp)) < 0)
        goto fail;

    bh_node_set_opaque(bs, s);
    bh_node_set_caps(bs, BH_CAP_FUA | BH_CAP_DISCARD | BH_CAP_ZERO);
    bh_node_set_block_limits(bs, s->align, MAX(s->align, 4096u), 0);
    return 0;

fail:
    file_state_free(s);
    return ret;
}

static void file_close(BhNode *bs)
{
    FileState *s = bh_node_get_opaque(bs);
    if (s)
        file_state_free(s);
    bh_node_set_opaque(bs, NULL);
}

/*
 * Called for every request on a growable node (the core cannot cache a
 * size that writes change), so it answers from the cached size that
 * writes and truncate keep current.  Nodes that do not grow are asked
 * rarely, and get a fresh fstat so a file resized by someone else is seen.
 */
static int64_t file_get_length(BhNode *bs)
{
    FileState *s = bh_node_get_opaque(bs);
    if (!s->is_blockdev && !s->growable) {
        struct stat st;
        if (fstat(s->fd, &st) == 0)
            atomic_store(&s->size, (int64_t)st.st_size);
    }
    return atomic_load(&s->size);
}

int file_flush(BhNode *bs, BhError **errp)
{
    FileState *s = bh_node_get_opaque(bs);
    if (fdatasync(s->fd) < 0)
        return bh_error_set_errno(errp, errno, "flush of '%s' failed",
                                  s->filename);
    return 0;
}

static int file_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                             uint64_t *pnum, uint32_t *status, BhError **errp)
{
    FileState *s = bh_node_get_opaque(bs);
    off_t data = lseek(s->fd, offset, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) {
            /* No data at or after offset: a hole to the end (and beyond,
             * for a growable file read past its end). */
            *pnum = len;
            *status = BH_BLOCK_HOLE | BH_BLOCK_ZERO;
            return 0;
        }
        /* No SEEK_DATA support here: everything is data. */
        *pnum = len;
        *status = 0;
        return 0;
    }
    if ((uint64_t)data > offset) {
        *pnum = MIN((uint64_t)data - offset, len);
        *status = BH_BLOCK_HOLE | BH_BLOCK_ZERO;
        return 0;
    }
    off_t hole = lseek(s->fd, offset, SEEK_HOLE);
    if (hole < 0 || (uint64_t)hole <= offset)
        *pnum = len;  /* data changed under us: call it data */
    else
        *pnum = MIN((uint64_t)hole - offset, len);
    *status = 0;
    return 0;
}

int file_discard(BhNode *bs, uint64_t offset, uint64_t len, BhError **errp)
{
    FileState *s = bh_node_get_opaque(bs);
    if (s->is_blockdev) {
        /* Devices discard whole sectors only: shrink to the ones covered. */
        uint64_t mask = s->sector - 1;
        uint64_t start = (offset + mask) & ~mask;
        uint64_t end = (offset + len) & ~mask;
        if (end <= start)
            return 0;
        offset = start;
        len = end - start;
    }
    if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  offset, len) < 0) {
        /* Discard is advisory: a filesystem without holes keeps the data. */
        if (errno == EOPNOTSUPP || errno == ENOSYS)
            return 0;
        return bh_error_set_errno(errp, errno, "discard of %" PRIu64
                                  " bytes at offset %" PRIu64 " in '%s' "
                                  "failed", len, offset, s->filename);
    }
    return 0;
}

static bool unsupported(int err)
{
    return err == EOPNOTSUPP || err == ENOSYS || err == EINVAL;
}

/* Zero a range without writing data.  Punching a hole keeps the size, so a
 * growable file is extended afterwards; ZERO_RANGE extends by itself.
 * -ENOTSUP (no message) makes the core write zeros instead. */
int file_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                      uint32_t flags, BhError **errp)
{
    FileState *s = bh_node_get_opaque(bs);
    uint64_t end = offset + len;
    bool done = false;

    if (flags & BH_IO_MAY_UNMAP) {
        if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      offset, len) == 0) {
            done = true;
            if (!s->is_blockdev && (int64_t)end > atomic_load(&s->size)) {
                struct stat st;
                if (fstat(s->fd, &st) == 0 && st.st_size < (off_t)end &&
                    ftruncate(s->fd, end) < 0)
                    return bh_error_set_errno(errp, errno, "could not "
                                              "extend '%s'", s->filename);
            }
        } else if (!unsupported(errno)) {
            goto error;
        }
    }
    if (!done) {
        if (fallocate(s->fd, FALLOC_FL_ZERO_RANGE, offset, len) < 0) {
            if (unsupported(errno))
                return -ENOTSUP;
            goto error;
        }
    }
    if (!s->is_blockdev)
        file_size_grow(s, end);
    if ((flags & BH_IO_FUA) && fdatasync(s->fd) < 0)
        goto error;
    return 0;

error:
    return bh_error_set_errno(errp, errno, "write-zeroes of %" PRIu64
                              " bytes at offset %" PRIu64 " in '%s' failed",
                              len, offset, s->filename);
}

static int file_truncate(BhNode *bs, uint64_t size, BhError **errp)
{
    FileState *s = bh_node_get_opaque(bs);
    if (size > INT64_MAX)
        return bh_error_set(errp, EFBIG, "size %" PRIu64 " is too large",
                            size);
    if (s->is_blockdev) {
        if ((int64_t)size == atomic_load(&s->size))
            return 0;
        return bh_error_set(errp, ENOTSUP, "'%s' is a block device: its "
                            "size (%" PRId64 " bytes) cannot be changed",
                            s->filename, atomic_load(&s->size));
    }
    if (ftruncate(s->fd, size) < 0)
        return bh_error_set_errno(errp, errno, "could not resize '%s' to %"
                                  PRIu64 " bytes", s->filename, size);
    atomic_store(&s->size, (int64_t)size);
    return 0;
}

static int64_t file_get_allocated_size(BhNode *bs)
{
    FileState *s = bh_node_get_opaque(bs);
    struct stat st;
    if (fstat(s->fd, &st) < 0)
        return -1;
    return (int64_t)st.st_blocks * 512;
}

static const BhCreateOption file_create_options[] = {
    { "size", "size", "Virtual disk size" },
    { NULL, NULL, NULL },
};

static int file_create_size(BhOpts *opts, uint64_t *size, BhError **errp)
{
    if (!bh_opts_get_size(opts, "size", 0, size, errp))
        return -EINVAL;
    if (*size > INT64_MAX)
        return bh_error_set(errp, EFBIG, "size %" PRIu64 " is too large",
                            *size);
    return 0;
}

static int file_create_check(const char *filename, BhOpts *opts,
                             BhError **errp)
{
    uint64_t size;
    return file_create_size(opts, &size, errp);
}

/* Create (or empty) filename and give it the requested size.  The image
 * is locked first, so an image somebody has open is never clobbered. */
static int file_create(const char *filename, BhNode *file, BhOpts *opts,
                       BhError **errp)
{
    uint64_t size;
    int ret = file_create_size(opts, &size, errp);
    if (ret < 0)
        return ret;

    int fd = open(filename, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return file_open_error(filename, errno, false, errp);

    struct stat st;
    if (fstat(fd, &st) < 0) {
        ret = bh_error_set_errno(errp, errno, "could not stat '%s'",
                                 filename);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        ret = bh_error_set(errp, EINVAL, "cannot create '%s': it exists "
                           "and is not a regular file", filename);
        goto out;
    }
    /* Share nothing: emptying an image that anybody holds (even a reader;
     * QEMU's tools share write among themselves) would pull it from under
     * them. */
    ret = bh_lock_apply(fd, filename, BH_PERM_WRITE | BH_PERM_RESIZE, 0,
                        errp);
    if (ret < 0)
        goto out;
    if (ftruncate(fd, 0) < 0 || ftruncate(fd, size) < 0)
        ret = bh_error_set_errno(errp, errno, "could not set the size of "
                                 "'%s' to %" PRIu64 " bytes", filename, size);
out:
    close(fd);
    return ret;
}

static const BhDriver file_driver = {
    .flags = BH_DRIVER_PROTOCOL | BH_DRIVER_NO_PROBE,
    .open = file_open,
    .close = file_close,
    .get_length = file_get_length,
    .pread = file_pread,
    .pwrite = file_pwrite,
    .flush = file_flush,
    .discard = file_discard,
    .write_zeroes = file_write_zeroes,
    .block_status = file_block_status,
    .truncate = file_truncate,
    .get_allocated_size = file_get_allocated_size,
    .create = file_create,
    .create_check = file_create_check,
    .create_options = file_create_options,
    .submit = file_submit,
    .request_flags = BH_IO_FUA | BH_IO_MAY_UNMAP | BH_IO_FAST_ZERO,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "file",
    .version = "1.0",
    .description = "POSIX regular file or block device",
    .driver = &file_driver,
};

BH_PLUGIN_REGISTER(desc)
