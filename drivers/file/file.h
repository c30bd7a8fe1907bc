/*
 * State shared by the two halves of the file driver: file.c (open, close,
 * metadata operations, the descriptor) and file-io.c (the read and write
 * paths, including the O_DIRECT bounce buffer for unaligned requests) and
 * file-aio.c (aio=native through Linux AIO).
 */
#ifndef BH_DRIVERS_FILE_H
#define BH_DRIVERS_FILE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <glib.h>

#include <blkhost/driver.h>

typedef struct FileAio FileAio;

typedef struct FileState {
    int fd;
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
} FileState;

/* Raise the cached size to at least end (writes that extend the file). */
void file_size_grow(FileState *s, int64_t end);

/* aio=native (file-aio.c). */
int file_aio_init(FileState *s, BhError **errp);
void file_aio_cleanup(FileState *s);
ssize_t file_aio_rw(FileState *s, bool write, void *buf, size_t len,
                    uint64_t off, bool dsync);

int file_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
               uint32_t flags, BhError **errp);
int file_pwrite(BhNode *bs, const void *buf, uint64_t offset, size_t len,
                uint32_t flags, BhError **errp);

#endif
