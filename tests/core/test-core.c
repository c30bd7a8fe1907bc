/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The core's I/O layer, observed through testdrv (a RAM driver without
 * native FUA or zeroing that counts its calls): range and permission
 * checks, emulation of missing callbacks, cache, discard and
 * detect-zeroes modes, and option refusals.  argv[1]: testdrv.so.
 */
#include <dlfcn.h>
#include <errno.h>
#include <string.h>

#include <blkhost/blkhost.h>

#include "tap.h"

typedef struct {
    int preads, pwrites, flushes, discards, zeroes, fua_writes;
} TestdrvStats;

static TestdrvStats *stats;

static BhNode *open_td(const char *extra, BhError **errp)
{
    g_autofree char *s = g_strdup_printf("format=testdrv,size=64K%s%s",
                                         extra ? "," : "", extra ? extra : "");
    g_autoptr(BhOpts) o = bh_opts_parse(s, NULL, NULL);
    memset(stats, 0, sizeof *stats);
    return bh_node_open(NULL, o, errp);
}

static void expect_err(int r, BhError **err, int want, const char *part,
                       const char *what)
{
    ok(r == -want && *err && bh_error_errno(*err) == want &&
       strstr(bh_error_message((*err)), part), "%s: %s", what,
       *err ? bh_error_message((*err)) : "(no error)");
    bh_error_clear(err);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("1..0 # SKIP needs the testdrv path\n");
        return 0;
    }
    plan(29);
    BhError *err = NULL;
    const BhPluginRecord *rec = bh_plugin_load(argv[1], &err);
    if (!rec || rec->error) {
        printf("Bail out! cannot load testdrv: %s\n", bh_error_message(err));
        return 1;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD);
    stats = h ? dlsym(h, "testdrv_stats") : NULL;
    if (!stats) {
        printf("Bail out! no testdrv_stats\n");
        return 1;
    }

    uint8_t buf[8192];
    BhNode *bs = open_td(NULL, &err);
    ok(bs && bh_node_size(bs) == 65536, "testdrv opens, 64 KiB");
    bh_error_clear(&err);

    /* ranges */
    expect_err(bh_node_pread(bs, buf, 65536 - 100, 200, 0, &err), &err,
               EINVAL, "read past the end", "read past the end is EINVAL");
    expect_err(bh_node_pwrite(bs, buf, 65536, 1, 0, &err), &err, ENOSPC,
               "write past the end", "write past the end is ENOSPC");
    expect_err(bh_node_pread(bs, buf, UINT64_MAX - 10, 100, 0, &err), &err,
               EINVAL, "overflows", "offset+length overflow is EINVAL");
    expect_err(bh_node_discard(bs, 65000, 1000, &err), &err, EINVAL,
               "past the end", "discard past the end is EINVAL");
    uint64_t pnum;
    uint32_t st;
    expect_err(bh_node_block_status(bs, 70000, 1, &pnum, &st, &err), &err,
               EINVAL, "past the end", "block status past the end is EINVAL");
    int before = stats->preads;
    ok(bh_node_pread(bs, buf, 65536, 0, 0, NULL) == 0 &&
       stats->preads == before, "zero-length read at the end succeeds "
       "without calling the driver");

    /* emulation */
    memset(buf, 0xab, sizeof buf);
    bh_node_pwrite(bs, buf, 0, 8192, 0, NULL);
    ok(bh_node_write_zeroes(bs, 0, 4096, 0, NULL) == 0 &&
       stats->zeroes == 0 && stats->pwrites == 2,
       "write_zeroes without driver support writes zeros");
    bh_node_pread(bs, buf, 0, 8192, 0, NULL);
    ok(buf[0] == 0 && buf[4095] == 0 && buf[4096] == 0xab,
       "the zeroed range reads as zeros, the rest is intact");
    expect_err(bh_node_write_zeroes(bs, 0, 4096, BH_IO_FAST_ZERO, &err), &err,
               ENOTSUP, "fast zeroing", "fast zero without support is "
               "ENOTSUP");
    int fl = stats->flushes;
    bh_node_pwrite(bs, buf, 0, 512, BH_IO_FUA, NULL);
    ok(stats->flushes == fl + 1 && stats->fua_writes == 0,
       "FUA without BH_CAP_FUA becomes write + flush");
    ok(bh_node_block_status(bs, 0, 65536, &pnum, &st, NULL) == 0 &&
       pnum == 65536 && st == 0, "no block_status callback: all data");
    int dc = stats->discards;
    ok(bh_node_discard(bs, 0, 4096, NULL) == 0 && stats->discards == dc,
       "discard=ignore (default) succeeds without calling the driver");
    bh_node_unref(bs);

    bs = open_td("discard=unmap", NULL);
    ok(bh_node_discard(bs, 0, 4096, NULL) == 0 && stats->discards == 1,
       "discard=unmap reaches the driver");
    bh_node_unref(bs);

    bs = open_td("cache=writethrough", NULL);
    bh_node_pwrite(bs, buf, 0, 512, 0, NULL);
    ok(stats->flushes == 1, "cache=writethrough flushes after each write");
    bh_node_unref(bs);

    bs = open_td("cache=unsafe", NULL);
    bh_node_pwrite(bs, buf, 0, 512, BH_IO_FUA, NULL);
    bh_node_flush(bs, NULL);
    ok(stats->flushes == 0, "cache=unsafe drops flush and FUA");
    bh_node_unref(bs);

    bs = open_td("zeroes=on,detect-zeroes=on", NULL);
    memset(buf, 0, 4096);
    bh_node_pwrite(bs, buf, 0, 4096, 0, NULL);
    ok(stats->zeroes == 1 && stats->pwrites == 0,
       "detect-zeroes=on turns a zero write into write_zeroes");
    memset(buf, 1, 4096);
    bh_node_pwrite(bs, buf, 0, 4096, 0, NULL);
    ok(stats->pwrites == 1, "a non-zero write stays a write");
    bh_node_unref(bs);

    /* read-only */
    bs = open_td("readonly=on", NULL);
    expect_err(bh_node_pwrite(bs, buf, 0, 1, 0, &err), &err, EPERM,
               "read-only", "write to a read-only node is EPERM");
    expect_err(bh_node_write_zeroes(bs, 0, 1, 0, &err), &err, EPERM,
               "read-only", "write_zeroes to a read-only node is EPERM");
    expect_err(bh_node_discard(bs, 0, 1, &err), &err, EPERM, "read-only",
               "discard on a read-only node is EPERM");
    ok(stats->pwrites == 0 && stats->zeroes == 0, "nothing reached the "
       "driver");
    bh_node_unref(bs);

    /* option refusals */
    bs = open_td("bogus=1", &err);
    ok(!bs && err && strstr(bh_error_message(err), "unknown option 'bogus' for "
                            "driver testdrv"), "unknown option named: %s",
       err ? bh_error_message(err) : "");
    bh_error_clear(&err);
    bs = open_td("cache=sometimes", &err);
    ok(!bs && err && strstr(bh_error_message(err), "cache"), "bad cache mode: %s",
       err ? bh_error_message(err) : "");
    bh_error_clear(&err);
    bs = open_td("detect-zeroes=unmap", &err);
    ok(!bs && err && strstr(bh_error_message(err), "requires discard=unmap"),
       "detect-zeroes=unmap without discard=unmap: %s",
       err ? bh_error_message(err) : "");
    bh_error_clear(&err);
    bs = open_td("size=lots", &err);
    ok(!bs && err && strstr(bh_error_message(err), "'lots' is not a number"),
       "size that is not a number: %s", err ? bh_error_message(err) : "");
    bh_error_clear(&err);
    g_autoptr(BhOpts) o = bh_opts_parse("format=nosuchformat", NULL, NULL);
    bs = bh_node_open("/dev/null", o, &err);
    ok(!bs && err && strstr(bh_error_message(err), "unknown format 'nosuchformat' "
                            "(available:") && strstr(bh_error_message(err), "testdrv"),
       "unknown format lists what exists: %s", err ? bh_error_message(err) : "");
    bh_error_clear(&err);

    /* windows over a node refuse to be writable over read-only */
    BhNode *ro = open_td("readonly=on", NULL);
    g_autoptr(BhOpts) wo = bh_opts_parse("readonly=off", NULL, NULL);
    BhNode *w = bh_node_open_over(ro, "testdrv", wo, &err);
    ok(!w && err, "a writable node over a read-only one is refused: %s",
       err ? bh_error_message(err) : "");
    bh_error_clear(&err);
    bh_node_unref(ro);

    /* ref counting */
    bs = open_td(NULL, NULL);
    bh_node_ref(bs);
    bh_node_unref(bs);
    ok(bh_node_size(bs) == 65536, "a node lives while referenced");
    bh_node_unref(bs);
    return done();
}
