/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The client side of the NBD handshake, for the nbd-kernel frontend (which
 * hands the negotiated socket to the kernel) and for listing a server's
 * exports: NBD URI parsing, connecting, GO with a fall-back to
 * EXPORT_NAME, and NBD_OPT_LIST.
 *
 * The handshake never asks for structured replies, meta contexts or
 * extended headers: a socket negotiated here stays in the simple-reply
 * protocol the kernel's nbd driver speaks.  Listing, whose socket is never
 * handed on, asks for both to report what a full client would get.
 */
#ifndef NBD_CLIENT_H
#define NBD_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "nbd-common.h"

G_BEGIN_DECLS

/* nbd://HOST[:PORT][/EXPORT] or nbd+unix:///[EXPORT]?socket=PATH */
typedef struct NbdUri {
    bool is_unix;
    char *host;          /* TCP: name or address (no brackets) */
    char *port;          /* TCP: "10809" unless given */
    char *socket_path;   /* Unix */
    char *export_name;   /* percent-decoded; "" is the default export */
} NbdUri;

/* Fill *u from uri; on error *u is left cleared and errp says what part
 * of the URI was wrong and what was expected. */
bool nbd_uri_parse(const char *uri, NbdUri *u, BhError **errp);
void nbd_uri_clear(NbdUri *u);

/* A connected stream socket (CLOEXEC, blocking) or -1 with errp set. */
int nbd_uri_connect(const NbdUri *u, BhError **errp);

/* What the handshake learned about the export. */
typedef struct NbdClientExport {
    uint64_t size;
    uint16_t tflags;       /* NBD_FLAG_* transmission flags */
    uint32_t min_block;    /* 1 unless the server sent NBD_INFO_BLOCK_SIZE */
    uint32_t pref_block;
    uint32_t max_block;
    bool used_go;          /* false: the EXPORT_NAME fall-back was used */
    char **meta_contexts;  /* listing only: NULL-terminated names from
                              NBD_OPT_LIST_META_CONTEXT, or NULL; borrowed
                              for the callback's duration */
} NbdClientExport;

/*
 * Negotiate export name on fd, leaving it in the transmission phase with
 * simple replies.  Returns 0, or -errno with errp set: -ENOENT when the
 * server has no such export, -EACCES when it refused it (the server's
 * message is quoted), -EPROTO for a server that does not speak fixed
 * newstyle NBD, -EPIPE when it hung up.
 */
int nbd_client_handshake(int fd, const char *name, NbdClientExport *out,
                         BhError **errp);

/* Ask the server for its exports (NBD_OPT_LIST), calling fn for each, then
 * end the session with NBD_OPT_ABORT.  Returns 0 or -errno with errp. */
int nbd_client_list(int fd, NbdListFn fn, void *ctx, BhError **errp);

/* The same, then NBD_OPT_INFO for each export: ex is its size, flags and
 * block sizes, or NULL when the server would not say (no INFO, or it
 * refused that export).  Like qemu-nbd -L, it first asks for structured
 * replies (so the flags are those a structured client sees, DF included)
 * and then lists every meta context of each export. */
typedef void (*NbdListInfoFn)(void *ctx, const char *name, const char *desc,
                              const NbdClientExport *ex);
int nbd_client_list_info(int fd, NbdListInfoFn fn, void *ctx, BhError **errp);

G_END_DECLS

#endif
