/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internals of the nbd-kernel frontend: the pieces that talk to the
 * kernel's nbd driver, shared by the frontend (nbd-kernel.c, which also
 * runs the persist monitor) and its control commands (api.c), which the
 * Lua binding reaches through bh_frontend_control().
 *
 *   device.c   /dev/nbdN paths, sysfs state, partition re-read
 *   netlink.c  the generic-netlink family "nbd" (raw netlink, no libnl)
 *   ioctl.c    the older ioctl interface (NBD_SET_SOCK ... NBD_DO_IT)
 *
 * Nothing here includes nbd-proto.h, whose names clash with
 * <linux/nbd.h>.
 */
#ifndef NBD_KERNEL_H
#define NBD_KERNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <blkhost/blkhost.h>

/* ---- device.c ---- */

/* Index N of an NBD device path (/dev/nbdN or a link to it).  Errors:
 * ENOENT (no such file), ENOTBLK (not an NBD block device), ENODEV (the
 * nbd module is not loaded). */
int nbd_dev_resolve(const char *path, BhError **errp);
/* The contents of /sys/block/nbdN/FILE without the newline, or NULL. */
char *nbd_dev_sysfs(int index, const char *file);
/* pid of the process that connected the device, 0 when not connected. */
int64_t nbd_dev_pid(int index);
/* Size the kernel shows, in bytes (0 when not connected). */
uint64_t nbd_dev_size(int index);
/* Facts for devices() and status(): device, index, connected, size, pid,
 * backend, readonly. */
void nbd_dev_info(int index, BhInfo *info);
/* Every nbdN under /sys/block, sorted by N: BhInfo items as above. */
GPtrArray *nbd_dev_list(void);
/* Ask the kernel to re-read the partition table; errors are ignored
 * because a device with a mounted filesystem refuses (EBUSY). */
void nbd_dev_reread_partitions(int index);
/* A message that turns EPERM/EACCES into "needs root". */
int nbd_dev_perm_error(BhError **errp, int err, const char *what,
                       const char *device);

/* ---- netlink.c ---- */

typedef struct NbdNl NbdNl;

/* Resolve the "nbd" family.  Returns NULL with ENOENT when the kernel
 * has no such family (old kernel): callers fall back to ioctls. */
NbdNl *nbd_nl_open(BhError **errp);
void nbd_nl_close(NbdNl *nl);

typedef struct NbdKernelParams {
    int index;
    uint64_t size;
    uint64_t block_size;
    uint64_t timeout;        /* seconds, 0: the kernel's default */
    uint64_t dead_timeout;   /* seconds, 0: fail I/O at once */
    uint64_t server_flags;   /* NBD transmission flags */
    const int *fds;
    unsigned nfds;
    const char *backend;     /* shown in /sys/block/nbdN/backend */
} NbdKernelParams;

int nbd_nl_connect(NbdNl *nl, const NbdKernelParams *p, BhError **errp);
int nbd_nl_disconnect(NbdNl *nl, int index, BhError **errp);
int nbd_nl_reconfigure(NbdNl *nl, int index, const int *fds, unsigned nfds,
                       const char *backend, BhError **errp);
/* Join the multicast group that reports dead links. */
int nbd_nl_subscribe(NbdNl *nl, BhError **errp);
int nbd_nl_fd(NbdNl *nl);
/* Read one pending message; the index of a LINK_DEAD event, or -1. */
int nbd_nl_read_event(NbdNl *nl);

/* ---- ioctl.c ---- */

typedef struct NbdIoctl NbdIoctl;

/* Configure the device and start the thread that sits in NBD_DO_IT;
 * done(opaque) runs on that thread when NBD_DO_IT returns. */
NbdIoctl *nbd_ioctl_connect(const char *device, const NbdKernelParams *p,
                            void (*done)(void *opaque), void *opaque,
                            BhError **errp);
/* True once NBD_DO_IT returned (the device was disconnected, or failed
 * to start: *err then holds the errno). */
bool nbd_ioctl_done(NbdIoctl *io, int *err);
/* NBD_DISCONNECT through the open fd, then join the thread. */
void nbd_ioctl_disconnect_and_free(NbdIoctl *io);
/* Disconnect a device connected by anyone, through a fresh fd. */
int nbd_ioctl_disconnect(const char *device, BhError **errp);

/* ---- api.c ---- */

/* Disconnect /dev/nbdN whoever connected it: netlink, else ioctl. */
int nbd_kernel_disconnect(const char *device, BhError **errp);
/* BhFrontend.control: disconnect, devices, list. */
int nbd_kernel_control(const char *command, BhOpts *args, BhInfoList *reply,
                       BhError **errp);

#endif
