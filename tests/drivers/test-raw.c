/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * raw windows: offset= and size= turn a file into a view of part of it.
 * Every request must land at the window's offset in the file, stop at the
 * window's end, and report status and info for the window, not the file.
 */
#include "drv-test.h"
#include <blkhost/glib.h>

#define KiB 1024

static void test_window(void)
{
    const char *img = scratch("win.img");
    make_sparse(img, 64 * KiB);
    poke_pattern(img, 0, 64 * KiB, 1);
    /* A hole inside the window, for block status. */
    int fd = open(img, O_RDWR);
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8 * KiB,
              4 * KiB);
    close(fd);

    BhNode *bs = open_ok(img, "format=raw,offset=4096,size=8192");
    ok(bs != NULL, "window offset=4096,size=8192 opens");
    if (!bs)
        return;
    is_int(bh_node_size(bs), 8192, "window: size is 8192");
    g_autofree char *map = extent_map(bs, 0, 8192);
    ok(g_str_equal(map, "D0+4096 H4096+4096"), "window: extents are "
       "relative to the window (data then the hole at file offset 8192)");
    if (!g_str_equal(map, "D0+4096 H4096+4096"))
        diag("map %s", map);

    uint8_t r[8192], expect[8192];
    int ret = bh_node_pread(bs, r, 0, 4096, 0, NULL);
    fill_pattern(expect, 4096, 4096, 1);
    ok(ret == 0 && memcmp(r, expect, 4096) == 0, "window: offset 0 reads "
       "the file at 4096");

    uint8_t w[100];
    fill_pattern(w, 100, 0, 2);
    ret = bh_node_pwrite(bs, w, 8192 - 100, 100, BH_IO_FUA, NULL);
    g_autofree uint8_t *disk = peek(img, 4096 + 8192 - 100, 200);
    fill_pattern(expect, 100, 12288, 1);
    ok(ret == 0 && memcmp(disk, w, 100) == 0 &&
       memcmp(disk + 100, expect, 100) == 0, "window: FUA write of the last "
       "100 bytes lands at file offset 12188, the next byte untouched");

    BhError *err = NULL;
    check_error(bh_node_pwrite(bs, w, 8190, 4, 0, &err), &err, ENOSPC, NULL,
                "window: write across the window's end refused with ENOSPC");
    check_error(bh_node_pread(bs, r, 8192, 1, 0, &err), &err, EINVAL, NULL,
                "window: read at the window's end refused with EINVAL");
    check_error(bh_node_truncate(bs, 4096, &err), &err, ENOTSUP, "window",
                "window: truncate refused with ENOTSUP");
    is_int(file_size(img), 64 * KiB, "window: the file kept its size");


    g_autoptr(BhInfo) info = bh_info_new();
    bh_node_info(bs, info);
    const BhInfoItem *off = bh_info_find(info, "offset");
    const BhInfoItem *sz = bh_info_find(info, "size");
    ok(off && off->i == 4096 && sz && sz->i == 8192, "window: info has "
       "offset 4096 and size 8192");
    bh_node_unref(bs);

    bs = open_ok(img, "format=raw,offset=60K");
    ok(bs && bh_node_size(bs) == 4 * KiB, "offset=60K alone: size is the "
       "rest of the file (4 KiB)");
    ret = bs ? bh_node_pread(bs, r, 0, 4096, 0, NULL) : -1;
    fill_pattern(expect, 4096, 60 * KiB, 1);
    ok(ret == 0 && memcmp(r, expect, 4096) == 0, "offset=60K: reads the "
       "file's last 4 KiB");
    if (bs)
        bh_node_unref(bs);

    bs = open_ok(img, "format=raw,offset=64K");
    ok(bs && bh_node_size(bs) == 0, "offset equal to the file size gives "
       "an empty window");
    if (bs)
        bh_node_unref(bs);

    bs = open_ok(img, "format=raw,offset=0,size=64K,readonly=on");
    ok(bs && bh_node_size(bs) == 64 * KiB, "window covering the whole file");
    if (bs)
        bh_node_unref(bs);
}

/* A window with discard=unmap punches holes at the right place only. */
static void test_window_discard(void)
{
    const char *img = scratch("wdisc.img");
    make_sparse(img, 256 * KiB);
    poke_pattern(img, 0, 256 * KiB, 3);
    BhNode *bs = open_ok(img, "format=raw,offset=64K,size=128K,discard=unmap");
    if (!bs) {
        ok(0, "window with discard=unmap opens");
        return;
    }
    int ret = bh_node_discard(bs, 0, 64 * KiB, NULL);
    is_int(ret, 0, "window: discard of its first 64 KiB");
    ret = bh_node_write_zeroes(bs, 64 * KiB, 64 * KiB, BH_IO_MAY_UNMAP, NULL);
    is_int(ret, 0, "window: write-zeroes may-unmap of its last 64 KiB");
    bh_node_unref(bs);

    bs = open_ok(img, "format=raw,readonly=on");
    g_autofree char *map = bs ? extent_map(bs, 0, 256 * KiB) : g_strdup("");
    ok(g_str_equal(map, "D0+65536 H65536+131072 D196608+65536"),
       "window: the holes are at file offsets 64K..192K, the rest is data");
    if (!g_str_equal(map, "D0+65536 H65536+131072 D196608+65536"))
        diag("map %s", map);
    uint8_t *r = g_malloc(256 * KiB), *expect = g_malloc(256 * KiB);
    ret = bs ? bh_node_pread(bs, r, 0, 256 * KiB, 0, NULL) : -1;
    fill_pattern(expect, 256 * KiB, 0, 3);
    memset(expect + 64 * KiB, 0, 128 * KiB);
    ok(ret == 0 && memcmp(r, expect, 256 * KiB) == 0, "window: data outside "
       "the window is intact");
    g_free(r);
    g_free(expect);
    if (bs)
        bh_node_unref(bs);
}

/* A window opened over an existing node (how partitions are made). */
static void test_open_over(void)
{
    const char *img = scratch("over.img");
    make_sparse(img, 1024 * KiB);
    poke_pattern(img, 512 * KiB, 4 * KiB, 4);
    BhNode *disk = open_ok(img, "format=raw,readonly=on");
    g_autoptr(BhOpts) o = bh_opts_parse("offset=512K,size=256K", NULL, NULL);
    BhError *err = NULL;
    BhNode *part = disk ? bh_node_open_over(disk, "raw", o, &err) : NULL;
    ok(part && bh_node_size(part) == 256 * KiB, "raw window over an open "
       "node: 256 KiB");
    if (err)
        diag("%s", bh_error_message(err));
    bh_error_clear(&err);
    uint8_t r[4096], expect[4096];
    fill_pattern(expect, 4096, 512 * KiB, 4);
    int ret = part ? bh_node_pread(part, r, 0, 4096, 0, NULL) : -1;
    ok(ret == 0 && memcmp(r, expect, 4096) == 0, "window over a node reads "
       "at its offset");
    ok(part && bh_node_is_readonly(part), "window over a read-only node is "
       "read-only");
    if (part)
        bh_node_unref(part);
    if (disk)
        bh_node_unref(disk);
}

int main(void)
{
    plan(21);
    test_window();
    test_window_discard();
    test_open_over();
    scratch_cleanup();
    return done();
}
