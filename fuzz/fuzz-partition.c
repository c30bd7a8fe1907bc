/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Partition tables: the input is a whole (small) disk on a "memory" node.
 * The harness reads its table (MBR with the EBR chain, or GPT with the
 * backup header at the last LBA; sector size from the node, so 512 and
 * then 4096 are tried), describes every partition, opens the first four
 * and the last as read-only windows and reads their first and last
 * sector.
 */
#include "fuzz-util.h"
#include <blkhost/glib.h>

static void fuzz_partition_window(BhNode *disk, const BhPartition *p)
{
    g_autofree char *what = bh_partition_describe(p);
    BhNode *win = bh_partition_open(disk, p, true, NULL);
    if (!win)
        return;
    uint8_t buf[512];
    int64_t size = bh_node_size(win);
    if (size >= (int64_t)sizeof(buf)) {
        bh_node_pread(win, buf, 0, sizeof(buf), 0, NULL);
        bh_node_pread(win, buf, (uint64_t)size - sizeof(buf), sizeof(buf),
                      0, NULL);
    }
    bh_node_unref(win);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    fuzz_init();
    g_autoptr(BhNode) disk = fuzz_memory_node(data, len, 0);
    g_autoptr(BhPartitionTable) t = bh_partition_table_read(disk, 0, NULL);
    if (!t)
        return 0;
    /* Windows are one code path however many there are: the first four
     * and the last (a GPT may list 128, and opening each cost more than
     * reading the table). */
    for (guint i = 0; i < t->partitions->len; i++)
        if (i < 4 || i + 1 == t->partitions->len)
            fuzz_partition_window(disk, t->partitions->pdata[i]);
    return 0;
}
