/*
 * The plugin ABI: what a driver or frontend .so exports, and the loader
 * that finds and checks them.
 *
 * A plugin exports exactly one symbol, blkhost_plugin_init(), returning a
 * static BhPluginDesc.  The descriptor starts with abi_version and
 * struct_size; the loader copies min(sizeof(BhPluginDesc), struct_size)
 * bytes and zero-fills the rest, so a plugin built against an older header
 * keeps loading as long as its abi_version is within
 * [BH_PLUGIN_ABI_MIN, BH_PLUGIN_ABI_VERSION].  New fields only ever go at the
 * end of a struct.  The same rule holds for BhDriver and BhFrontend, which
 * carry their own struct_size.
 *
 * Search order: the colon-separated directories in BLKHOST_PLUGIN_PATH;
 * then, when libblkhost runs from its build tree, the build tree's
 * drivers/ and plugins/ folders; otherwise $libdir/blkhost/drivers and
 * $libdir/blkhost/plugins.  Every *.so found is loaded once; refusals are
 * remembered with their reason and shown by `blkhost plugins`.
 */
#ifndef BLKHOST_PLUGIN_H
#define BLKHOST_PLUGIN_H

#include <stdbool.h>
#include <stdint.h>

#include <blkhost/error.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BH_PLUGIN_ABI_VERSION 1   /* what this header describes */
#define BH_PLUGIN_ABI_MIN 1       /* oldest ABI the loader accepts */

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
    uint32_t abi_version;   /* BH_PLUGIN_ABI_VERSION at build time */
    uint32_t struct_size;   /* sizeof(BhPluginDesc) at build time */
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

/* Put this in a plugin, after a static BhPluginDesc named "desc". */
#define BH_PLUGIN_EXPORT __attribute__((visibility("default")))
#define BH_PLUGIN_REGISTER(desc)                                        \
    BH_PLUGIN_EXPORT const BhPluginDesc *blkhost_plugin_init(void);    \
    BH_PLUGIN_EXPORT const BhPluginDesc *blkhost_plugin_init(void)     \
    {                                                                   \
        return &(desc);                                                 \
    }

/* ---- loader (core side) ---- */

/* What the loader knows about one file it tried. */
typedef struct BhPluginRecord {
    char *path;
    char *name;          /* NULL if refused before the name was known */
    char *version;
    char *description;
    BhPluginKind kind;
    BhThreadModel thread_model;
    uint32_t abi_version;
    char *error;         /* NULL when loaded; else why it was refused */
    BhPluginDesc desc;   /* the loader's copy, zero-filled past struct_size */
} BhPluginRecord;

/* Scan the search path once (later calls do nothing). */
void bh_plugins_scan(void);
/* Load one file by path.  Returns the record (also on refusal: check
 * ->error) or NULL with *errp set; errp is set whenever it is refused. */
const BhPluginRecord *bh_plugin_load(const char *path, BhError **errp);
size_t bh_plugin_count(void);
const BhPluginRecord *bh_plugin_get(size_t i);
/* Loaded plugin by name and kind, scanning first if needed. */
const BhPluginRecord *bh_plugin_find(const char *name, BhPluginKind kind);
/* The directories that will be (or were) scanned, in order. */
char **bh_plugin_search_path(void); /* bh_strv_free */

#ifdef __cplusplus
}
#endif

#endif
