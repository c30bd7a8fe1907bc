/*
 * SPDX-License-Identifier: BSD-3-Clause
 *
 * The fuse frontend's request handlers: what the kernel asks of the one
 * file (and, over a directory, of the directory holding it), answered
 * with bh_node_* calls on the worker thread that read the request.
 *
 * Semantics follow qemu-storage-daemon's FUSE export where it has one:
 *   - the file has the node's size and cannot grow by writing: a read
 *     past the end is short (0 bytes at the end), a write crossing it is
 *     short, a write starting at or past it fails with ENOSPC;
 *   - fallocate: PUNCH_HOLE (with KEEP_SIZE) is write-zeroes that may
 *     unmap, so the range reads as zeros whether or not the node can
 *     deallocate (the node's discard= mode decides); ZERO_RANGE is
 *     write-zeroes (and grows the file first without KEEP_SIZE); mode 0
 *     only extends, since nothing can promise that blocks inside the
 *     file stay allocated (EOPNOTSUPP);
 *   - SEEK_DATA / SEEK_HOLE come from block status, a hole being what
 *     NBD calls one (not allocated, as qemu's "not DATA");
 *   - truncate (setattr size, O_TRUNC) resizes the node where its driver
 *     can; a driver that cannot gives EPERM, the errno truncate(2) has
 *     for a file system that cannot change a file's size;
 *   - a read-only export refuses opening for writing with EROFS, and so
 *     every write, fallocate, truncate and chmod +w;
 *   - FLUSH (each close) flushes the node when something was written
 *     since the last flush; fsync always flushes.
 * Attributes are cached by the kernel for a second only: the node's
 * size may change behind the mount (Lua resize, another frontend).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuse-export.h"

#define OPS_ATTR_TIMEOUT 1.0

/* A read is served from one buffer per worker thread, allocated once
 * (page aligned, for nodes opened with cache=none). */
typedef struct {
    size_t size;
    void *data;
} OpsBuffer;

static void ops_buffer_free(gpointer p)
{
    OpsBuffer *b = p;
    free(b->data);
    g_free(b);
}

static GPrivate ops_buffer_key = G_PRIVATE_INIT(ops_buffer_free);

static void *ops_buffer(size_t len)
{
    OpsBuffer *b = g_private_get(&ops_buffer_key);
    if (!b || b->size < len) {
        size_t size = MAX(len, (size_t)1 << 20);
        void *data = NULL;
        if (posix_memalign(&data, 4096, size) != 0)
            return NULL;
        b = g_new(OpsBuffer, 1);
        b->size = size;
        b->data = data;
        g_private_replace(&ops_buffer_key, b);
    }
    return b->data;
}

static FuseExport *ops_begin(fuse_req_t req)
{
    FuseExport *fe = fuse_req_userdata(req);
    __atomic_add_fetch(&fe->stats.requests, 1, __ATOMIC_RELAXED);
    return fe;
}

/* Reply err (a positive errno, or 0 for success), counting failures. */
static void ops_reply_err(fuse_req_t req, FuseExport *fe, int err)
{
    if (err)
        __atomic_add_fetch(&fe->stats.errors, 1, __ATOMIC_RELAXED);
    fuse_reply_err(req, err);
}

static void ops_file_stat(FuseExport *fe, struct stat *st)
{
    int64_t size = bh_node_size(fe->node);
    int64_t alloc = bh_node_allocated_size(fe->node);

    memset(st, 0, sizeof(*st));
    st->st_ino = fe->file_ino;
    g_mutex_lock(&fe->lock);
    st->st_mode = S_IFREG | fe->mode;
    g_mutex_unlock(&fe->lock);
    st->st_nlink = 1;
    st->st_uid = fe->uid;
    st->st_gid = fe->gid;
    st->st_size = MAX(size, 0);
    st->st_blksize = 4096;
    /* du shows what the image takes on the host, as with qemu. */
    st->st_blocks = ((alloc >= 0 ? alloc : st->st_size) + 511) / 512;
    st->st_atime = st->st_mtime = st->st_ctime = fe->start_time;
}

static void ops_dir_stat(FuseExport *fe, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = FUSE_EXPORT_DIR_INO;
    st->st_mode = S_IFDIR | (fe->allow_other ? 0755 : 0700);
    st->st_nlink = 2;
    st->st_uid = fe->uid;
    st->st_gid = fe->gid;
    st->st_atime = st->st_mtime = st->st_ctime = fe->start_time;
}

