/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Opening and closing nodes: option parsing for the modes the core owns,
 * the file child under a format (probed in probe.c when none is named),
 * children, reference counts and the facts `blkhost info` prints.  The
 * I/O path is in io.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core-priv.h"

static const char *const cache_names[] = {
    "writeback", "none", "writethrough", "directsync", "unsafe", NULL
};
static const char *const discard_names[] = { "ignore", "unmap", NULL };
static const char *const dz_names[] = { "off", "on", "unmap", NULL };

/* The modes the core owns, parsed once and inherited by children. */
typedef struct {
    bool readonly;
    int cache;
    int discard;
    int detect_zeroes;
    bool locking;
    /* Not an option: a read-only user of a data-only format lets others
     * write (see node_open_modes). */
    bool share_writes;
} NodeModes;

static bool node_parse_modes(BhOpts *opts, const NodeModes *inherit,
                             NodeModes *m, BhError **errp)
{
    NodeModes def = { false, BH_CACHE_WRITEBACK, BH_DISCARD_IGNORE,
                      BH_DETECT_ZEROES_OFF, true, false };
    if (inherit)
        def = *inherit;
    m->share_writes = def.share_writes;
    /* "read-only" is qemu's spelling; accept both. */
    if (bh_opts_has(opts, "read-only") && !bh_opts_has(opts, "readonly"))
        bh_opts_set(opts, "readonly", bh_opts_get(opts, "read-only"));
    bh_opts_get(opts, "read-only");
    if (!bh_opts_get_bool(opts, "readonly", def.readonly, &m->readonly, errp) ||
        !bh_opts_get_enum(opts, "cache", cache_names, def.cache, &m->cache,
                          errp) ||
        !bh_opts_get_enum(opts, "discard", discard_names, def.discard,
                          &m->discard, errp) ||
        !bh_opts_get_enum(opts, "detect-zeroes", dz_names, def.detect_zeroes,
                          &m->detect_zeroes, errp) ||
        !bh_opts_get_bool(opts, "locking", def.locking, &m->locking, errp))
        return false;
    if (m->detect_zeroes == BH_DETECT_ZEROES_UNMAP &&
        m->discard != BH_DISCARD_UNMAP) {
        bh_error_set(errp, EINVAL, "detect-zeroes=unmap requires "
                     "discard=unmap");
        return false;
    }
    return true;
}

static uint32_t node_open_flags(const NodeModes *m, bool growable)
{
    uint32_t f = 0;
    if (!m->readonly)
        f |= BH_OPEN_RDWR;
    if (m->cache == BH_CACHE_NONE || m->cache == BH_CACHE_DIRECTSYNC)
        f |= BH_OPEN_DIRECT;
    if (!m->locking)
        f |= BH_OPEN_NO_LOCK;
    if (m->readonly && m->share_writes)
        f |= BH_OPEN_SHARE_WRITES;
    if (growable)
        f |= BH_OPEN_GROWABLE;
    return f;
}

static BhNode *node_new(const BhPluginRecord *rec, const char *filename,
                        const NodeModes *m, bool growable)
{
    BhNode *bs = g_new0(BhNode, 1);
    bs->refcnt = 1;
    bs->plugin = rec;
    bs->drv = rec->desc.driver;
    bs->filename = g_strdup(filename ? filename : "");
    bs->readonly = m->readonly;
    bs->cache = m->cache;
    bs->discard = m->discard;
    bs->detect_zeroes = m->detect_zeroes;
    bs->locking = m->locking;
    bs->growable = growable;
    bs->serialize = rec->thread_model == BH_THREAD_SERIALIZE;
    bs->open_flags = node_open_flags(m, growable);
    g_mutex_init(&bs->serial_lock);
    g_mutex_init(&bs->probe_lock);
    bs->children = g_ptr_array_new();
    bh_drain_init(bs);
    return bs;
}

static void node_attach_child(BhNode *bs, const char *role, BhNode *child)
{
    BhChild *c = g_new0(BhChild, 1);
    c->role = g_strdup(role);
    c->node = child;
    g_ptr_array_add(bs->children, c);
    bh_drain_link(bs, child);
}

static const BhPluginRecord *node_find_driver(const char *name, BhError **errp)
{
    const BhPluginRecord *rec = bh_plugin_find(name, BH_PLUGIN_DRIVER);
    if (!rec) {
        g_autofree char *avail = bh_plugin_names(BH_PLUGIN_DRIVER);
        bh_error_set(errp, EINVAL, "unknown format '%s' (available: %s)",
                     name, *avail ? avail : "none: no driver plugins found");
    }
    return rec;
}

