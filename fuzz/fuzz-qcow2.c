/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 driver: the input is an image file.  It is put on a "memory" node
 * and opened read-write with the qcow2 driver over it; then the harness
 * reads (start, middle, end), asks block status, lists the snapshots and
 * reads the first one through a snapshot node, writes two sectors and
 * reads them back, zeroes and discards a little, and flushes.  A backing file named
 * by the image becomes a "null" node, so no input can make the harness
 * open a host file.
 */
#include <string.h>

#include "fuzz-util.h"
#include <blkhost/glib.h>

/* Enough for the header, L1, a refcount table and a few clusters. */
#define QCOW2_FUZZ_IO 4096

static void fuzz_qcow2_read(BhNode *node, uint64_t off, uint64_t size)
{
    uint8_t buf[QCOW2_FUZZ_IO];
    if (off >= size)
        return;
    size_t len = (size_t)MIN((uint64_t)sizeof(buf), size - off);
    bh_node_pread(node, buf, off, len, 0, NULL);
}

static void fuzz_qcow2_extents(BhNode *node, uint64_t size)
{
    uint64_t off = 0;
    /* A bounded walk: an image may have millions of tiny extents. */
    for (int i = 0; i < 64 && off < size; i++) {
        uint64_t pnum = 0;
        uint32_t status = 0;
        if (bh_node_block_status(node, off, size - off, &pnum, &status,
                                 NULL) < 0 || pnum == 0)
            break;
        off += pnum;
    }
}

static void fuzz_qcow2_write(BhNode *node, uint64_t off, uint64_t size)
{
    uint8_t buf[1024], back[1024];
    if (off >= size || size - off < sizeof(buf))
        return;
    memset(buf, 0xa5, sizeof(buf));
    if (bh_node_pwrite(node, buf, off, sizeof(buf), 0, NULL) == 0 &&
        bh_node_pread(node, back, off, sizeof(back), 0, NULL) == 0 &&
        memcmp(buf, back, sizeof(buf)) != 0)
        g_error("qcow2: a write at %" G_GUINT64_FORMAT " reads back "
                "different data", off);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    fuzz_init();
    g_autoptr(BhNode) mem = fuzz_memory_node(data, len, 0);
    g_autoptr(BhOpts) opts = bh_opts_new();
    bh_opts_set(opts, "backing.format", "null");
    bh_opts_set(opts, "backing.size", "64M");
    BhNode *node = bh_node_open_over(mem, "qcow2", opts, NULL);
    if (!node)
        return 0;

    int64_t ssize = bh_node_size(node);
    uint64_t size = ssize > 0 ? (uint64_t)ssize : 0;
    g_autoptr(BhInfo) info = bh_info_new();
    bh_node_info(node, info);
    fuzz_qcow2_read(node, 0, size);
    fuzz_qcow2_read(node, size / 2, size);
    fuzz_qcow2_read(node, size > QCOW2_FUZZ_IO ? size - QCOW2_FUZZ_IO : 0,
                    size);
    fuzz_qcow2_extents(node, size);

    /* The first snapshot's own L1 table, read through a snapshot node. */
    GPtrArray *snaps = bh_node_snapshot_list(node, NULL);
    if (snaps && snaps->len) {
        const BhSnapshotInfo *sn = snaps->pdata[0];
        BhNode *view = bh_node_snapshot_open(node, sn->id, NULL, NULL);
        if (view) {
            int64_t vs = bh_node_size(view);
            fuzz_qcow2_read(view, 0, vs > 0 ? (uint64_t)vs : 0);
            bh_node_unref(view);
        }
    }
    if (snaps)
        g_ptr_array_unref(snaps);

    fuzz_qcow2_write(node, 0, size);
    fuzz_qcow2_write(node, size / 2 & ~(uint64_t)511, size);
    if (size >= 3 * QCOW2_FUZZ_IO) {
        /* zero clusters (v3) or allocated zeros (v2), then a discard */
        bh_node_write_zeroes(node, size / 4 & ~(uint64_t)511, QCOW2_FUZZ_IO,
                             BH_IO_MAY_UNMAP, NULL);
        bh_node_discard(node, size - 2 * QCOW2_FUZZ_IO, QCOW2_FUZZ_IO, NULL);
    }
    bh_node_flush(node, NULL);
    bh_node_unref(node);
    return 0;
}
