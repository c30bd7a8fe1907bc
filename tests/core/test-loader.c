/*
 * The plugin loader against deliberately broken plugins: each refusal
 * names the file and the reason; an older, shorter descriptor still loads.
 * argv: testdrv, testdrv-dup, bad-abi, no-symbol, init-fail, init-null,
 *       old-struct, not-elf
 */
#include <string.h>

#include <blkhost/blkhost.h>

#include "tap.h"

static void refused(const char *what, const char *path, const char *want)
{
    GError *err = NULL;
    const BhPluginRecord *r = bh_plugin_load(path, &err);
    bool good = err && strstr(err->message, want) &&
                strstr(err->message, path) && r && r->error;
    ok(good, "%s refused, naming the file: %s", what,
       err ? err->message : "(loaded!)");
    g_clear_error(&err);
}

int main(int argc, char **argv)
{
    if (argc < 9) {
        printf("1..0 # SKIP needs the test plugin paths\n");
        return 0;
    }
    plan(11);
    GError *err = NULL;
    const BhPluginRecord *r = bh_plugin_load(argv[1], &err);
    ok(r && !r->error && g_str_equal(r->name, "testdrv") &&
       r->kind == BH_PLUGIN_DRIVER, "testdrv loads by path");
    g_clear_error(&err);
    ok(bh_plugin_find("testdrv", BH_PLUGIN_DRIVER) != NULL,
       "testdrv is found by name");
    r = bh_plugin_load(argv[1], &err);
    ok(r && !r->error, "loading the same file twice is not a duplicate");
    g_clear_error(&err);

    refused("duplicate name", argv[2], "duplicate plugin name 'testdrv'");
    refused("wrong ABI", argv[3], "ABI version 99 is not supported (this "
            "blkhost supports 1 to 1)");
    refused("missing symbol", argv[4], "no blkhost_plugin_init symbol");
    refused("init failure", argv[5], "failed to initialise: needs "
            "/dev/frobnicator");
    refused("init returning NULL", argv[6], "failed (returned NULL)");
    refused("not an ELF file", argv[8], "not a shared object");
    refused("missing file", "/nonexistent/plugin.so",
            "No such file or directory");

    r = bh_plugin_load(argv[7], &err);
    ok(r && !r->error && r->desc.load == NULL,
       "older descriptor (struct_size without load) loads, fields past it "
       "read as NULL");
    g_clear_error(&err);
    return done();
}