/* Call the driver's open, check option use, and settle size and limits. */
static bool node_driver_open(BhNode *bs, BhOpts *opts, BhError **errp)
{
    /* pwrite is optional: such a driver serves read-only, as in nbdkit. */
    if (!bs->drv->pwrite && !bs->drv->submit && !bs->readonly) {
        bh_error_set(errp, EROFS, "driver %s cannot write (it has no "
                     "pwrite): open it read-only (readonly=on)",
                     bs->plugin->name);
        return false;
    }
    int r = bs->drv->open(bs, bs->filename, opts, bs->open_flags, errp);
    if (r < 0) {
        if (errp && !*errp)
            bh_error_set(errp, -r, "%s: could not open '%s'",
                         bs->plugin->name, bs->filename);
        return false;
    }
    bs->opened = true;
    g_autofree char *who = g_strdup_printf("driver %s", bs->plugin->name);
    if (!bh_opts_check_used(opts, who, errp))
        return false;
    if (bs->bl_min == 0) {
        BhNode *file = bh_node_child(bs, "file");
        if (file)
            bh_node_block_limits(file, &bs->bl_min, &bs->bl_pref,
                                 &bs->bl_max);
        else
            bs->bl_min = 1;
    }
    if (bs->bl_pref == 0)
        bs->bl_pref = MAX(bs->bl_min, 4096);
    if (bs->bl_max == 0)
        bs->bl_max = 32 * 1024 * 1024;
    bh_node_refresh_size(bs);
    if (bs->size < 0) {
        bh_error_set(errp, (int)-bs->size, "%s: cannot get the size of '%s'",
                     bs->plugin->name, bs->filename);
        return false;
    }
    return true;
}

/* Open a protocol driver on filename (no children). */
static BhNode *node_open_protocol(const BhPluginRecord *rec,
                                  const char *filename, BhOpts *opts,
                                  const NodeModes *m, bool growable,
                                  BhError **errp)
{
    BhNode *bs = node_new(rec, filename, m, growable);
    if (!node_driver_open(bs, opts, errp)) {
        bh_node_unref(bs);
        return NULL;
    }
    return bs;
}

/* Open format driver rec over child (which the new node takes).  Only a
 * filter stacked under a format (file.driver=) is growable. */
static BhNode *node_open_format(const BhPluginRecord *rec, BhNode *child,
                                const char *filename, BhOpts *opts,
                                const NodeModes *m, bool growable,
                                BhError **errp)
{
    BhNode *bs = node_new(rec, filename, m, growable);
    node_attach_child(bs, "file", child);
    if (!node_driver_open(bs, opts, errp)) {
        bh_node_unref(bs);
        return NULL;
    }
    return bs;
}

/* A format that keeps no metadata in its file: its bytes are the guest's. */
static bool node_data_only(const BhPluginRecord *rec)
{
    return rec->desc.driver->flags & BH_DRIVER_DATA_ONLY;
}

/*
 * inherit NULL: a user's open (bh_node_open), not a child such as a
 * backing file.  Only a user's read-only open of a data-only format
 * (raw) shares writes and resizes with others, as QEMU's raw readers do:
 * it reads whatever is there, and a writer elsewhere cannot corrupt
 * metadata it does not have.  Anything with metadata (qcow2), and any
 * backing file, keeps writers out.
 */
