/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One source, several deliberately broken plugins, chosen by -DBROKEN_*:
 * each one must be refused by the loader with a message naming the file
 * and the reason (bad ABI, no symbol, failing or NULL init, a driver
 * without pread, an unknown thread model, kind or driver flag, a
 * frontend without stop, request flags this core does not know, an ABI
 * older than v2).  OLD_STRUCT is the opposite: a plugin built against an
 * older, shorter descriptor, which must still load.  Those that fake
 * their version fields write blkhost_plugin_init by hand, since
 * BH_PLUGIN_REGISTER fills them in.
 */
#include <errno.h>
#include <stddef.h>

#include <blkhost/blkhost.h>

#ifndef BROKEN_NO_SYMBOL

#ifndef BROKEN_FRONTEND
static int broken_open(BhNode *bs, const char *filename, BhOpts *opts,
                       uint32_t flags, BhError **errp)
{
    return -ENOTSUP;
}

static int64_t broken_get_length(BhNode *bs)
{
    return 0;
}

#ifndef BROKEN_NO_PREAD
static int broken_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                        uint32_t flags, BhError **errp)
{
    return -EIO;
}
#endif

static const BhDriver broken_driver = {
    .struct_size = sizeof(BhDriver),  /* for the hand-written inits */
#ifdef BROKEN_REQFLAGS
    .request_flags = BH_IO_FUA | (1u << 9),
#endif
#ifdef BROKEN_FLAGS
    .flags = BH_DRIVER_PROTOCOL | (1u << 30),
#else
    .flags = BH_DRIVER_PROTOCOL | BH_DRIVER_NO_PROBE,
#endif
    .open = broken_open,
    .get_length = broken_get_length,
#ifndef BROKEN_NO_PREAD
    .pread = broken_pread,
#endif
};
#else
static void *broken_fe_create(BhOpts *opts, BhError **errp)
{
    return NULL;
}

static int broken_fe_start(void *fe, BhError **errp)
{
    return 0;
}

static void broken_fe_destroy(void *fe)
{
}

/* No stop: a frontend that could never be stopped. */
static const BhFrontend broken_frontend = {
    .struct_size = sizeof(BhFrontend),
    .create = broken_fe_create,
    .start = broken_fe_start,
    .destroy = broken_fe_destroy,
};
#endif

#ifdef BROKEN_INIT_FAIL
static bool broken_load(BhError **errp)
{
    bh_error_set(errp, ENODEV, "needs /dev/frobnicator, which "
                "this machine does not have");
    return false;
}
#endif

static const BhPluginDesc desc = {
#if defined(BROKEN_ABI)
    .abi_version = 99,
#elif defined(OLD_ABI)
    .abi_version = 1,
#else
    .abi_version = BH_PLUGIN_ABI_VERSION,
#endif
#ifdef OLD_STRUCT
    /* As if built before load/unload existed. */
    .struct_size = offsetof(BhPluginDesc, load),
#else
    .struct_size = sizeof(BhPluginDesc),
#endif
#if defined(BROKEN_KIND)
    .kind = 7,
#elif defined(BROKEN_FRONTEND)
    .kind = BH_PLUGIN_FRONTEND,
#else
    .kind = BH_PLUGIN_DRIVER,
#endif
#ifdef BROKEN_THREAD
    .thread_model = 5,
#else
    .thread_model = BH_THREAD_PARALLEL,
#endif
    .name = BROKEN_NAME,
    .version = "0",
    .description = "deliberately broken test plugin",
#ifdef BROKEN_FRONTEND
    .frontend = &broken_frontend,
#else
    .driver = &broken_driver,
#endif
#ifdef BROKEN_INIT_FAIL
    .load = broken_load,
#endif
#ifdef OLD_STRUCT
    /* Past struct_size: the loader must not look at it. */
    .load = (bool (*)(BhError **))1,
#endif
};

#ifdef BROKEN_INIT_NULL
BH_PLUGIN_EXPORT const BhPluginDesc *blkhost_plugin_init(void);
BH_PLUGIN_EXPORT const BhPluginDesc *blkhost_plugin_init(void)
{
    (void)desc;
    return NULL;
}
#elif defined(BROKEN_ABI) || defined(OLD_ABI) || defined(OLD_STRUCT)
BH_PLUGIN_EXPORT const BhPluginDesc *blkhost_plugin_init(void);
BH_PLUGIN_EXPORT const BhPluginDesc *blkhost_plugin_init(void)
{
    return &desc;
}
#else
BH_PLUGIN_REGISTER(desc)
#endif

#else
/* No blkhost_plugin_init at all. */
BH_PLUGIN_EXPORT int not_a_plugin(void);
BH_PLUGIN_EXPORT int not_a_plugin(void) { return 42; }
#endif
