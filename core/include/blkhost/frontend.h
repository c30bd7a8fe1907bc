/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhFrontend: the vtable an export frontend plugin fills (nbd-server,
 * nbd-kernel, ...), and BhExport, the named window onto a node that
 * frontends serve.
 *
 * Lifecycle: create(opts) -> add_export()* -> start() -> ... -> stop() ->
 * destroy().  Frontends run their own threads for I/O; anything that must
 * run on the main thread (Lua callbacks, "last client left") goes through
 * bh_loop_invoke() and bh_loop_hold()/bh_loop_release() (loop.h).
 * create, start, stop and destroy are required (the loader refuses a
 * frontend without them); flags must be 0 for now.
 * Versioning as for BhDriver: struct_size first, new callbacks at the end.
 */
#ifndef BLKHOST_FRONTEND_H
#define BLKHOST_FRONTEND_H

#include <stdbool.h>
#include <stdint.h>

#include <blkhost/info.h>
#include <blkhost/node.h>
#include <blkhost/opts.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An export: a named, possibly read-only view of a node, what frontends
 * serve.  Opaque; read it with the accessors below. */
typedef struct BhExport BhExport;

BhExport *bh_export_new(BhNode *node, const char *name,
                        const char *description, bool readonly);
void bh_export_free(BhExport *exp);
const char *bh_export_name(const BhExport *exp);        /* "" is the default */
const char *bh_export_description(const BhExport *exp); /* may be NULL */
BhNode *bh_export_node(const BhExport *exp);            /* borrowed */
bool bh_export_readonly(const BhExport *exp);  /* served read-only */

/* Called on the main thread for frontend events ("connect",
 * "disconnect", ...) with details such as the peer address. */
typedef void (*BhFrontendEventFn)(void *data, const char *event,
                                  const BhInfo *details);

typedef struct BhFrontend {
    uint32_t struct_size;
    uint32_t flags;

    void *(*create)(BhOpts *opts, BhError **errp);
    int (*add_export)(void *fe, BhExport *exp, BhError **errp); /* takes exp */
    int (*start)(void *fe, BhError **errp);
    /* Graceful: stop accepting, finish in-flight requests, flush, remove
     * sockets.  May be called more than once. */
    void (*stop)(void *fe);
    void (*destroy)(void *fe);
    /* A URI a client would use for export name (NULL: default). */
    char *(*uri)(void *fe, const char *export_name);
    void (*status)(void *fe, BhInfo *info);
    void (*set_event_cb)(void *fe, BhFrontendEventFn cb, void *data);

    /* Commands a program or script sends to the plugin itself, with no
     * instance (bh_frontend_control): the command's name, its arguments
     * (unused keys are refused afterwards, as for create), and the reply
     * as zero or more records.  Unknown commands: -ENOTSUP with errp set.
     * Optional.  This is the one way in besides create: no private
     * headers, no dlsym. */
    int (*control)(const char *command, BhOpts *args, BhInfoList *reply,
                   BhError **errp);

    /* Stop serving the export called name: new clients no longer find
     * it.  Without hard, -EBUSY while clients use it; with hard, they are
     * disconnected first (as disconnect).  Optional. */
    int (*remove_export)(void *fe, const char *name, bool hard,
                         BhError **errp);
    /* Disconnect the clients of the export called name (NULL: every
     * client) and return once they are gone: their requests in flight
     * finish, none after.  Returns how many, or -errno.  Optional. */
    int (*disconnect)(void *fe, const char *name, BhError **errp);

    /* New callbacks go here, at the end. */
} BhFrontend;

/* ---- a running frontend instance (core side; what Lua holds) ---- */
typedef struct BhFrontendHandle BhFrontendHandle;

/* Create an instance of the frontend plugin called name; opts keys that
 * the plugin did not take are refused, named. */
BhFrontendHandle *bh_frontend_new(const char *name, BhOpts *opts,
                                  BhError **errp);
/* Takes ownership of exp in all cases. */
int bh_frontend_add_export(BhFrontendHandle *h, BhExport *exp, BhError **errp);
int bh_frontend_start(BhFrontendHandle *h, BhError **errp);
void bh_frontend_stop(BhFrontendHandle *h);
/* Stops (if started) and frees. */
void bh_frontend_free(BhFrontendHandle *h);
char *bh_frontend_uri(BhFrontendHandle *h, const char *export_name);
void bh_frontend_status(BhFrontendHandle *h, BhInfo *info);
void bh_frontend_set_event_cb(BhFrontendHandle *h, BhFrontendEventFn cb,
                              void *data);
const char *bh_frontend_name(const BhFrontendHandle *h);
/* BhFrontend.remove_export and .disconnect; -ENOTSUP with errp set for
 * a frontend without them. */
int bh_frontend_remove_export(BhFrontendHandle *h, const char *name,
                              bool hard, BhError **errp);
int bh_frontend_disconnect(BhFrontendHandle *h, const char *name,
                           BhError **errp);
/* Run a control command of the frontend plugin called name (see
 * BhFrontend.control).  Returns 0 with *reply set (free it with
 * bh_info_list_free), or -errno with errp set. */
int bh_frontend_control(const char *name, const char *command,
                        const BhOpts *args, BhInfoList **reply,
                        BhError **errp);

#ifdef __cplusplus
}
#endif

#endif