static BhNode *node_open_modes(const char *filename, BhOpts *opts,
                               const NodeModes *inherit, bool growable,
                               BhError **errp)
{
    NodeModes m;
    if (!node_parse_modes(opts, inherit, &m, errp))
        return NULL;

    const char *format = bh_opts_get(opts, "format");
    if (!format)
        format = bh_opts_get(opts, "driver");
    const BhPluginRecord *rec = NULL;
    if (format) {
        rec = node_find_driver(format, errp);
        if (!rec)
            return NULL;
        if (rec->desc.driver->flags & BH_DRIVER_PROTOCOL)
            return node_open_protocol(rec, filename, opts, &m, growable,
                                      errp);
    }
    if (!filename || !*filename) {
        bh_error_set(errp, EINVAL, "no filename given (a filename is needed "
                     "unless format names a driver such as null or memory)");
        return NULL;
    }

    /* file.* options go to the protocol child; the modes the core owns
     * (file.locking=off, file.cache=...) may be set there too, defaulting
     * to the format's, as qemu allows. */
    g_autoptr(BhOpts) file_opts = bh_opts_take_prefix(opts, "file.");
    NodeModes fm, finherit = m;
    /* The format already looked for zeros; the file need not look again. */
    finherit.detect_zeroes = BH_DETECT_ZEROES_OFF;
    if (!node_parse_modes(file_opts, &finherit, &fm, errp))
        return NULL;
    if (!fm.readonly && m.readonly)
        fm.readonly = true;
    const bool probing = !rec;
    /* file.driver=NAME stacks a filter (log-writes) between the format and
     * the file: the filter opens the file itself, with the file.file.*
     * options, and takes the growable role the file has under a format.
     * It keeps writers out, as a format with metadata does. */
    const char *filter = bh_opts_get(file_opts, "driver");
    const BhPluginRecord *file_rec = NULL;
    BhNode *file;
    if (filter && !g_str_equal(filter, "file")) {
        fm.share_writes = false;
        file = node_open_modes(filename, file_opts, &fm, true, errp);
    } else {
        /* Before probing, assume data-only; a probe that finds metadata
         * reopens the file keeping writers out. */
        fm.share_writes = !inherit && (probing || node_data_only(rec));
        file_rec = bh_probe_protocol(filename);
        if (!file_rec)
            file_rec = node_find_driver("file", errp);
        if (!file_rec)
            return NULL;
        /* The file under a format is growable: qcow2 allocates past its
         * end. */
        file = node_open_protocol(file_rec, filename, file_opts, &fm, true,
                                  errp);
    }
    if (!file)
        return NULL;
    if (probing) {
        rec = bh_probe_node(file, filename, errp);
        if (!rec) {
            bh_node_unref(file);
            return NULL;
        }
        if (file_rec && fm.readonly && fm.share_writes &&
            !node_data_only(rec)) {
            bh_node_unref(file);
            fm.share_writes = false;
            file = node_open_protocol(file_rec, filename, file_opts, &fm,
                                      true, errp);
            if (!file)
                return NULL;
        }
    }
    BhNode *bs = node_open_format(rec, file, filename, opts, &m, growable,
                                  errp);
    if (bs && probing && file_rec && node_data_only(rec))
        bh_probe_guard(file, rec, !m.readonly && !fm.readonly);
    return bs;
}

/*
 * Registry of open top-level nodes (those from bh_node_open), for the
 * operations that span every open image (savevm/loadvm/delvm in
 * snapshot.c).  Entries hold no reference: a node leaves the list when
 * its last reference goes, and bh_open_nodes() only takes a reference on
 * a node whose count is still above zero.
 */
static GMutex open_nodes_lock;
static GPtrArray *open_nodes;

GPtrArray *bh_open_nodes(void)
{
    GPtrArray *out = g_ptr_array_new();
    g_mutex_lock(&open_nodes_lock);
    for (guint i = 0; open_nodes && i < open_nodes->len; i++) {
        BhNode *bs = open_nodes->pdata[i];
        if (bh_node_try_ref(bs))
            g_ptr_array_add(out, bs);
    }
    g_mutex_unlock(&open_nodes_lock);
    return out;
}

BhNode *bh_node_open(const char *filename, const BhOpts *opts, BhError **errp)
{
    g_autoptr(BhOpts) work = bh_opts_copy(opts);
    BhNode *bs = node_open_modes(filename, work, NULL, false, errp);
    if (bs) {
        g_mutex_lock(&open_nodes_lock);
        if (!open_nodes)
            open_nodes = g_ptr_array_new();
        g_ptr_array_add(open_nodes, bs);
        g_mutex_unlock(&open_nodes_lock);
    }
    return bs;
}

/* A node over child: its modes default to child's; only a filter may be
 * writable over a read-only child, since the child refuses the writes it
 * would pass down itself. */
