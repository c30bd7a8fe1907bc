/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The file driver's data path: pread/pwrite loops that survive short
 * transfers and EINTR, reads past the end of the file that return zeros,
 * FUA through pwritev2(RWF_DSYNC), and, for O_DIRECT, a bounce buffer so
 * callers may send requests of any offset, length and buffer alignment.
 * With aio=native each transfer goes through Linux AIO (file-aio.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "file.h"
#include <blkhost/glib.h>

/* Largest slice of an unaligned O_DIRECT request handled in one go. */
#define BOUNCE_MAX (1u << 20)

void file_size_grow(FileState *s, int64_t end)
{
    int64_t cur = atomic_load(&s->size);
    while (end > cur && !atomic_compare_exchange_weak(&s->size, &cur, end))
        ;
}

/* One pread, or one Linux AIO read with aio=native; -errno on error. */
static ssize_t read_once(FileState *s, void *buf, size_t len, uint64_t off)
{
    if (s->aio)
        return file_aio_rw(s, false, buf, len, off, false);
    ssize_t n = pread(s->fd, buf, len, off);
    return n < 0 ? -errno : n;
}

/* Read up to len bytes; fewer only at the end of the file.  Returns the
 * byte count or -errno. */
static ssize_t pread_full(FileState *s, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = read_once(s, (char *)buf + done, len - done, off + done);
        if (n < 0) {
            if (n == -EINTR)
                continue;
            return n;
        }
        if (n == 0)
            break;
        done += n;
    }
    return done;
}

/* One write; with dsync durable on return.  -errno on error. */
static ssize_t write_once(FileState *s, const void *buf, size_t len,
                          uint64_t off, bool dsync)
{
    bool flag = dsync && !atomic_load(&s->no_dsync);
    ssize_t n;
    if (s->aio) {
        n = file_aio_rw(s, true, (void *)buf, len, off, flag);
        if (flag && (n == -EINVAL || n == -EOPNOTSUPP)) {
            /* Kernel without per-request RWF_DSYNC in AIO: remember, and
             * let the caller fdatasync instead. */
            atomic_store(&s->no_dsync, true);
            n = file_aio_rw(s, true, (void *)buf, len, off, false);
        }
        return n;
    }
#ifdef RWF_DSYNC
    if (flag) {
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        n = pwritev2(s->fd, &iov, 1, off, RWF_DSYNC);
        if (n >= 0 || (errno != EOPNOTSUPP && errno != ENOSYS))
            return n < 0 ? -errno : n;
        /* Old kernel: remember, and let the caller fdatasync instead. */
        atomic_store(&s->no_dsync, true);
    }
#endif
    n = pwrite(s->fd, buf, len, off);
    return n < 0 ? -errno : n;
}

/* Write all of buf; with dsync the data is durable when this returns. */
static int pwrite_full(FileState *s, const void *buf, size_t len,
                       uint64_t off, bool dsync)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write_once(s, (const char *)buf + done, len - done,
                               off + done, dsync);
        if (n < 0) {
            if (n == -EINTR)
                continue;
            return n;
        }
        if (n == 0)
            return -ENOSPC;
        done += n;
    }
    if (dsync && atomic_load(&s->no_dsync) && fdatasync(s->fd) < 0)
        return -errno;
    return 0;
}

static bool is_aligned(const FileState *s, const void *buf, uint64_t off,
                       size_t len)
{
    return ((off | len) & (s->align - 1)) == 0 &&
           ((uintptr_t)buf & (s->mem_align - 1)) == 0;
}

static void *bounce_alloc(const FileState *s, size_t len)
{
    void *p = NULL;
    size_t align = MAX(s->align, s->mem_align);
    if (posix_memalign(&p, MAX(align, sizeof(void *)), len) != 0)
        return NULL;
    return p;
}

/* Size of the bounce buffer for a request of len bytes: the request
 * widened to whole blocks, capped at BOUNCE_MAX plus one block each side. */
static size_t bounce_size(const FileState *s, size_t len)
{
    size_t cap = BOUNCE_MAX + 2 * (size_t)s->align;
    size_t want = len + 2 * (size_t)s->align;
    return MIN(cap, want);
}

static int read_error(FileState *s, int err, uint64_t off, size_t len,
                      BhError **errp)
{
    return bh_error_set_errno(errp, -err, "read of %zu bytes at offset %"
                              PRIu64 " from '%s' failed", len, off,
                              s->filename);
}

static int write_error(FileState *s, int err, uint64_t off, size_t len,
                       BhError **errp)
{
    return bh_error_set_errno(errp, -err, "write of %zu bytes at offset %"
                              PRIu64 " to '%s' failed", len, off,
                              s->filename);
}

