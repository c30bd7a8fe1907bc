/*
 * What the nbd-kernel plugin offers besides its BhFrontend vtable: the
 * calls that act on devices it did not attach (disconnect, the device
 * list) and export listing.  The Lua binding (lua/nbd-kernel.c) finds the
 * plugin with bh_plugin_find("nbd-kernel"), then dlsym()s
 * NBD_KERNEL_API_SYMBOL, a function returning this table.  Versioned like
 * the core's tables: struct_size first, new members only at the end.
 */
#ifndef NBD_KERNEL_API_H
#define NBD_KERNEL_API_H

#include <stdint.h>
#include <glib.h>

#define NBD_KERNEL_API_SYMBOL "blkhost_nbd_kernel_api"

typedef struct NbdKernelApi {
    uint32_t struct_size;
    /* Disconnect /dev/nbdN, whoever connected it; ENOTCONN if it is not
     * connected.  Returns once the kernel shows it disconnected. */
    int (*disconnect)(const char *device, BhError **errp);
    /* Every NBD device: BhInfo items {device, index, connected, size,
     * pid, backend, readonly}; g_ptr_array_unref frees them. */
    GPtrArray *(*devices)(void);
    /* The exports of the server at uri: BhInfo items {name[,
     * description][, size, flags, readonly, multi_conn, min_block,
     * pref_block, max_block]} (the last ones when the server answers
     * NBD_OPT_INFO); NULL with errp set on failure. */
    GPtrArray *(*list)(const char *uri, BhError **errp);
} NbdKernelApi;

typedef const NbdKernelApi *(*NbdKernelApiFn)(void);

#endif
