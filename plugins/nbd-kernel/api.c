/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The nbd-kernel plugin's control commands (BhFrontend.control), what
 * scripts call without a device of their own:
 *   disconnect device=/dev/nbdN   whoever attached it
 *   devices                       every NBD device, one record each
 *   list uri=nbd://...            a server's exports, one record each
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "nbd-client.h"
#include "nbd-kernel.h"
#include <blkhost/glib.h>

int nbd_kernel_disconnect(const char *device, BhError **errp)
{
    int index = nbd_dev_resolve(device, errp);
    if (index < 0)
        return index;
    if (nbd_dev_pid(index) <= 0)
        return bh_error_set(errp, ENOTCONN, "%s is not connected", device);
    BhError *err = NULL;
    NbdNl *nl = nbd_nl_open(&err);
    int r;
    if (nl) {
        r = nbd_nl_disconnect(nl, index, errp);
        nbd_nl_close(nl);
    } else if ((bh_error_errno(err) == ENOENT)) {
        bh_error_clear(&err);
        r = nbd_ioctl_disconnect(device, errp);
    } else {
        bh_error_propagate(errp, err);
        return -EIO;
    }
    if (r < 0)
        return r;
    /* The configuration goes when the kernel's receive workers end. */
    for (int i = 0; i < 1000 && nbd_dev_pid(index) > 0; i++)
        g_usleep(5000);
    return 0;
}

static void list_one(void *ctx, const char *name, const char *desc,
                     const NbdClientExport *ex)
{
    BhInfo *info = bh_info_new();
    bh_info_add_str(info, "name", name);
    if (desc)
        bh_info_add_str(info, "description", desc);
    if (ex) {
        bh_info_add_int(info, "size", (int64_t)ex->size);
        bh_info_add_int(info, "flags", ex->tflags);
        bh_info_add_bool(info, "readonly", ex->tflags & NBD_FLAG_READ_ONLY);
        bh_info_add_bool(info, "multi_conn",
                         ex->tflags & NBD_FLAG_CAN_MULTI_CONN);
        bh_info_add_int(info, "min_block", ex->min_block);
        bh_info_add_int(info, "pref_block", ex->pref_block);
        bh_info_add_int(info, "max_block", ex->max_block);
        if (ex->meta_contexts) {
            /* BhInfo holds no lists: one name per line. */
            g_autofree char *all = g_strjoinv("\n", ex->meta_contexts);
            bh_info_add_str(info, "meta_contexts", all);
        }
    }
    bh_info_list_append(ctx, info);
}

static int api_list(const char *uri, BhInfoList *reply, BhError **errp)
{
    NbdUri u;
    if (!nbd_uri_parse(uri, &u, errp))
        return -EINVAL;
    int fd = nbd_uri_connect(&u, errp);
    nbd_uri_clear(&u);
    if (fd < 0)
        return fd;
    int r = nbd_client_list_info(fd, list_one, reply, errp);
    close(fd);
    return r;
}

/* A required string argument of a control command. */
static const char *api_arg(BhOpts *args, const char *command,
                           const char *key, BhError **errp)
{
    const char *v = bh_opts_get(args, key);
    if (!v || !*v)
        bh_error_set(errp, EINVAL, "nbd-kernel %s needs %s=", command, key);
    return v && *v ? v : NULL;
}

int nbd_kernel_control(const char *command, BhOpts *args, BhInfoList *reply,
                       BhError **errp)
{
    if (strcmp(command, "disconnect") == 0) {
        const char *device = api_arg(args, command, "device", errp);
        return device ? nbd_kernel_disconnect(device, errp) : -EINVAL;
    }
    if (strcmp(command, "devices") == 0) {
        g_autoptr(GPtrArray) all = nbd_dev_list();
        for (guint i = 0; i < all->len; i++)
            bh_info_list_append(reply, g_steal_pointer(&all->pdata[i]));
        return 0;
    }
    if (strcmp(command, "list") == 0) {
        const char *uri = api_arg(args, command, "uri", errp);
        return uri ? api_list(uri, reply, errp) : -EINVAL;
    }
    return bh_error_set(errp, ENOTSUP, "nbd-kernel has no control command "
                        "'%s' (disconnect, devices, list)", command);
}
