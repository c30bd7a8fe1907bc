/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The plugin loader: finds *.so files along the search path, checks each
 * one (ELF, symbol, ABI range, struct sizes, unique name, load hook) and
 * keeps a record for every file it tried, refused ones included, so that
 * `blkhost plugins` can say why something did not load.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blkhost/blkhost-plugin.h"
#include "config.h"
#include "core-priv.h"

typedef struct {
    BhPluginRecord pub;
    BhDriver drv;      /* copies, zero-filled past the plugin's struct_size */
    BhFrontend fe;
    BhCreateOption *create_options; /* drv's, in this core's layout */
    BhCreateOption *amend_options;  /* the same */
    void *handle;
    int errnum;        /* errno behind a refusal, 0 for format problems */
} PluginEntry;

static GMutex plugin_lock;
static GPtrArray *plugin_entries; /* PluginEntry*, in load order */
static bool plugin_scanned;

static void plugin_entries_init(void)
{
    if (!plugin_entries)
        plugin_entries = g_ptr_array_new();
}

/* The build root when this libblkhost.so is the one in the build tree
 * (BUILD/core/), else NULL.  The build tree is told by the marker file
 * meson writes at its root (BUILD/blkhost-uninstalled.txt), never
 * installed, so no build path is compiled into the library and an
 * installed copy is the same whatever directory it was built in. */
static char *plugin_build_root(void)
{
    Dl_info di;
    if (!dladdr((void *)plugin_build_root, &di) || !di.dli_fname)
        return NULL;
    g_autofree char *real = realpath(di.dli_fname, NULL);
    if (!real)
        return NULL;
    g_autofree char *dir = g_path_get_dirname(real);
    char *root = g_path_get_dirname(dir);
    g_autofree char *marker = g_build_filename(root, "blkhost-uninstalled.txt",
                                               NULL);
    if (!g_file_test(marker, G_FILE_TEST_IS_REGULAR)) {
        g_free(root);
        return NULL;
    }
    return root;
}

bool bh_running_uninstalled(void)
{
    g_autofree char *root = plugin_build_root();
    return root != NULL;
}

char **bh_plugin_search_path(void)
{
    GPtrArray *a = g_ptr_array_new();
    const char *env = g_getenv("BLKHOST_PLUGIN_PATH");
    if (env && *env) {
        g_auto(GStrv) parts = g_strsplit(env, ":", -1);
        for (int i = 0; parts[i]; i++)
            if (*parts[i])
                g_ptr_array_add(a, g_strdup(parts[i]));
    }
    g_autofree char *root = plugin_build_root();
    if (root) {
        g_ptr_array_add(a, g_build_filename(root, "drivers", NULL));
        g_ptr_array_add(a, g_build_filename(root, "plugins", NULL));
    } else {
        g_ptr_array_add(a, g_strdup(BH_DRIVERS_DIR));
        g_ptr_array_add(a, g_strdup(BH_FRONTENDS_DIR));
    }
    g_ptr_array_add(a, NULL);
    return (char **)g_ptr_array_free(a, FALSE);
}

static bool plugin_name_valid(const char *name)
{
    if (!name || !*name || strlen(name) > 64)
        return false;
    for (const char *p = name; *p; p++)
        if (!g_ascii_islower(*p) && !g_ascii_isdigit(*p) && *p != '-' &&
            *p != '_')
            return false;
    return true;
}

static const PluginEntry *plugin_find_locked(const char *name)
{
    for (guint i = 0; plugin_entries && i < plugin_entries->len; i++) {
        PluginEntry *e = plugin_entries->pdata[i];
        if (!e->pub.error && e->pub.name && g_str_equal(e->pub.name, name))
            return e;
    }
    return NULL;
}

static bool file_is_elf(const char *path)
{
    unsigned char magic[4] = { 0 };
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && memcmp(magic, "\177ELF", 4) == 0;
}

/* Why a driver cannot be used, or NULL: the callbacks the core calls
 * without asking, and only the flags this core knows. */
static char *plugin_check_driver(const BhDriver *d)
{
    if (d->flags & ~BH_DRIVER_KNOWN_FLAGS)
        return g_strdup_printf("driver has unknown flags 0x%x (this blkhost "
                               "knows 0x%x)", d->flags & ~BH_DRIVER_KNOWN_FLAGS,
                               BH_DRIVER_KNOWN_FLAGS);
    if (d->request_flags & ~BH_IO_KNOWN_FLAGS)
        return g_strdup_printf("driver declares unknown request flags 0x%x "
                               "(this blkhost knows 0x%x)",
                               d->request_flags & ~BH_IO_KNOWN_FLAGS,
                               BH_IO_KNOWN_FLAGS);
    /* Reads need pread, or submit for a driver that does all its I/O
     * through requests. */
    const char *missing = !d->open ? "open" : !d->get_length ? "get_length"
                        : !d->pread && !d->submit ? "pread" : NULL;
    if (missing)
        return g_strdup_printf("driver has no %s callback (open, get_length "
                               "and pread or submit are required)", missing);
    return NULL;
}

