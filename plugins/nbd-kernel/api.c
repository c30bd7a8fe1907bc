/*
 * The nbd-kernel plugin's extra entry points (nbd-kernel-api.h): acting
 * on a device by name whoever attached it, listing devices, and listing a
 * server's exports.
 */
#include <errno.h>
#include <unistd.h>

#include "nbd-client.h"
#include "nbd-kernel.h"
#include "nbd-kernel-api.h"
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

static GPtrArray *api_devices(void)
{
    return nbd_dev_list();
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
    g_ptr_array_add(ctx, info);
}

static GPtrArray *api_list(const char *uri, BhError **errp)
{
    NbdUri u;
    if (!nbd_uri_parse(uri, &u, errp))
        return NULL;
    int fd = nbd_uri_connect(&u, errp);
    nbd_uri_clear(&u);
    if (fd < 0)
        return NULL;
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)
                                                    bh_info_free);
    int r = nbd_client_list_info(fd, list_one, out, errp);
    close(fd);
    if (r < 0) {
        g_ptr_array_unref(out);
        return NULL;
    }
    return out;
}

static const NbdKernelApi api = {
    .struct_size = sizeof(NbdKernelApi),
    .disconnect = nbd_kernel_disconnect,
    .devices = api_devices,
    .list = api_list,
};

__attribute__((visibility("default"))) const NbdKernelApi *
blkhost_nbd_kernel_api(void);

__attribute__((visibility("default"))) const NbdKernelApi *
blkhost_nbd_kernel_api(void)
{
    return &api;
}