static BhNode *node_open_over(BhNode *child, const char *format,
                              const BhOpts *opts, bool filter, BhError **errp)
{
    g_autoptr(BhOpts) work = bh_opts_copy(opts);
    NodeModes inherit = { child->readonly, child->cache, child->discard,
                          child->detect_zeroes, child->locking, false };
    NodeModes m;
    if (!node_parse_modes(work, &inherit, &m, errp))
        return NULL;
    if (!filter && !m.readonly && child->readonly) {
        bh_error_set(errp, EPERM, "cannot open a writable %s node over the "
                     "read-only node '%s'", format, child->filename);
        return NULL;
    }
    const BhPluginRecord *rec = node_find_driver(format, errp);
    if (!rec)
        return NULL;
    if (rec->desc.driver->flags & BH_DRIVER_PROTOCOL) {
        bh_error_set(errp, EINVAL, "%s is a protocol driver and cannot be "
                     "opened over another node", format);
        return NULL;
    }
    if (filter && !(rec->desc.driver->flags & BH_DRIVER_FILTER)) {
        bh_error_set(errp, EINVAL, "%s is not a filter (a driver that shows "
                     "its child's bytes: log, delay, error, cow, ...)",
                     format);
        return NULL;
    }
    return node_open_format(rec, bh_node_ref(child), child->filename, work,
                            &m, false, errp);
}

BhNode *bh_node_open_over(BhNode *child, const char *format,
                          const BhOpts *opts, BhError **errp)
{
    return node_open_over(child, format, opts, false, errp);
}

BhNode *bh_node_open_filter(BhNode *child, const char *name,
                            const BhOpts *opts, BhError **errp)
{
    BhNode *bs = node_open_over(child, name, opts, true, errp);
    if (!bs)
        return NULL;
    /* savevm must reach the image through the filter (a write-back cache
     * flushes first) and only once: the filter stands for its child. */
    g_mutex_lock(&open_nodes_lock);
    if (open_nodes && g_ptr_array_remove(open_nodes, child)) {
        g_ptr_array_add(open_nodes, bs);
        bs->stands_for_child = true;
    }
    g_mutex_unlock(&open_nodes_lock);
    return bs;
}

BhNode *bh_node_open_child(BhNode *bs, const char *role, const char *filename,
                           const BhOpts *opts, BhError **errp)
{
    g_autoptr(BhOpts) work = bh_opts_copy(opts);
    /* Children are read-only unless asked otherwise, like qemu's backing. */
    NodeModes inherit = { true, bs->cache, bs->discard, BH_DETECT_ZEROES_OFF,
                          bs->locking, false };
    BhNode *child = node_open_modes(filename, work, &inherit, false, errp);
    if (!child)
        return NULL;
    bh_node_drop_child(bs, role);
    node_attach_child(bs, role, child);
    return child;
}

void bh_node_drop_child(BhNode *bs, const char *role)
{
    for (guint i = 0; i < bs->children->len; i++) {
        BhChild *c = bs->children->pdata[i];
        if (g_str_equal(c->role, role)) {
            g_ptr_array_remove_index(bs->children, i);
            bh_drain_unlink(bs, c->node);
            bh_node_unref(c->node);
            g_free(c->role);
            g_free(c);
            return;
        }
    }
}

BhNode *bh_node_child(const BhNode *bs, const char *role)
{
    for (guint i = 0; i < bs->children->len; i++) {
        BhChild *c = bs->children->pdata[i];
        if (g_str_equal(c->role, role))
            return c->node;
    }
    return NULL;
}

bool bh_node_try_ref(BhNode *bs)
{
    gint n = g_atomic_int_get(&bs->refcnt);
    while (n > 0 && !g_atomic_int_compare_and_exchange(&bs->refcnt, n, n + 1))
        n = g_atomic_int_get(&bs->refcnt);
    return n > 0;
}

BhNode *bh_node_ref(BhNode *bs)
{
    g_atomic_int_inc(&bs->refcnt);
    return bs;
}

void bh_node_unref(BhNode *bs)
{
    if (!bs || !g_atomic_int_dec_and_test(&bs->refcnt))
        return;
    g_mutex_lock(&open_nodes_lock);      /* leave the registry above */
    if (open_nodes)
        g_ptr_array_remove(open_nodes, bs);
    /* A filter gone, the node it stood for stands for itself again if
     * anybody else still holds it. */
    BhNode *under = bs->stands_for_child ? bh_node_child(bs, "file") : NULL;
    if (under && g_atomic_int_get(&under->refcnt) > 1)
        g_ptr_array_add(open_nodes, under);
    g_mutex_unlock(&open_nodes_lock);
    if (bs->opened && bs->drv->close)
        bs->drv->close(bs);
    /* Children go after the parent closed: it may flush through them. */
    for (guint i = bs->children->len; i-- > 0;) {
        BhChild *c = bs->children->pdata[i];
        bh_drain_unlink(bs, c->node);
        bh_node_unref(c->node);
        g_free(c->role);
        g_free(c);
    }
    g_ptr_array_free(bs->children, TRUE);
    bh_drain_clear(bs);
    g_mutex_clear(&bs->serial_lock);
    g_mutex_clear(&bs->probe_lock);
    g_free(bs->filename);
    g_free(bs);
}