/* Kernel requests name the file by inode; anything else is the
 * directory (dir_mode) or does not exist. */
static bool ops_is_file(FuseExport *fe, fuse_ino_t ino)
{
    return ino == fe->file_ino;
}

static bool ops_is_dir(FuseExport *fe, fuse_ino_t ino)
{
    return fe->dir_mode && ino == FUSE_EXPORT_DIR_INO;
}

/* The node's size for a request at off (one that writes when write is
 * true), or -1 once the error is replied: a write to a read-only export,
 * no size, a negative offset. */
static int64_t ops_size_at(fuse_req_t req, FuseExport *fe, off_t off,
                           bool write)
{
    if (write && fe->readonly) {
        ops_reply_err(req, fe, EROFS);
        return -1;
    }
    int64_t len = bh_node_size(fe->node);
    if (len < 0) {
        ops_reply_err(req, fe, (int)-len);
        return -1;
    }
    if (off < 0) {
        ops_reply_err(req, fe, EINVAL);
        return -1;
    }
    return len;
}

static void ops_init(void *userdata, struct fuse_conn_info *conn)
{
    /* Requests are copied into the session buffer by read(); splicing
     * brings nothing when the data goes on to bh_node_pwrite. */
    conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
                    FUSE_CAP_SPLICE_MOVE);
}

static void ops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    FuseExport *fe = ops_begin(req);
    if (!ops_is_dir(fe, parent) || strcmp(name, fe->file_name) != 0) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct fuse_entry_param e = {
        .ino = fe->file_ino,
        .attr_timeout = OPS_ATTR_TIMEOUT,
        .entry_timeout = OPS_ATTR_TIMEOUT,
    };
    ops_file_stat(fe, &e.attr);
    fuse_reply_entry(req, &e);
}

static void ops_getattr(fuse_req_t req, fuse_ino_t ino,
                        struct fuse_file_info *fi)
{
    FuseExport *fe = ops_begin(req);
    struct stat st;
    if (ops_is_file(fe, ino))
        ops_file_stat(fe, &st);
    else if (ops_is_dir(fe, ino))
        ops_dir_stat(fe, &st);
    else {
        ops_reply_err(req, fe, ENOENT);
        return;
    }
    fuse_reply_attr(req, &st, OPS_ATTR_TIMEOUT);
}

static void ops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
                        off_t off, struct fuse_file_info *fi)
{
    FuseExport *fe = ops_begin(req);
    if (!ops_is_dir(fe, ino)) {
        ops_reply_err(req, fe, ENOTDIR);
        return;
    }
    const char *names[] = { ".", "..", fe->file_name };
    const fuse_ino_t inos[] = { FUSE_EXPORT_DIR_INO, FUSE_EXPORT_DIR_INO,
                                fe->file_ino };
    char buf[1024];
    size_t room = MIN(size, sizeof(buf)), used = 0;

    for (off_t i = MAX(off, 0); i < 3; i++) {
        struct stat st = {
            .st_ino = inos[i],
            .st_mode = i < 2 ? S_IFDIR : S_IFREG,
        };
        size_t need = fuse_add_direntry(req, buf + used, room - used,
                                        names[i], &st, i + 1);
        if (need > room - used)
            break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
}

/* Resize the node; ENOTSUP (the driver cannot) becomes EPERM, as
 * truncate(2) puts it. */
static int ops_truncate(FuseExport *fe, uint64_t size)
{
    int r = bh_node_truncate(fe->node, size, NULL);
    if (r == -ENOTSUP)
        return EPERM;
    if (r < 0)
        return -r;
    g_atomic_int_set(&fe->dirty, 1);
    return 0;
}

static void ops_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                        int to_set, struct fuse_file_info *fi)
{
    FuseExport *fe = ops_begin(req);
    /* Times are the export's start time and setting them does nothing,
     * so that touch and cp -p work. */
    const int times = FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
                      FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW |
                      FUSE_SET_ATTR_CTIME;
    const int known = times | FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE |
                      FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID;

    if (!ops_is_file(fe, ino) && !ops_is_dir(fe, ino)) {
        ops_reply_err(req, fe, ENOENT);
        return;
    }
    if (to_set & ~known) {
        ops_reply_err(req, fe, EOPNOTSUPP);
        return;
    }
    /* chown to someone else would need a real owner to keep. */
    if (((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != fe->uid) ||
        ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != fe->gid)) {
        ops_reply_err(req, fe, EPERM);
        return;
    }
    if (ops_is_dir(fe, ino)) {
        if (to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE)) {
            ops_reply_err(req, fe, EPERM);
            return;
        }
        struct stat st;
        ops_dir_stat(fe, &st);
        fuse_reply_attr(req, &st, OPS_ATTR_TIMEOUT);
        return;
    }
    if (to_set & FUSE_SET_ATTR_MODE) {
        if (fe->readonly && (attr->st_mode & 0222)) {
            ops_reply_err(req, fe, EROFS);
            return;
        }
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        if (fe->readonly) {
            ops_reply_err(req, fe, EROFS);
            return;
        }
        int err = ops_truncate(fe, (uint64_t)attr->st_size);
        if (err) {
            ops_reply_err(req, fe, err);
            return;
        }
    }
    if (to_set & FUSE_SET_ATTR_MODE) {
        g_mutex_lock(&fe->lock);
        fe->mode = attr->st_mode & 07777;
        g_mutex_unlock(&fe->lock);
    }
    struct stat st;
    ops_file_stat(fe, &st);
    fuse_reply_attr(req, &st, OPS_ATTR_TIMEOUT);
}