/* Copy an option list of a driver (create_options, amend_options) into
 * an array of this core's BhCreateOption, stepping by the plugin's
 * element size, so that the rest of the core indexes it plainly whatever
 * header the plugin used.  NULL stays NULL. */
static BhCreateOption *plugin_copy_options(const BhCreateOption *list,
                                           size_t stride)
{
    const uint8_t *in = (const uint8_t *)list;
    size_t n = 0;

    if (!in)
        return NULL;
    while (((const BhCreateOption *)(in + n * stride))->name)
        n++;
    BhCreateOption *out = g_new0(BhCreateOption, n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(&out[i], in + i * stride, MIN(stride, sizeof(*out)));
    return out;
}

static void plugin_copy_create_options(PluginEntry *e)
{
    size_t stride = e->drv.create_option_size ? e->drv.create_option_size
                                              : sizeof(BhCreateOption);

    e->create_options = plugin_copy_options(e->drv.create_options, stride);
    e->drv.create_options = e->create_options;
    e->amend_options = plugin_copy_options(e->drv.amend_options, stride);
    e->drv.amend_options = e->amend_options;
}

/* A frontend must make, start, stop and free an instance. */
static char *plugin_check_frontend(const BhFrontend *fe)
{
    if (fe->flags)
        return g_strdup_printf("frontend has unknown flags 0x%x (this "
                               "blkhost knows none)", fe->flags);
    const char *missing = !fe->create ? "create" : !fe->start ? "start"
                        : !fe->stop ? "stop" : !fe->destroy ? "destroy"
                        : NULL;
    if (missing)
        return g_strdup_printf("frontend has no %s callback (create, start, "
                               "stop and destroy are required)", missing);
    return NULL;
}

/* Copy the descriptor d into e and check it (name, thread model, kind,
 * the driver's or frontend's callbacks and flags, a unique name) and
 * run its load hook; fills e->pub.error on refusal.  Shared by .so
 * files and descriptors registered in-process (bh_plugin_register). */
static void plugin_check_desc(PluginEntry *e, const BhPluginDesc *d)
{
    memcpy(&e->pub.desc, d, MIN(sizeof(BhPluginDesc), d->struct_size));

    BhPluginDesc *desc = &e->pub.desc;
    e->pub.name = g_strdup(desc->name);
    e->pub.version = g_strdup(desc->version ? desc->version : "");
    e->pub.description = g_strdup(desc->description ? desc->description : "");
    e->pub.kind = desc->kind;
    e->pub.thread_model = desc->thread_model;

    if (!plugin_name_valid(desc->name)) {
        e->pub.error = g_strdup_printf("invalid plugin name '%s' "
                                       "(expected [a-z0-9_-], 1-64 chars)",
                                       desc->name ? desc->name : "");
    } else if (desc->thread_model != BH_THREAD_SERIALIZE &&
               desc->thread_model != BH_THREAD_PARALLEL) {
        e->pub.error = g_strdup_printf("unknown thread model %u (expected "
                                       "%d, serialize, or %d, parallel)",
                                       desc->thread_model,
                                       BH_THREAD_SERIALIZE,
                                       BH_THREAD_PARALLEL);
    } else if (desc->kind == BH_PLUGIN_DRIVER) {
        if (!desc->driver || desc->driver->struct_size <
                                 offsetof(BhDriver, pread)) {
            e->pub.error = g_strdup_printf("driver plugin without a "
                                           "usable BhDriver");
        } else {
            memcpy(&e->drv, desc->driver,
                   MIN(sizeof(BhDriver), desc->driver->struct_size));
            desc->driver = &e->drv;
            desc->frontend = NULL;
            e->pub.error = plugin_check_driver(&e->drv);
            if (!e->pub.error)
                plugin_copy_create_options(e);
        }
    } else if (desc->kind == BH_PLUGIN_FRONTEND) {
        if (!desc->frontend || desc->frontend->struct_size <
                                   offsetof(BhFrontend, stop)) {
            e->pub.error = g_strdup_printf("frontend plugin without a "
                                           "usable BhFrontend");
        } else {
            memcpy(&e->fe, desc->frontend,
                   MIN(sizeof(BhFrontend), desc->frontend->struct_size));
            desc->frontend = &e->fe;
            desc->driver = NULL;
            e->pub.error = plugin_check_frontend(&e->fe);
        }
    } else {
        e->pub.error = g_strdup_printf("unknown plugin kind %u (expected "
                                       "%d, driver, or %d, frontend)",
                                       desc->kind, BH_PLUGIN_DRIVER,
                                       BH_PLUGIN_FRONTEND);
    }
    if (!e->pub.error) {
        const PluginEntry *dup = plugin_find_locked(desc->name);
        if (dup)
            e->pub.error = g_strdup_printf("duplicate plugin name '%s' "
                                           "(already loaded from %s)",
                                           desc->name, dup->pub.path);
    }
    if (!e->pub.error && desc->load) {
        BhError *err = NULL;
        if (!desc->load(&err)) {
            e->pub.error = g_strdup_printf("plugin '%s' failed to "
                                           "initialise: %s", desc->name,
                                           err ? bh_error_message(err) : "no reason");
            bh_error_clear(&err);
        }
    }
}

/* Check and register one file; fills e->pub.error on refusal. */
static void plugin_try(PluginEntry *e)
{
    const char *path = e->pub.path;
    struct stat st;

    if (stat(path, &st) < 0) {
        e->errnum = errno;
        e->pub.error = g_strdup(g_strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        e->pub.error = g_strdup("not a regular file");
        return;
    }
    if (!file_is_elf(path)) {
        e->pub.error = g_strdup("not a shared object (no ELF header)");
        return;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        e->pub.error = g_strdup_printf("cannot load: %s",
                                       dlerror());
        return;
    }
    BhPluginInitFn init = (BhPluginInitFn)dlsym(h, BH_PLUGIN_INIT_SYMBOL);
    if (!init) {
        e->pub.error = g_strdup_printf("no %s symbol: not a blkhost "
                                       "plugin", BH_PLUGIN_INIT_SYMBOL);
        dlclose(h);
        return;
    }
    const BhPluginDesc *d = init();
    if (!d) {
        e->pub.error = g_strdup_printf("%s() failed (returned NULL)",
                                       BH_PLUGIN_INIT_SYMBOL);
        dlclose(h);
        return;
    }
    e->pub.abi_version = d->abi_version;
    if (d->abi_version < BH_PLUGIN_ABI_MIN ||
        d->abi_version > BH_PLUGIN_ABI_VERSION) {
        e->pub.error = g_strdup_printf(
            "plugin ABI version %u is not supported (this blkhost "
            "supports %u to %u)", d->abi_version, BH_PLUGIN_ABI_MIN,
            BH_PLUGIN_ABI_VERSION);
        dlclose(h);
        return;
    }
    /* Everything up to and including the frontend pointer is the oldest
     * layout we accept. */
    size_t min = offsetof(BhPluginDesc, frontend) + sizeof(void *);
    if (d->struct_size < min) {
        e->pub.error = g_strdup_printf("descriptor struct_size %u is "
                                       "smaller than the minimum %zu",
                                       d->struct_size, min);
        dlclose(h);
        return;
    }
    plugin_check_desc(e, d);
    if (e->pub.error) {
        dlclose(h);
        return;
    }
    e->handle = h;
}

static const BhPluginRecord *plugin_load_locked(const char *path,
                                                BhError **errp)
{
    plugin_entries_init();
    g_autofree char *abs = g_canonicalize_filename(path, NULL);
    /* The same file twice is not a duplicate: it is the same plugin. */
    for (guint i = 0; i < plugin_entries->len; i++) {
        PluginEntry *e = plugin_entries->pdata[i];
        if (g_str_equal(e->pub.path, abs) && !e->pub.error)
            return &e->pub;
    }
    PluginEntry *e = g_new0(PluginEntry, 1);
    e->pub.path = g_steal_pointer(&abs);
    plugin_try(e);
    g_ptr_array_add(plugin_entries, e);
    if (e->pub.error)
        bh_error_set(errp, e->errnum ? e->errnum : EINVAL,
                     "cannot load plugin %s: %s", e->pub.path,
                     e->pub.error);
    return &e->pub;
}

const BhPluginRecord *bh_plugin_load(const char *path, BhError **errp)
{
    bh_plugins_scan();
    g_mutex_lock(&plugin_lock);
    const BhPluginRecord *r = plugin_load_locked(path, errp);
    g_mutex_unlock(&plugin_lock);
    return r;
}

/* A plugin that is not a file (a driver written in Lua): the same checks
 * as for a loaded file, recorded under path. */
const BhPluginRecord *bh_plugin_register(const char *path,
                                         const BhPluginDesc *desc,
                                         BhError **errp)
{
    bh_plugins_scan();
    g_mutex_lock(&plugin_lock);
    PluginEntry *e = g_new0(PluginEntry, 1);
    e->pub.path = g_strdup(path);
    e->pub.abi_version = desc->abi_version;
    if (desc->abi_version < BH_PLUGIN_ABI_MIN ||
        desc->abi_version > BH_PLUGIN_ABI_VERSION ||
        desc->struct_size != sizeof(BhPluginDesc))
        e->pub.error = g_strdup_printf("descriptor is not of this blkhost "
                                       "(ABI %u, struct_size %u)",
                                       desc->abi_version, desc->struct_size);
    else
        plugin_check_desc(e, desc);
    g_ptr_array_add(plugin_entries, e);
    g_mutex_unlock(&plugin_lock);
    if (e->pub.error)
        bh_error_set(errp, EINVAL, "cannot register plugin %s: %s",
                     e->pub.path, e->pub.error);
    return &e->pub;
}

static int plugin_name_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char **)a, *(const char **)b);
}

