/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The ioctl interface to the kernel's nbd driver, used when the netlink
 * family is missing or when asked for (interface=ioctl).
 *
 * The device stays connected only while some thread sits in NBD_DO_IT on
 * an open fd of it, so connecting starts that thread; the ioctl returns
 * when the device is disconnected (NBD_DISCONNECT from anyone, or every
 * connection dead), after which the sockets are cleared.  The ioctl
 * numbers are spelt out here because <linux/nbd.h>'s names clash with
 * the protocol constants used elsewhere in this plugin.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "nbd-kernel.h"
#include <blkhost/glib.h>

#define NBD_IOC_SET_SOCK      _IO(0xab, 0)
#define NBD_IOC_SET_BLKSIZE   _IO(0xab, 1)
#define NBD_IOC_SET_SIZE      _IO(0xab, 2)
#define NBD_IOC_DO_IT         _IO(0xab, 3)
#define NBD_IOC_CLEAR_SOCK    _IO(0xab, 4)
#define NBD_IOC_DISCONNECT    _IO(0xab, 8)
#define NBD_IOC_SET_TIMEOUT   _IO(0xab, 9)
#define NBD_IOC_SET_FLAGS     _IO(0xab, 10)

struct NbdIoctl {
    int fd;
    GThread *thread;
    gint done;
    int err;
    void (*on_done)(void *opaque);
    void *opaque;
};

static gpointer doit_thread(gpointer data)
{
    NbdIoctl *io = data;
    int r = ioctl(io->fd, NBD_IOC_DO_IT);
    io->err = r < 0 ? errno : 0;
    ioctl(io->fd, NBD_IOC_CLEAR_SOCK);
    g_atomic_int_set(&io->done, 1);
    if (io->on_done)
        io->on_done(io->opaque);
    return NULL;
}

NbdIoctl *nbd_ioctl_connect(const char *device, const NbdKernelParams *p,
                            void (*done)(void *opaque), void *opaque,
                            BhError **errp)
{
    int fd = open(device, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        nbd_dev_perm_error(errp, errno, "cannot open", device);
        return NULL;
    }
    const char *step = "NBD_SET_BLKSIZE";
    if (ioctl(fd, NBD_IOC_SET_BLKSIZE, (unsigned long)p->block_size) < 0)
        goto fail;
    step = "NBD_SET_SIZE";
    if (ioctl(fd, NBD_IOC_SET_SIZE, (unsigned long)p->size) < 0)
        goto fail;
    step = "NBD_SET_TIMEOUT";
    if (p->timeout && ioctl(fd, NBD_IOC_SET_TIMEOUT,
                            (unsigned long)p->timeout) < 0)
        goto fail;
    step = "NBD_SET_FLAGS";
    if (ioctl(fd, NBD_IOC_SET_FLAGS, (unsigned long)p->server_flags) < 0)
        goto fail;
    step = "NBD_SET_SOCK";
    for (unsigned i = 0; i < p->nfds; i++)
        if (ioctl(fd, NBD_IOC_SET_SOCK, (unsigned long)p->fds[i]) < 0)
            goto fail;

    NbdIoctl *io = g_new0(NbdIoctl, 1);
    io->fd = fd;
    io->on_done = done;
    io->opaque = opaque;
    GError *gerr = NULL;
    io->thread = g_thread_try_new("nbd-do-it", doit_thread, io, &gerr);
    if (!io->thread) {
        bh_error_take_gerror(errp, gerr, EAGAIN);
        ioctl(fd, NBD_IOC_CLEAR_SOCK);
        close(fd);
        g_free(io);
        return NULL;
    }
    return io;

fail:;
    int e = errno;
    ioctl(fd, NBD_IOC_CLEAR_SOCK);
    close(fd);
    if (e == EBUSY)
        bh_error_set(errp, EBUSY, "%s is already connected (%s: device "
                     "busy)", device, step);
    else {
        g_autofree char *what = g_strdup_printf("%s failed on", step);
        nbd_dev_perm_error(errp, e, what, device);
    }
    return NULL;
}

bool nbd_ioctl_done(NbdIoctl *io, int *err)
{
    if (!g_atomic_int_get(&io->done))
        return false;
    if (err)
        *err = io->err;
    return true;
}

void nbd_ioctl_disconnect_and_free(NbdIoctl *io)
{
    if (!io)
        return;
    if (!g_atomic_int_get(&io->done))
        ioctl(io->fd, NBD_IOC_DISCONNECT);
    g_thread_join(io->thread);
    close(io->fd);
    g_free(io);
}

int nbd_ioctl_disconnect(const char *device, BhError **errp)
{
    int fd = open(device, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return nbd_dev_perm_error(errp, errno, "cannot open", device);
    int r = ioctl(fd, NBD_IOC_DISCONNECT);
    int e = errno;
    if (r == 0)
        ioctl(fd, NBD_IOC_CLEAR_SOCK);
    close(fd);
    if (r < 0)
        return nbd_dev_perm_error(errp, e, "NBD_DISCONNECT failed on",
                                  device);
    return 0;
}