static void ops_open(fuse_req_t req, fuse_ino_t ino,
                     struct fuse_file_info *fi)
{
    FuseExport *fe = ops_begin(req);
    if (!ops_is_file(fe, ino)) {
        ops_reply_err(req, fe, ops_is_dir(fe, ino) ? EISDIR : ENOENT);
        return;
    }
    if (fe->readonly && (fi->flags & O_ACCMODE) != O_RDONLY) {
        ops_reply_err(req, fe, EROFS);
        return;
    }
    /* The page cache is dropped at each open: the node may have been
     * written through another frontend since. */
    fi->keep_cache = 0;
    fuse_reply_open(req, fi);
}

static void ops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    FuseExport *fe = ops_begin(req);
    int64_t len = ops_size_at(req, fe, off, false);

    if (len < 0)
        return;
    if (off >= len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size = (size_t)MIN((uint64_t)size, (uint64_t)(len - off));
    void *buf = ops_buffer(size);
    if (!buf) {
        ops_reply_err(req, fe, ENOMEM);
        return;
    }
    int r = bh_node_pread(fe->node, buf, (uint64_t)off, size, 0, NULL);
    if (r < 0) {
        ops_reply_err(req, fe, -r);
        return;
    }
    __atomic_add_fetch(&fe->stats.bytes_read, size, __ATOMIC_RELAXED);
    fuse_reply_buf(req, buf, size);
}

static void ops_write(fuse_req_t req, fuse_ino_t ino, const char *data,
                      size_t size, off_t off, struct fuse_file_info *fi)
{
    FuseExport *fe = ops_begin(req);
    int64_t len = ops_size_at(req, fe, off, true);

    if (len < 0)
        return;
    /* A disk does not grow by writing past its end. */
    if (off >= len) {
        if (size)
            ops_reply_err(req, fe, ENOSPC);
        else
            fuse_reply_write(req, 0);
        return;
    }
    size = (size_t)MIN((uint64_t)size, (uint64_t)(len - off));
    int r = bh_node_pwrite(fe->node, data, (uint64_t)off, size, 0, NULL);
    if (r < 0) {
        ops_reply_err(req, fe, -r);
        return;
    }
    g_atomic_int_set(&fe->dirty, 1);
    __atomic_add_fetch(&fe->stats.bytes_written, size, __ATOMIC_RELAXED);
    fuse_reply_write(req, size);
}

static int ops_do_flush(FuseExport *fe)
{
    g_atomic_int_set(&fe->dirty, 0);
    int r = bh_node_flush(fe->node, NULL);
    if (r < 0) {
        /* Still unflushed: the next close or fsync tries again. */
        g_atomic_int_set(&fe->dirty, 1);
        return -r;
    }
    return 0;
}

/* Sent at each close(): its error is close()'s, the last chance to tell
 * the program its writes did not make it. */
static void ops_flush(fuse_req_t req, fuse_ino_t ino,
                      struct fuse_file_info *fi)
{
    FuseExport *fe = ops_begin(req);
    int err = 0;
    if (!fe->readonly && g_atomic_int_get(&fe->dirty))
        err = ops_do_flush(fe);
    ops_reply_err(req, fe, err);
}