/* Make filename exist, noting whether this call brought it into being:
 * only such a file may be removed when the creation fails.  O_EXCL makes
 * that exact, with no window in which somebody else's file could be taken
 * for ours.  Other errors are left to the file driver to report. */
static bool node_create_new_file(const char *filename)
{
    int fd = open(filename, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/*
 * Creation runs in two steps so that a typo never costs an existing image:
 * every option is checked (the driver's create_check, then unknown keys)
 * before any file is created or emptied; only then is the file made and
 * the driver's create lays the image out.  When that fails, a file this
 * call created is removed; one that was there before stays, emptied, as
 * qemu-img leaves it once the options were good.
 */
static const BhPluginRecord *node_create_check(const char *filename,
                                               const char *format,
                                               BhOpts *work, BhError **errp)
{
    if (!format)
        format = bh_opts_get(work, "format");
    else
        bh_opts_get(work, "format");
    if (!format)
        format = "raw";
    const BhPluginRecord *rec = node_find_driver(format, errp);
    if (!rec)
        return NULL;
    const BhDriver *drv = rec->desc.driver;
    if (!drv->create) {
        bh_error_set(errp, ENOTSUP, "format %s does not support image "
                     "creation", format);
        return NULL;
    }
    if (drv->create_check) {
        g_autofree char *who = g_strdup_printf("creating a %s image", format);
        g_autoptr(BhOpts) check = bh_opts_copy(work);
        bh_opts_get(check, "format");
        if (drv->create_check(filename, check, errp) < 0 ||
            !bh_opts_check_used(check, who, errp))
            return NULL;
    }
    return rec;
}

bool bh_create_check(const char *filename, const char *format,
                     const BhOpts *opts, BhError **errp)
{
    g_autoptr(BhOpts) work = bh_opts_copy(opts);
    return node_create_check(filename, format, work, errp) != NULL;
}

bool bh_create(const char *filename, const char *format, const BhOpts *opts,
               BhError **errp)
{
    g_autoptr(BhOpts) work = bh_opts_copy(opts);
    const BhPluginRecord *rec = node_create_check(filename, format, work,
                                                  errp);
    if (!rec)
        return false;
    const BhDriver *drv = rec->desc.driver;
    g_autofree char *who = g_strdup_printf("creating a %s image", rec->name);

    /* A format always lies on the file protocol; other protocols (null,
     * memory, network) make no file the core could have to remove. */
    const BhPluginRecord *scheme = bh_probe_protocol(filename);
    bool on_file = !scheme && (!(drv->flags & BH_DRIVER_PROTOCOL) ||
                               !strcmp(rec->name, "file"));
    bool created = on_file && filename && node_create_new_file(filename);
    bool ok = false;
    if (drv->flags & BH_DRIVER_PROTOCOL) {
        ok = drv->create(filename, NULL, work, errp) == 0 &&
             bh_opts_check_used(work, who, errp);
    } else {
        /* A format lies on the protocol its filename names (rbd:...),
         * else on a file. */
        const BhPluginRecord *file_rec = scheme ? scheme
                                                : node_find_driver("file",
                                                                   errp);
        g_autoptr(BhOpts) empty = bh_opts_new();
        bh_opts_set(empty, "size", "0");
        BhNode *file = NULL;
        NodeModes m = { false, BH_CACHE_WRITEBACK, BH_DISCARD_IGNORE,
                        BH_DETECT_ZEROES_OFF, true, false };
        g_autoptr(BhOpts) fopts = bh_opts_new();
        if (file_rec &&
            file_rec->desc.driver->create(filename, NULL, empty, errp) == 0)
            file = node_open_protocol(file_rec, filename, fopts, &m, true,
                                      errp);
        if (file) {
            int r = drv->create(filename, file, work, errp);
            if (r == 0)
                r = bh_node_flush(file, errp);
            bh_node_unref(file);
            ok = r == 0 && bh_opts_check_used(work, who, errp);
        }
    }
    if (!ok && created)
        unlink(filename);
    return ok;
}

/* ---- accessors ---- */

void bh_node_set_opaque(BhNode *bs, void *opaque) { bs->opaque = opaque; }
void *bh_node_get_opaque(const BhNode *bs) { return bs->opaque; }
void bh_node_set_caps(BhNode *bs, uint32_t caps) { bs->caps = caps; }

void bh_node_set_block_limits(BhNode *bs, uint32_t min, uint32_t pref,
                              uint32_t max)
{
    bs->bl_min = min;
    bs->bl_pref = pref;
    bs->bl_max = max;
}

void bh_node_inherit_from(BhNode *bs, BhNode *child)
{
    /* FUA always: the child does it, natively or by the core's flush. */
    uint32_t caps = BH_CAP_FUA, min, pref, max;
    if (bh_node_can_discard(child))
        caps |= BH_CAP_DISCARD;
    if (bh_node_can_zero(child))
        caps |= BH_CAP_ZERO;
    bh_node_set_caps(bs, caps);
    bh_node_block_limits(child, &min, &pref, &max);
    bh_node_set_block_limits(bs, min, pref, max);
}

void bh_node_block_limits(const BhNode *bs, uint32_t *min, uint32_t *pref,
                          uint32_t *max)
{
    if (min)
        *min = bs->bl_min ? bs->bl_min : 1;
    if (pref)
        *pref = bs->bl_pref ? bs->bl_pref : 4096;
    if (max)
        *max = bs->bl_max ? bs->bl_max : 32 * 1024 * 1024;
}

void bh_node_refresh_size(BhNode *bs)
{
    int64_t s = bs->drv->get_length ? bs->drv->get_length(bs) : -ENOTSUP;
    bs->size = s;
}

int64_t bh_node_size(BhNode *bs)
{
    if (bs->growable && bs->drv->get_length)
        return bs->drv->get_length(bs);
    return bs->size;
}

bool bh_node_is_readonly(const BhNode *bs) { return bs->readonly; }
const char *bh_node_filename(const BhNode *bs) { return bs->filename; }
const char *bh_node_driver_name(const BhNode *bs) { return bs->plugin->name; }
BhCacheMode bh_node_cache_mode(const BhNode *bs) { return bs->cache; }
BhDiscardMode bh_node_discard_mode(const BhNode *bs) { return bs->discard; }
BhDetectZeroes bh_node_detect_zeroes(const BhNode *bs)
{
    return bs->detect_zeroes;
}

int64_t bh_node_allocated_size(BhNode *bs)
{
    if (bs->drv->get_allocated_size)
        return bs->drv->get_allocated_size(bs);
    BhNode *file = bh_node_child(bs, "file");
    return file ? bh_node_allocated_size(file) : -1;
}

bool bh_node_can_fua(const BhNode *bs) { return !bs->readonly; }
bool bh_node_can_submit(const BhNode *bs) { return bs->drv->submit != NULL; }
/* A submit driver takes every op; its caps say which it does well. */
bool bh_node_can_zero(const BhNode *bs)
{
    return bs->drv->write_zeroes != NULL ||
           (bs->drv->submit && (bs->caps & BH_CAP_ZERO));
}
bool bh_node_can_discard(const BhNode *bs)
{
    return !bs->readonly && bs->discard == BH_DISCARD_UNMAP &&
           (bs->drv->discard != NULL ||
            (bs->drv->submit && (bs->caps & BH_CAP_DISCARD)));
}
bool bh_node_can_block_status(const BhNode *bs)
{
    return bs->drv->block_status != NULL;
}

bool bh_node_is_parallel(const BhNode *bs)
{
    if (bs->serialize)
        return false;
    for (guint i = 0; i < bs->children->len; i++)
        if (!bh_node_is_parallel(((BhChild *)bs->children->pdata[i])->node))
            return false;
    return true;
}

void bh_node_info(BhNode *bs, BhInfo *info)
{
    bh_info_add_str(info, "filename", bs->filename);
    bh_info_add_str(info, "format", bs->plugin->name);
    bh_info_add_int(info, "virtual-size", bh_node_size(bs));
    int64_t alloc = bh_node_allocated_size(bs);
    if (alloc >= 0)
        bh_info_add_int(info, "actual-size", alloc);
    bh_info_add_bool(info, "read-only", bs->readonly);
    bh_info_add_str(info, "cache", cache_names[bs->cache]);
    if (bs->drv->info)
        bs->drv->info(bs, info);
}
