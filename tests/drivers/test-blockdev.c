/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The file driver on a block device: a loop device over a scratch file
 * (skipped where losetup is not allowed).  Size from BLKGETSIZE64, round
 * trips that reach the backing file, discard and zeroing through
 * fallocate, O_DIRECT at the device's logical block size, and resize
 * refused.
 */
#include "drv-test.h"
#include <blkhost/glib.h>

#define MiB (1024 * 1024)

static char *loop_dev;

static bool loop_attach(const char *backing, char **why)
{
    char *argv[] = { "losetup", "--find", "--show", (char *)backing, NULL };
    g_autofree char *out = NULL, *errs = NULL;
    int status = 0;
    GError *err = NULL;
    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                      &out, &errs, &status, &err)) {
        *why = g_strdup(err->message);
        g_error_free(err);
        return false;
    }
    if (!g_spawn_check_wait_status(status, NULL) || !out || !*out) {
        *why = g_strdup_printf("losetup failed: %s", errs ? g_strstrip(errs)
                                                          : "?");
        return false;
    }
    loop_dev = g_strdup(g_strstrip(out));
    return true;
}

static void loop_detach(void)
{
    if (!loop_dev)
        return;
    char *argv[] = { "losetup", "-d", loop_dev, NULL };
    g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH |
                 G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                 NULL, NULL, NULL, NULL, NULL, NULL);
}

static void test_device(const char *backing)
{
    BhNode *bs = open_ok(loop_dev, "format=file,discard=unmap");
    ok(bs != NULL, "blockdev: %s opens read-write", loop_dev);
    if (!bs)
        return;
    is_int(bh_node_size(bs), 8 * MiB, "blockdev: size is 8 MiB");

    uint8_t *w = g_malloc(MiB), *r = g_malloc(MiB);
    fill_pattern(w, MiB, 4 * MiB, 1);
    int ret = bh_node_pwrite(bs, w, 4 * MiB, MiB, BH_IO_FUA, NULL);
    ret |= bh_node_pread(bs, r, 4 * MiB, MiB, 0, NULL);
    ok(ret == 0 && memcmp(w, r, MiB) == 0, "blockdev: FUA round trip of "
       "1 MiB");
    g_autofree uint8_t *disk = peek(backing, 4 * MiB, MiB);
    ok(memcmp(w, disk, MiB) == 0, "blockdev: the data reached the backing "
       "file");

    off_t before = file_blocks(backing);
    ret = bh_node_discard(bs, 4 * MiB, 512 * 1024, NULL);
    ok(ret == 0 && file_blocks(backing) < before, "blockdev: discard freed "
       "space in the backing file");
    ret = bh_node_write_zeroes(bs, 4 * MiB + 512 * 1024, 4096, 0, NULL);
    ret |= bh_node_pread(bs, r, 4 * MiB + 512 * 1024, 8192, 0, NULL);
    ok(ret == 0 && all_zero(r, 4096) &&
       memcmp(r + 4096, w + 512 * 1024 + 4096, 4096) == 0,
       "blockdev: write-zeroes clears exactly 4 KiB");

    ret = bh_node_discard(bs, 6 * MiB + 1000, 10000, NULL);
    is_int(ret, 0, "blockdev: unaligned discard (10000 bytes at 6 MiB + "
           "1000) succeeds");
    fill_pattern(w, 8192, 7 * MiB, 3);
    ret = bh_node_pwrite(bs, w, 7 * MiB, 8192, 0, NULL);
    ret |= bh_node_write_zeroes(bs, 7 * MiB + 100, 3000, 0, NULL);
    ret |= bh_node_pread(bs, r, 7 * MiB, 8192, 0, NULL);
    memset(w + 100, 0, 3000);
    ok(ret == 0 && memcmp(r, w, 8192) == 0, "blockdev: unaligned "
       "write-zeroes (3000 bytes at 7 MiB + 100) clears exactly those");

    BhError *err = NULL;
    check_error(bh_node_truncate(bs, 16 * MiB, &err), &err, ENOTSUP,
                "block device", "blockdev: resize to 16 MiB refused with "
                "ENOTSUP");
    is_int(bh_node_truncate(bs, 8 * MiB, NULL), 0, "blockdev: resize to its "
           "own size is a no-op");
    check_error(bh_node_pwrite(bs, w, 8 * MiB - 1, 2, 0, &err), &err, ENOSPC,
                NULL, "blockdev: write past the end refused with ENOSPC");
    bh_node_unref(bs);

    bs = open_ok(loop_dev, "cache=none");
    ok(bs && g_str_equal(bh_node_driver_name(bs), "raw"), "blockdev: "
       "probed as raw with cache=none");
    if (!bs) {
        g_free(w);
        g_free(r);
        return;
    }
    uint32_t min;
    bh_node_block_limits(bs, &min, NULL, NULL);
    ok(min >= 512, "blockdev: cache=none minimum block size %u", min);
    fill_pattern(w, 3001, 333, 2);
    ret = bh_node_pwrite(bs, w, 333, 3001, 0, NULL);
    ret |= bh_node_pread(bs, r, 0, 4096, 0, NULL);
    g_free(disk);
    disk = peek(backing, 0, 4096);
    ok(ret == 0 && memcmp(r + 333, w, 3001) == 0 &&
       memcmp(disk, r, 4096) == 0 && all_zero(r, 333),
       "blockdev: cache=none unaligned write of 3001 bytes at 333");
    bh_node_unref(bs);
    g_free(w);
    g_free(r);
}

int main(void)
{
    const char *backing = scratch("loop-backing.img");
    make_sparse(backing, 8 * MiB);
    char *why = NULL;
    if (!loop_attach(backing, &why)) {
        printf("1..0 # SKIP no loop device: %s\n", why);
        scratch_cleanup();
        return 0;
    }
    plan(14);
    test_device(backing);
    loop_detach();
    scratch_cleanup();
    return done();
}
