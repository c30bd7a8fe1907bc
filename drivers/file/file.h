/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * State shared by the parts of the file driver: file.c (open, close,
 * metadata operations, the descriptor) and file-io.c (the read and write
 * paths, including the O_DIRECT bounce buffer for unaligned requests) and
 * file-aio.c (aio=native through Linux AIO), file-uring.c (aio=io_uring)
 * and file-submit.c (the asynchronous entry point, BhDriver.submit).
 */
#ifndef BH_DRIVERS_FILE_H
#define BH_DRIVERS_FILE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <glib.h>
#include <linux/aio_abi.h>

#include <blkhost/driver.h>

typedef struct FileAio FileAio;
typedef struct FileAioQueue FileAioQueue;
typedef struct FileUring FileUring;

/* aio=: how requests reach the kernel (the names' order is the option's). */
typedef enum {
    FILE_AIO_THREADS,   /* pread/pwrite on the submitting thread */
    FILE_AIO_NATIVE,    /* Linux AIO (io_submit), needs O_DIRECT */
    FILE_AIO_IO_URING,  /* io_uring */
    FILE_AIO_AUTO,      /* not given: the best the kernel allows */
} FileAioMode;

typedef struct FileState {
    int fd;
    int buffered_fd;       /* O_DIRECT, read-write: the same file without
                            * O_DIRECT, for unaligned writes at its end */
    char *filename;
    bool is_blockdev;
    bool growable;
    bool direct;           /* opened with O_DIRECT */
    uint32_t sector;       /* block devices: logical block size */
    uint32_t align;        /* offset/length alignment O_DIRECT needs (1 without) */
    uint32_t mem_align;    /* buffer alignment O_DIRECT needs (1 without) */
    _Atomic int64_t size;  /* cached length, see file_get_length() */
    atomic_bool no_dsync;  /* pwritev2(RWF_DSYNC) unsupported: write + fdatasync */
    /* Serializes read-modify-write cycles of unaligned O_DIRECT writes, so
     * two writes sharing one aligned block cannot undo each other. */
    GMutex rmw_lock;
    FileAio *aio;          /* aio=native: Linux AIO contexts; NULL: threads */
    FileAioMode mode;      /* what aio= resolved to at open */
    FileAioQueue *aioq;    /* aio=native: the queue submit uses */
    FileUring *uring;      /* aio=io_uring: the ring submit uses */
} FileState;

/*
 * One read, write or flush queued to the kernel by submit (file-submit.c
 * builds it, a backend moves it).  iov is the part still to transfer: a
 * short transfer advances it and the backend queues the rest.
 */
typedef struct FileIo {
    BhRequest *req;
    FileState *s;
    BhOp op;
    bool dsync;            /* RWF_DSYNC on this write */
    bool sync_after;       /* RWF_DSYNC was refused: fdatasync at the end */
    uint64_t offset;       /* of the next transfer */
    uint64_t left;         /* bytes still to transfer */
    int niov;
    struct iovec *iov;     /* points into iov_store */
    struct iocb cb;        /* aio=native */
    struct iovec iov_store[];
} FileIo;

/* Raise the cached size to at least end (writes that extend the file). */
void file_size_grow(FileState *s, int64_t end);

/* aio=native (file-aio.c). */
int file_aio_init(FileState *s, BhError **errp);
void file_aio_cleanup(FileState *s);
ssize_t file_aio_rw(FileState *s, bool write, void *buf, size_t len,
                    uint64_t off, bool dsync);

/* aio=native as a queue with a completion thread (file-aio.c). */
int file_aio_queue_init(FileState *s, BhError **errp);
void file_aio_queue_cleanup(FileState *s);
void file_aio_queue_submit(FileState *s, FileIo *io);

/* aio=io_uring (file-uring.c): init fails with -ENOTSUP when the build has
 * no liburing, and with the kernel's error when the ring is refused. */
int file_uring_init(FileState *s, BhError **errp);
void file_uring_cleanup(FileState *s);
void file_uring_submit(FileState *s, FileIo *io);

/* The submit callback and the backends' completion step (file-submit.c):
 * file_io_finish takes a transfer's result and returns true when the
 * request is complete (io freed), false when io now describes the rest,
 * to be queued again. */
void file_submit(BhNode *bs, BhRequest *req);
bool file_io_finish(FileIo *io, ssize_t res);

/* The synchronous callbacks of file.c that submit falls back on. */
int file_flush(BhNode *bs, BhError **errp);
int file_discard(BhNode *bs, uint64_t offset, uint64_t len, BhError **errp);
int file_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                      uint32_t flags, BhError **errp);

int file_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
               uint32_t flags, BhError **errp);
int file_pwrite(BhNode *bs, const void *buf, uint64_t offset, size_t len,
                uint32_t flags, BhError **errp);

#endif
