/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The plugin ABI: what a driver or frontend .so exports.
 *
 * A plugin exports exactly one symbol, blkhost_plugin_init(), written by
 * BH_PLUGIN_REGISTER(desc).  The descriptor starts with abi_version and
 * struct_size, which the macro fills; the loader copies
 * min(sizeof(BhPluginDesc), struct_size) bytes and zero-fills the rest, so
 * a plugin built against an older header keeps loading as long as its
 * abi_version is within [BH_PLUGIN_ABI_MIN, BH_PLUGIN_ABI_VERSION].  New
 * fields only ever go at the end of a struct.  The same rule holds for
 * BhDriver and BhFrontend, which carry their own struct_size.
 *
 * The loader refuses, each with a message naming what is wrong: an ABI
 * outside the range, an unknown kind or thread model, unknown driver or
 * frontend flags, unknown request flags, and a missing required callback.
 * The plugin ABI headers (this one, driver.h, frontend.h, request.h,
 * node.h, error.h, opts.h, info.h, check.h, snapshot-info.h) need only
 * libc; blkhost-plugin.h includes them all.  Finding and loading plugins
 * is loader.h's, part of the library API.
 */
#ifndef BLKHOST_PLUGIN_H
#define BLKHOST_PLUGIN_H

#include <stdbool.h>
#include <stdint.h>

#include <blkhost/error.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BH_PLUGIN_ABI_VERSION 2   /* what this header describes */
#define BH_PLUGIN_ABI_MIN 2       /* oldest ABI the loader accepts */

typedef enum {
    BH_PLUGIN_DRIVER = 1,
    BH_PLUGIN_FRONTEND = 2,
} BhPluginKind;

/* How many calls the core may make into one node of this driver at once. */
typedef enum {
    BH_THREAD_SERIALIZE = 0, /* one call at a time per node (core locks) */
    BH_THREAD_PARALLEL = 1,  /* any number of calls in parallel */
} BhThreadModel;

struct BhDriver;
struct BhFrontend;

typedef struct BhPluginDesc {
    uint32_t abi_version;   /* filled by BH_PLUGIN_REGISTER */
    uint32_t struct_size;   /* filled by BH_PLUGIN_REGISTER */
    uint32_t kind;          /* BhPluginKind */
    uint32_t thread_model;  /* BhThreadModel */
    const char *name;       /* "raw", "qcow2", "nbd-server": [a-z0-9-] */
    const char *version;    /* the plugin's own version string */
    const char *description;
    const struct BhDriver *driver;     /* kind == BH_PLUGIN_DRIVER */
    const struct BhFrontend *frontend; /* kind == BH_PLUGIN_FRONTEND */
    /* Optional: called once after the checks pass; returning false refuses
     * the plugin with the error's message. */
    bool (*load)(BhError **errp);
    /* Optional: called at exit for a plugin whose load succeeded. */
    void (*unload)(void);
} BhPluginDesc;

#define BH_PLUGIN_INIT_SYMBOL "blkhost_plugin_init"
typedef const BhPluginDesc *(*BhPluginInitFn)(void);

/*
 * Put this in a plugin, after a static BhPluginDesc named "desc":
 * BH_PLUGIN_REGISTER(desc).  It exports blkhost_plugin_init() returning a
 * copy of desc, and of the BhDriver or BhFrontend it points to, with the
 * version fields (abi_version, every struct_size) filled in from the
 * headers the plugin was built with, so nobody types them by hand.
 */
#define BH_PLUGIN_EXPORT __attribute__((visibility("default")))
#define BH_PLUGIN_REGISTER(desc)                                        \
    BH_PLUGIN_EXPORT const BhPluginDesc *blkhost_plugin_init(void);    \
    BH_PLUGIN_EXPORT const BhPluginDesc *blkhost_plugin_init(void)     \
    {                                                                   \
        static BhPluginDesc bh_desc_;                                   \
        static BhDriver bh_driver_;                                     \
        static BhFrontend bh_frontend_;                                 \
        bh_desc_ = (desc);                                              \
        bh_desc_.abi_version = BH_PLUGIN_ABI_VERSION;                   \
        bh_desc_.struct_size = sizeof(BhPluginDesc);                    \
        if (bh_desc_.driver) {                                          \
            bh_driver_ = *bh_desc_.driver;                              \
            bh_driver_.struct_size = sizeof(BhDriver);                  \
            bh_driver_.create_option_size = sizeof(BhCreateOption);     \
            bh_desc_.driver = &bh_driver_;                              \
        }                                                               \
        if (bh_desc_.frontend) {                                        \
            bh_frontend_ = *bh_desc_.frontend;                          \
            bh_frontend_.struct_size = sizeof(BhFrontend);              \
            bh_desc_.frontend = &bh_frontend_;                          \
        }                                                               \
        return &bh_desc_;                                               \
    }

#ifdef __cplusplus
}
#endif

/* The macro above needs both vtables complete where it is used. */
#include <blkhost/driver.h>
#include <blkhost/frontend.h>

#endif
