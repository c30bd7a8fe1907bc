/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The plugin loader, for programs: which plugins were found, loaded or
 * refused and why.  Part of the library API (plugins use plugin.h).
 */
#ifndef BLKHOST_LOADER_H
#define BLKHOST_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include <blkhost/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

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
/* Register a plugin that is not a .so file (a driver written in Lua),
 * recorded under path (its file, or a pseudo path such as "lua:NAME").
 * desc (abi_version, struct_size and the driver's struct_size as this
 * header has them) gets the same checks as a loaded file: name, kind,
 * thread model, flags, required callbacks, unique name, load hook; the
 * loader keeps copies.  Returns the record (check ->error) and sets errp
 * when it is refused. */
const BhPluginRecord *bh_plugin_register(const char *path,
                                         const BhPluginDesc *desc,
                                         BhError **errp);
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