static int pread_bounced(FileState *s, uint8_t *buf, uint64_t off,
                         size_t len, BhError **errp)
{
    uint64_t mask = s->align - 1;
    uint8_t *bounce = bounce_alloc(s, bounce_size(s, len));
    if (!bounce)
        return bh_error_set(errp, ENOMEM, "no memory for an O_DIRECT "
                            "bounce buffer");
    while (len > 0) {
        uint64_t astart = off & ~mask;
        size_t chunk = MIN(len, BOUNCE_MAX);
        uint64_t aend = (off + chunk + mask) & ~mask;
        ssize_t n = pread_full(s, bounce, aend - astart, astart);
        if (n < 0) {
            free(bounce);
            return read_error(s, n, off, len, errp);
        }
        memset(bounce + n, 0, aend - astart - n);
        memcpy(buf, bounce + (off - astart), chunk);
        buf += chunk;
        off += chunk;
        len -= chunk;
    }
    free(bounce);
    return 0;
}

int file_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
               uint32_t flags, BhError **errp)
{
    FileState *s = bh_node_get_opaque(bs);
    if (s->direct && !is_aligned(s, buf, offset, len))
        return pread_bounced(s, buf, offset, len, errp);
    ssize_t n = pread_full(s, buf, len, offset);
    if (n < 0)
        return read_error(s, n, offset, len, errp);
    /* Past the end of the file (a growable child) reads as zeros. */
    memset((uint8_t *)buf + n, 0, len - n);
    return 0;
}

/* Read the aligned block at astart into dst (zeros past the end). */
static int read_block(FileState *s, uint8_t *dst, uint64_t astart)
{
    ssize_t n = pread_full(s, dst, s->align, astart);
    if (n < 0)
        return n;
    memset(dst + n, 0, s->align - n);
    return 0;
}

/* Write all of buf through the descriptor without O_DIRECT. */
static int pwrite_buffered(FileState *s, const uint8_t *buf, size_t len,
                           uint64_t off, bool fua)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = pwrite(s->buffered_fd, buf + done, len - done, off + done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ENOSPC;
        done += n;
    }
    if (fua && fdatasync(s->fd) < 0)
        return -errno;
    return 0;
}

/*
 * Unaligned O_DIRECT write: read the partly covered head and tail blocks,
 * patch them, write whole blocks.  Runs under rmw_lock so that two
 * requests touching the same block cannot lose each other's bytes.
 *
 * A regular file whose end falls before the end of the last whole block
 * is written without O_DIRECT instead (buffered_fd; the kernel keeps the
 * page cache and direct I/O of one file coherent): writing whole blocks
 * there would leave the file longer than the request, and cutting it back
 * afterwards could cut off what a concurrent write (not under rmw_lock)
 * had just appended, such as a qcow2 refcount block.  The file only
 * grows while it is open for I/O, so a request whose blocks lie inside it
 * when checked stays inside.
 */
static int pwrite_bounced(FileState *s, const uint8_t *buf, uint64_t off,
                          size_t len, bool fua, BhError **errp)
{
    uint64_t mask = s->align - 1;
    uint64_t req_off = off;
    size_t req_len = len;
    int ret = 0;
    uint8_t *bounce = bounce_alloc(s, bounce_size(s, len));
    if (!bounce)
        return bh_error_set(errp, ENOMEM, "no memory for an O_DIRECT "
                            "bounce buffer");

    g_mutex_lock(&s->rmw_lock);
    struct stat st;
    if (!s->is_blockdev && s->buffered_fd >= 0 &&
        (fstat(s->fd, &st) < 0 ||
         (int64_t)((off + len + mask) & ~mask) > (int64_t)st.st_size)) {
        ret = pwrite_buffered(s, buf, len, off, fua);
        len = 0;
    }

    while (len > 0) {
        uint64_t astart = off & ~mask;
        size_t chunk = MIN(len, BOUNCE_MAX);
        uint64_t aend = (off + chunk + mask) & ~mask;
        size_t alen = aend - astart;
        if (off != astart && (ret = read_block(s, bounce, astart)) < 0)
            break;
        if (((off + chunk) & mask) && (aend - s->align != astart ||
                                       off == astart) &&
            (ret = read_block(s, bounce + alen - s->align,
                              aend - s->align)) < 0)
            break;
        memcpy(bounce + (off - astart), buf, chunk);
        if ((ret = pwrite_full(s, bounce, alen, astart, fua)) < 0)
            break;
        buf += chunk;
        off += chunk;
        len -= chunk;
    }
    if (ret == 0 && !s->is_blockdev)
        file_size_grow(s, (int64_t)(req_off + req_len));
    g_mutex_unlock(&s->rmw_lock);
    free(bounce);
    if (ret < 0)
        return write_error(s, ret, req_off, req_len, errp);
    return 0;
}

int file_pwrite(BhNode *bs, const void *buf, uint64_t offset, size_t len,
                uint32_t flags, BhError **errp)
{
    FileState *s = bh_node_get_opaque(bs);
    bool fua = flags & BH_IO_FUA;
    if (s->direct && !is_aligned(s, buf, offset, len))
        return pwrite_bounced(s, buf, offset, len, fua, errp);
    int ret = pwrite_full(s, buf, len, offset, fua);
    if (ret < 0)
        return write_error(s, ret, offset, len, errp);
    if (!s->is_blockdev)
        file_size_grow(s, offset + len);
    return 0;
}