void bh_plugins_scan(void)
{
    g_mutex_lock(&plugin_lock);
    if (plugin_scanned) {
        g_mutex_unlock(&plugin_lock);
        return;
    }
    plugin_scanned = true;
    plugin_entries_init();
    g_auto(GStrv) dirs = bh_plugin_search_path();
    for (int i = 0; dirs[i]; i++) {
        /* A directory holds *.so files directly, or (the build tree) one
         * folder per plugin holding NAME.so. */
        GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
        GDir *dir = g_dir_open(dirs[i], 0, NULL);
        const char *n;
        while (dir && (n = g_dir_read_name(dir))) {
            g_autofree char *p = g_build_filename(dirs[i], n, NULL);
            if (g_str_has_suffix(n, ".so")) {
                g_ptr_array_add(files, g_steal_pointer(&p));
            } else if (g_file_test(p, G_FILE_TEST_IS_DIR)) {
                g_autofree char *so = g_strdup_printf("%s/%s.so", p, n);
                if (g_file_test(so, G_FILE_TEST_EXISTS))
                    g_ptr_array_add(files, g_steal_pointer(&so));
            }
        }
        if (dir)
            g_dir_close(dir);
        g_ptr_array_sort(files, plugin_name_cmp);
        for (guint j = 0; j < files->len; j++)
            plugin_load_locked(files->pdata[j], NULL);
        g_ptr_array_free(files, TRUE);
    }
    g_mutex_unlock(&plugin_lock);
}

