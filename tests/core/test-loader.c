/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The plugin loader against deliberately broken plugins: each refusal
 * names the file and the reason; an older, shorter descriptor still loads.
 * argv: testdrv, testdrv-dup, bad-abi, no-symbol, init-fail, init-null,
 *       old-struct, not-elf, no-pread, bad-thread, bad-kind, bad-flags,
 *       fe-no-stop, bad-reqflags, old-abi
 */
#include <string.h>

#include <blkhost/blkhost.h>

#include "tap.h"

static void refused(const char *what, const char *path, const char *want)
{
    BhError *err = NULL;
    const BhPluginRecord *r = bh_plugin_load(path, &err);
    bool good = err && strstr(bh_error_message(err), want) &&
                strstr(bh_error_message(err), path) && r && r->error;
    ok(good, "%s refused, naming the file: %s", what,
       err ? bh_error_message(err) : "(loaded!)");
    bh_error_clear(&err);
}

int main(int argc, char **argv)
{
    if (argc < 14) {
        printf("1..0 # SKIP needs the test plugin paths\n");
        return 0;
    }
    plan(19);
    BhError *err = NULL;
    const BhPluginRecord *r = bh_plugin_load(argv[1], &err);
    ok(r && !r->error && g_str_equal(r->name, "testdrv") &&
       r->kind == BH_PLUGIN_DRIVER, "testdrv loads by path");
    bh_error_clear(&err);
    ok(bh_plugin_find("testdrv", BH_PLUGIN_DRIVER) != NULL,
       "testdrv is found by name");
    r = bh_plugin_load(argv[1], &err);
    ok(r && !r->error, "loading the same file twice is not a duplicate");
    bh_error_clear(&err);

    refused("duplicate name", argv[2], "duplicate plugin name 'testdrv'");
    refused("wrong ABI", argv[3], "ABI version 99 is not supported (this "
            "blkhost supports 2 to 2)");
    refused("ABI v1 (before the libc-only ABI)", argv[15],
            "ABI version 1 is not supported (this blkhost supports 2 to 2)");
    refused("missing symbol", argv[4], "no blkhost_plugin_init symbol");
    refused("init failure", argv[5], "failed to initialise: needs "
            "/dev/frobnicator");
    refused("init returning NULL", argv[6], "failed (returned NULL)");
    refused("not an ELF file", argv[8], "not a shared object");
    refused("missing file", "/nonexistent/plugin.so",
            "No such file or directory");

    refused("driver without pread or submit", argv[9],
            "driver has no pread callback (open, get_length and pread or "
            "submit are required)");
    refused("driver declaring request flag 1<<9", argv[14],
            "driver declares unknown request flags 0x200 (this blkhost "
            "knows 0xf)");
    refused("thread model 5 (outside the enum)", argv[10],
            "unknown thread model 5");
    refused("plugin kind 7", argv[11], "unknown plugin kind 7");
    refused("driver flag 1<<30", argv[12],
            "driver has unknown flags 0x40000000");
    refused("frontend without stop", argv[13],
            "frontend has no stop callback");

    r = bh_plugin_load(argv[7], &err);
    ok(r && !r->error && r->desc.load == NULL,
       "older descriptor (struct_size without load) loads, fields past it "
       "read as NULL");
    bh_error_clear(&err);

    /* old-struct has no pwrite: it may only be opened read-only. */
    g_autoptr(BhOpts) o = bh_opts_new();
    bh_opts_set(o, "format", "old-struct");
    BhNode *bs = bh_node_open(NULL, o, &err);
    ok(!bs && err && strstr(bh_error_message(err), "cannot write") &&
       strstr(bh_error_message(err), "read-only"),
       "a driver without pwrite: a writable open is refused, saying to "
       "open read-only: %s", err ? bh_error_message(err) : "(opened!)");
    bh_error_clear(&err);
    return done();
}
