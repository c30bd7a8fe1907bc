/*
 * SPDX-License-Identifier: BSD-3-Clause
 *
 * The fuse frontend plugin's shared state: one BhExport shown as one
 * regular file through the kernel's FUSE, as qemu-storage-daemon's
 * `--export type=fuse` does.  fuse-export.c owns the life cycle (mount,
 * worker threads, unmount); fuse-ops.c answers the kernel's requests on
 * the node.  Not installed.
 */
#ifndef BLKHOST_FUSE_EXPORT_H
#define BLKHOST_FUSE_EXPORT_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <sys/types.h>

#include <blkhost/blkhost.h>

/* The inode of the exported file.  Over a regular file it is the root of
 * the mount; over a directory the root is a directory holding it. */
#define FUSE_EXPORT_DIR_INO  FUSE_ROOT_ID
#define FUSE_EXPORT_FILE_DIR_INO 2

typedef struct FuseExport {
    GMutex lock;
    BhExport *exp;          /* the one export; NULL until add_export */
    char *mountpoint;       /* as given */
    bool allow_other;
    unsigned nthreads;      /* 0: choose at start */

    /* Set at start, read-only afterwards (the request handlers read them
     * without the lock). */
    BhNode *node;           /* exp->node, borrowed */
    bool readonly;
    bool dir_mode;          /* mounted over a directory */
    fuse_ino_t file_ino;    /* FUSE_ROOT_ID, or FUSE_EXPORT_FILE_DIR_INO */
    char *file_name;        /* the file's name in dir_mode */
    uid_t uid;
    gid_t gid;
    time_t start_time;

    /* Changed by requests. */
    mode_t mode;            /* permission bits (chmod), under lock */
    gint dirty;             /* written since the last flush */

    struct fuse_session *se;
    GThread **workers;
    unsigned nworkers;
    int stop_fd;            /* eventfd: non-zero once workers must end */
    gint quit;              /* workers must end (set before stop_fd) */
    bool started, stopping, stopped, holding, gone;

    struct {
        uint64_t requests, bytes_read, bytes_written, errors;
    } stats;                /* atomics */
} FuseExport;

/* The request handlers (fuse-ops.c). */
extern const struct fuse_lowlevel_ops fuse_export_ops;

#endif
