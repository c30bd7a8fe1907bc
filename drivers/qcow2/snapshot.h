/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 internal snapshots and the vmstate area: what snapshot.c,
 * snapshot-table.c and vmstate.c share, and the hooks qcow2.c calls.
 */
#ifndef BH_QCOW2_SNAPSHOT_H
#define BH_QCOW2_SNAPSHOT_H

#include "qcow2.h"

/* One snapshot table entry with everything the file holds. */
typedef struct Qcow2SnEntry {
    uint64_t l1_offset;
    uint32_t l1_size;
    char *id, *name;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock;
    uint64_t vm_state_size;
    uint64_t disk_size;
    uint64_t icount;
    uint8_t *extra;          /* all extra bytes as found (unknown kept) */
    uint32_t extra_size;
} Qcow2SnEntry;

/* snapshot-table.c */
void qcow2_sn_entry_clear(Qcow2SnEntry *e);
/* Read and check the whole table from the file: a GArray of Qcow2SnEntry
 * (free with qcow2_sn_table_free). */
GArray *qcow2_sn_table_read(Qcow2State *s, BhError **errp);
void qcow2_sn_table_free(GArray *t);
int qcow2_sn_find(GArray *t, const char *id_or_name);
/* The table as written to the file (each entry padded to 8 bytes). */
GByteArray *qcow2_sn_table_serialize(GArray *t);
/* Make s->snapshots & co. describe t, now at offset (bytes long). */
void qcow2_sn_table_refresh(Qcow2State *s, GArray *t, uint64_t offset,
                            uint64_t bytes);

/* snapshot-commit.c: switch to a new active L1 (l1_n entries reaching
 * the L2 tables src_l1 reaches, copied where their COPIED flags change),
 * virtual size new_size, snapshot table t and the refcounts that follow,
 * in one header write; then give back what only the old state used. */
int qcow2_snapshot_commit_locked(Qcow2State *s, const uint64_t *src_l1,
                                 uint64_t l1_n, uint64_t new_size, GArray *t,
                                 BhError **errp);

/* snapshot-refs.c: the refcounts a commit switches to, as copies of the
 * refcount blocks that change; new clusters come from those free in both
 * the committed and the new refcounts. */
typedef struct Qcow2NewRefs Qcow2NewRefs;
/* from_scratch: counts start at 0, not at the committed refcounts (the
 * refcount rebuild of a dirty image). */
Qcow2NewRefs *qcow2_new_refs_new(Qcow2State *s, bool from_scratch);
void qcow2_new_refs_free(Qcow2NewRefs *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Qcow2NewRefs, qcow2_new_refs_free)
int qcow2_new_refs_add(Qcow2NewRefs *r, uint64_t offset, uint64_t bytes,
                       int64_t delta, BhError **errp);
/* The counting walks: an L1 table (read from the file unless mem holds
 * it, host endian) or an L2 table, with everything they reach, each
 * reference checked to lie inside the file. */
int qcow2_new_refs_check_l1e(Qcow2NewRefs *r, uint64_t i, uint64_t e,
                             BhError **errp);
int qcow2_new_refs_count_l2(Qcow2NewRefs *r, uint64_t l2_off, int64_t delta,
                            BhError **errp);
int qcow2_new_refs_count_l1(Qcow2NewRefs *r, uint64_t offset, uint32_t n,
                            const uint64_t *mem, int64_t delta,
                            BhError **errp);
int qcow2_new_refs_get(Qcow2NewRefs *r, uint64_t cluster, uint64_t *v,
                       BhError **errp);
/* rebuild.c: count every reference but the refcount structure's own
 * (header, active L1, snapshot table, snapshot L1s, what they reach). */
int qcow2_count_references(Qcow2State *s, Qcow2NewRefs *r, BhError **errp);
/* bitmaps.c: the part of it that persistent bitmaps hold. */
int qcow2_bitmaps_count_references(Qcow2State *s, Qcow2NewRefs *r,
                                   BhError **errp);
/* n contiguous clusters, counted once; the byte offset of the first. */
int64_t qcow2_new_refs_alloc(Qcow2NewRefs *r, uint64_t n, BhError **errp);
/* Last: free the committed refcount table, place the changed blocks and a
 * new table. */
int qcow2_new_refs_place(Qcow2NewRefs *r, BhError **errp);
/* Write the changed blocks and the new table (the caller flushes). */
int qcow2_new_refs_write(Qcow2NewRefs *r, BhError **errp);
uint64_t qcow2_new_refs_table_offset(Qcow2NewRefs *r, uint32_t *clusters);
/* Once the header switch is on disk: punch out and cut off what only the
 * old state used, make the new table s->reftable; the lowest cluster
 * freed (UINT64_MAX: none). */
uint64_t qcow2_new_refs_switched(Qcow2NewRefs *r);
/* Instead, on failure before the switch: cut what went past the end. */
void qcow2_new_refs_abandon(Qcow2NewRefs *r);

/* snapshot.c */
/* An L1 table of n entries at offset, host endian (free with g_free). */
int qcow2_snapshot_read_l1(Qcow2State *s, uint64_t offset, uint32_t n,
                           uint64_t **out, BhError **errp);
int qcow2_snapshot_list(BhNode *bs, BhSnapshotList *out, BhError **errp);
int qcow2_snapshot_create(BhNode *bs, BhSnapshotInfo *info, BhError **errp);
int qcow2_snapshot_apply(BhNode *bs, const char *id_or_name, BhError **errp);
int qcow2_snapshot_delete(BhNode *bs, const char *id_or_name, BhError **errp);
/* Open hook: option snapshot=ID_OR_NAME makes a read-only open show the
 * snapshot (its L1 table and disk size). */
int qcow2_snapshot_open_option(Qcow2State *s, BhOpts *opts, BhError **errp);

/* vmstate.c */
uint64_t qcow2_vmstate_offset(Qcow2State *s);
int qcow2_save_vmstate(BhNode *bs, const void *buf, uint64_t pos,
                       size_t len, BhError **errp);
int qcow2_load_vmstate(BhNode *bs, void *buf, uint64_t pos, size_t len,
                       BhError **errp);
/* Entries of the active L1 that map the virtual disk (the vmstate area
 * starts at the next one). */
uint64_t qcow2_vmstate_l1_index(Qcow2State *s);
/* Make the active L1 at least n entries (new table, one header write). */
int qcow2_grow_l1_locked(Qcow2State *s, uint64_t n, BhError **errp);

#endif
