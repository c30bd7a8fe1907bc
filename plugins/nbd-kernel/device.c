/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NBD device paths and what sysfs says about them.
 *
 * A device is named by its path (/dev/nbd0, or a link to it); the kernel
 * interfaces want its index.  The path must be a block device whose
 * major is the nbd driver's (43, read from /sys/block/nbdN/dev rather than
 * assumed).  "Connected" is what the kernel shows: /sys/block/nbdN/pid
 * exists from the moment a device starts until its configuration is
 * released, for both the netlink and the ioctl interface.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "nbd-kernel.h"
#include <blkhost/glib.h>

char *nbd_dev_sysfs(int index, const char *file)
{
    g_autofree char *path = g_strdup_printf("/sys/block/nbd%d/%s", index,
                                            file);
    char *s = NULL;
    if (!g_file_get_contents(path, &s, NULL, NULL))
        return NULL;
    g_strchomp(s);
    return s;
}

int nbd_dev_perm_error(BhError **errp, int err, const char *what,
                       const char *device)
{
    if (err == EPERM || err == EACCES)
        return bh_error_set(errp, EPERM, "%s %s: %s; attaching and "
                            "detaching NBD devices needs root "
                            "(CAP_SYS_ADMIN)", what, device,
                            g_strerror(err));
    return bh_error_set_errno(errp, err, "%s %s", what, device);
}

int nbd_dev_resolve(const char *path, BhError **errp)
{
    struct stat st;
    if (!path || !*path)
        return bh_error_set(errp, EINVAL, "no NBD device given: expected "
                            "a path such as /dev/nbd0");
    if (stat(path, &st) < 0) {
        if (errno == ENOENT && g_str_has_prefix(path, "/dev/nbd") &&
            access("/sys/module/nbd", F_OK) < 0)
            return bh_error_set(errp, ENODEV, "%s does not exist: the nbd "
                                "kernel module is not loaded (modprobe nbd)",
                                path);
        return bh_error_set_errno(errp, errno, "NBD device %s", path);
    }
    if (!S_ISBLK(st.st_mode))
        return bh_error_set(errp, ENOTBLK, "%s is not an NBD device (not a "
                            "block device); expected a path such as "
                            "/dev/nbd0", path);
    g_autofree char *link = g_strdup_printf("/sys/dev/block/%u:%u",
                                            major(st.st_rdev),
                                            minor(st.st_rdev));
    g_autofree char *target = realpath(link, NULL);
    const char *base = target ? strrchr(target, '/') : NULL;
    int index = -1;
    if (base && g_str_has_prefix(base, "/nbd")) {
        char *end;
        long n = strtol(base + 4, &end, 10);
        if (end != base + 4 && !*end && n >= 0 && n < INT32_MAX)
            index = (int)n;
    }
    if (index < 0) {
        if (base && strstr(base, "nbd") && strchr(base, 'p'))
            return bh_error_set(errp, ENOTBLK, "%s is a partition of an "
                                "NBD device; give the whole device "
                                "(e.g. /dev/nbd0)", path);
        return bh_error_set(errp, ENOTBLK, "%s is not an NBD device (it "
                            "is %s); expected a path such as /dev/nbd0",
                            path, base ? base + 1 : "an unknown device");
    }
    return index;
}

int64_t nbd_dev_pid(int index)
{
    g_autofree char *s = nbd_dev_sysfs(index, "pid");
    return s ? g_ascii_strtoll(s, NULL, 10) : 0;
}

uint64_t nbd_dev_size(int index)
{
    g_autofree char *s = nbd_dev_sysfs(index, "size");
    return s ? g_ascii_strtoull(s, NULL, 10) * 512 : 0;
}

void nbd_dev_info(int index, BhInfo *info)
{
    g_autofree char *dev = g_strdup_printf("/dev/nbd%d", index);
    g_autofree char *backend = nbd_dev_sysfs(index, "backend");
    g_autofree char *ro = nbd_dev_sysfs(index, "ro");
    int64_t pid = nbd_dev_pid(index);
    bh_info_add_str(info, "device", dev);
    bh_info_add_int(info, "index", index);
    bh_info_add_bool(info, "connected", pid > 0);
    bh_info_add_int(info, "size", (int64_t)nbd_dev_size(index));
    bh_info_add_int(info, "pid", pid);
    bh_info_add_str(info, "backend", backend ? backend : "");
    bh_info_add_bool(info, "readonly", ro && strcmp(ro, "1") == 0);
}

static gint index_cmp(gconstpointer a, gconstpointer b)
{
    return *(const int *)a - *(const int *)b;
}

GPtrArray *nbd_dev_list(void)
{
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)
                                                    bh_info_free);
    g_autoptr(GArray) idx = g_array_new(FALSE, FALSE, sizeof(int));
    DIR *d = opendir("/sys/block");
    if (!d)
        return out;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (!g_str_has_prefix(e->d_name, "nbd"))
            continue;
        long n = strtol(e->d_name + 3, &end, 10);
        if (end == e->d_name + 3 || *end || n < 0)
            continue;
        int i = (int)n;
        g_array_append_val(idx, i);
    }
    closedir(d);
    g_array_sort(idx, index_cmp);
    for (guint i = 0; i < idx->len; i++) {
        BhInfo *info = bh_info_new();
        nbd_dev_info(g_array_index(idx, int, i), info);
        g_ptr_array_add(out, info);
    }
    return out;
}

void nbd_dev_reread_partitions(int index)
{
    g_autofree char *dev = g_strdup_printf("/dev/nbd%d", index);
    /* Opening the device is itself what makes recent kernels scan a
     * freshly sized disk; BLKRRPART covers the older ones. */
    int fd = open(dev, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ioctl(fd, BLKRRPART, 0);
    close(fd);
}
