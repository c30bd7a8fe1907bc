/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhSnapshotInfo: what a driver says about one internal snapshot, and the
 * list a driver's snapshot_list callback fills.  Part of the plugin ABI.
 *
 * The core allocates every BhSnapshotInfo (bh_snapshot_info_new) and sets
 * struct_size to its own size: a plugin built against a newer header
 * checks struct_size before touching fields an older core lacks.
 */
#ifndef BLKHOST_SNAPSHOT_INFO_H
#define BLKHOST_SNAPSHOT_INFO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BH_SNAPSHOT_NO_ICOUNT UINT64_MAX
/* Longest id or name a snapshot may have (bytes). */
#define BH_SNAPSHOT_MAX_NAME 1023

typedef struct BhSnapshotInfo {
    uint32_t struct_size;    /* set by the core */
    char *id;                /* create: NULL lets the driver pick one */
    char *name;
    uint64_t vm_state_size;  /* bytes of saved state, 0 for disk-only */
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t disk_size;      /* virtual size when taken */
    uint64_t icount;         /* BH_SNAPSHOT_NO_ICOUNT: none */
} BhSnapshotInfo;

/* Strings are malloc'd copies owned by the info: set them with
 * bh_snapshot_info_set_id/name, free all with bh_snapshot_info_free. */
BhSnapshotInfo *bh_snapshot_info_new(void);
void bh_snapshot_info_free(BhSnapshotInfo *info);
BhSnapshotInfo *bh_snapshot_info_copy(const BhSnapshotInfo *info);
void bh_snapshot_info_set_id(BhSnapshotInfo *info, const char *id);
void bh_snapshot_info_set_name(BhSnapshotInfo *info, const char *name);

/* What snapshot_list fills: append each snapshot (the list takes info). */
typedef struct BhSnapshotList BhSnapshotList;
void bh_snapshot_list_add(BhSnapshotList *list, BhSnapshotInfo *info);

#ifdef __cplusplus
}
#endif

#endif
