/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bh_node_block_map: what `qemu-img map` shows of one area of a node,
 * through its backing chain.  Part of the library API (`blkhost map`,
 * node:map in Lua); drivers answer through BhDriver.block_map with the
 * BH_MAP_* flags of node.h.
 */
#ifndef BLKHOST_MAP_H
#define BLKHOST_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include <blkhost/node.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BhMapEntry {
    uint32_t flags;     /* BH_MAP_DATA / ZERO / OFFSET */
    bool present;       /* some layer of the chain holds the area */
    uint32_t depth;     /* 0: bs itself, n: its n-th backing file */
    uint64_t offset;    /* with BH_MAP_OFFSET: where in file */
    BhNode *file;       /* with BH_MAP_OFFSET: the node (borrowed) */
} BhMapEntry;
/* Map [offset, offset+*pnum) of bs through its backing chain: the first
 * layer holding the area (or the bottom one) answers, as in qemu-img
 * map.  *pnum is at least 1 and at most len. */
int bh_node_block_map(BhNode *bs, uint64_t offset, uint64_t len,
                      uint64_t *pnum, BhMapEntry *e, BhError **errp);

#ifdef __cplusplus
}
#endif

#endif
