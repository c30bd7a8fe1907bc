/*
 * One source, several deliberately broken plugins, chosen by -DBROKEN_*:
 * each one must be refused by the loader with a message naming the file
 * and the reason.  OLD_STRUCT is the opposite: a plugin built against an
 * older, shorter descriptor, which must still load.
 */
#include <errno.h>
#include <stddef.h>

#include <blkhost/blkhost.h>

#ifndef BROKEN_NO_SYMBOL

static int broken_open(BhNode *bs, const char *filename, BhOpts *opts,
                       uint32_t flags, GError **errp)
{
    return -ENOTSUP;
}

static const BhDriver broken_driver = {
    .struct_size = sizeof(BhDriver),
    .flags = BH_DRIVER_PROTOCOL | BH_DRIVER_NO_PROBE,
    .open = broken_open,
};

#ifdef BROKEN_INIT_FAIL
static bool broken_load(GError **errp)
{
    g_set_error(errp, BH_ERROR, ENODEV, "needs /dev/frobnicator, which "
                "this machine does not have");
    return false;
}
#endif

static const BhPluginDesc desc = {
#ifdef BROKEN_ABI
    .abi_version = 99,
#else
    .abi_version = BH_PLUGIN_ABI_VERSION,
#endif
#ifdef OLD_STRUCT
    /* As if built before load/unload existed. */
    .struct_size = offsetof(BhPluginDesc, load),
#else
    .struct_size = sizeof(BhPluginDesc),
#endif
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = BROKEN_NAME,
    .version = "0",
    .description = "deliberately broken test plugin",
    .driver = &broken_driver,
#ifdef BROKEN_INIT_FAIL
    .load = broken_load,
#endif
#ifdef OLD_STRUCT
    /* Past struct_size: the loader must not look at it. */
    .load = (bool (*)(GError **))1,
#endif
};

#ifdef BROKEN_INIT_NULL
BH_PLUGIN_EXPORT const BhPluginDesc *blkhost_plugin_init(void);
BH_PLUGIN_EXPORT const BhPluginDesc *blkhost_plugin_init(void)
{
    (void)desc;
    return NULL;
}
#else
BH_PLUGIN_REGISTER(desc)
#endif

#else
/* No blkhost_plugin_init at all. */
BH_PLUGIN_EXPORT int not_a_plugin(void);
BH_PLUGIN_EXPORT int not_a_plugin(void) { return 42; }
#endif
