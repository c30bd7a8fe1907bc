/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * LD_PRELOAD shim for the TLS bench rows: fio's nbd ioengine connects with
 * nbd_connect_uri(), and libnbd refuses the tls-psk-file= query (a local
 * file) unless the program allowed it, which fio does not.  This allows
 * it, then calls the real function.  Built by bench/run.sh; not installed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <blkhost/glib.h>

struct nbd_handle;

int nbd_connect_uri(struct nbd_handle *h, const char *uri)
{
    int (*real)(struct nbd_handle *, const char *) =
        (int (*)(struct nbd_handle *, const char *))dlsym(RTLD_NEXT,
                                                          "nbd_connect_uri");
    int (*allow)(struct nbd_handle *, bool) =
        (int (*)(struct nbd_handle *, bool))dlsym(RTLD_DEFAULT,
                                          "nbd_set_uri_allow_local_file");
    if (allow)
        allow(h, true);
    return real(h, uri);
}