/* These two run on I/O threads too (probing a guarded head, probe.c)
 * while the main thread may load a plugin, which can move the array;
 * entries themselves are never freed, so a record outlives the lock. */
size_t bh_plugin_count(void)
{
    bh_plugins_scan();
    g_mutex_lock(&plugin_lock);
    size_t n = plugin_entries->len;
    g_mutex_unlock(&plugin_lock);
    return n;
}

const BhPluginRecord *bh_plugin_get(size_t i)
{
    bh_plugins_scan();
    g_mutex_lock(&plugin_lock);
    const PluginEntry *e = i < plugin_entries->len ? plugin_entries->pdata[i]
                                                   : NULL;
    g_mutex_unlock(&plugin_lock);
    return e ? &e->pub : NULL;
}

const BhPluginRecord *bh_plugin_find(const char *name, BhPluginKind kind)
{
    bh_plugins_scan();
    g_mutex_lock(&plugin_lock);
    const PluginEntry *e = plugin_find_locked(name);
    g_mutex_unlock(&plugin_lock);
    if (e && e->pub.kind == kind)
        return &e->pub;
    return NULL;
}

/* Names of loaded plugins of one kind, for "unknown format" messages. */
char *bh_plugin_names(BhPluginKind kind)
{
    bh_plugins_scan();
    GString *s = g_string_new(NULL);
    g_mutex_lock(&plugin_lock);
    for (guint i = 0; i < plugin_entries->len; i++) {
        PluginEntry *e = plugin_entries->pdata[i];
        if (!e->pub.error && e->pub.kind == kind)
            g_string_append_printf(s, "%s%s", s->len ? ", " : "",
                                   e->pub.name);
    }
    g_mutex_unlock(&plugin_lock);
    return g_string_free(s, FALSE);
}