static void ops_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                      struct fuse_file_info *fi)
{
    FuseExport *fe = ops_begin(req);
    ops_reply_err(req, fe, fe->readonly ? 0 : ops_do_flush(fe));
}

static void ops_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
                          off_t off, off_t length, struct fuse_file_info *fi)
{
    FuseExport *fe = ops_begin(req);
    const int known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE |
                      FALLOC_FL_ZERO_RANGE;
    int r = 0;
    int64_t len = ops_size_at(req, fe, off, true);

    if (len < 0)
        return;
    if (length <= 0 || off > INT64_MAX - length) {
        ops_reply_err(req, fe, EINVAL);
        return;
    }
    if (mode & ~known) {
        ops_reply_err(req, fe, EOPNOTSUPP);
        return;
    }
    uint64_t start = (uint64_t)off, end = (uint64_t)(off + length);
    uint64_t size = (uint64_t)len;

    if (mode & FALLOC_FL_PUNCH_HOLE) {
        if (!(mode & FALLOC_FL_KEEP_SIZE) || (mode & FALLOC_FL_ZERO_RANGE)) {
            ops_reply_err(req, fe, EINVAL);
            return;
        }
        if (start < size)
            r = bh_node_write_zeroes(fe->node, start, MIN(end, size) - start,
                                     BH_IO_MAY_UNMAP, NULL);
    } else if (mode & FALLOC_FL_ZERO_RANGE) {
        /* Grown space reads as zeros already: zero only the old part. */
        if (!(mode & FALLOC_FL_KEEP_SIZE) && end > size) {
            int err = ops_truncate(fe, end);
            if (err) {
                ops_reply_err(req, fe, err);
                return;
            }
        }
        if (start < size)
            r = bh_node_write_zeroes(fe->node, start, MIN(end, size) - start,
                                     0, NULL);
    } else {
        /* Plain allocation: only past the end, by growing. */
        if ((mode & FALLOC_FL_KEEP_SIZE) || start < size) {
            ops_reply_err(req, fe, EOPNOTSUPP);
            return;
        }
        int err = ops_truncate(fe, end);
        if (err) {
            ops_reply_err(req, fe, err);
            return;
        }
    }
    if (r == -ENOTSUP)
        r = -EOPNOTSUPP;
    if (r == 0)
        g_atomic_int_set(&fe->dirty, 1);
    ops_reply_err(req, fe, -r);
}

static void ops_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                      struct fuse_file_info *fi)
{
    FuseExport *fe = ops_begin(req);
    int64_t len = bh_node_size(fe->node);

    /* The kernel answers SEEK_SET, SEEK_CUR and SEEK_END itself. */
    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
        ops_reply_err(req, fe, EINVAL);
        return;
    }
    if (len < 0) {
        ops_reply_err(req, fe, (int)-len);
        return;
    }
    if (off < 0 || off >= len) {
        ops_reply_err(req, fe, ENXIO);
        return;
    }
    uint64_t pos = (uint64_t)off, size = (uint64_t)len;
    while (pos < size) {
        uint64_t pnum = 0;
        uint32_t status = 0;
        int r = bh_node_block_status(fe->node, pos, size - pos, &pnum,
                                     &status, NULL);
        if (r < 0) {
            ops_reply_err(req, fe, -r);
            return;
        }
        bool hole = status & BH_BLOCK_HOLE;
        if (hole == (whence == SEEK_HOLE)) {
            fuse_reply_lseek(req, (off_t)pos);
            return;
        }
        pos += MAX(pnum, 1);
    }
    /* No data up to the end; the end itself is a hole. */
    if (whence == SEEK_DATA)
        ops_reply_err(req, fe, ENXIO);
    else
        fuse_reply_lseek(req, (off_t)size);
}

const struct fuse_lowlevel_ops fuse_export_ops = {
    .init = ops_init,
    .lookup = ops_lookup,
    .getattr = ops_getattr,
    .setattr = ops_setattr,
    .readdir = ops_readdir,
    .open = ops_open,
    .read = ops_read,
    .write = ops_write,
    .flush = ops_flush,
    .fsync = ops_fsync,
    .fallocate = ops_fallocate,
    .lseek = ops_lseek,
};
