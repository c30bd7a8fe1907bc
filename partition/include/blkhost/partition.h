/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Partition tables: reading MBR (with the EBR chain of logical partitions)
 * and GPT from a node, finding a partition by number, label, UUID or type,
 * and opening it as a window node.
 *
 * Callers: the Lua binding (node:partitions(), node:partition()), hence
 * `blkhost info --partitions` and the qemu-nbd-compatible `-P N`.  Nothing
 * here writes to the disk.
 *
 * What is accepted (everything else is a clear error, nothing is guessed):
 *  - MBR: signature 55 aa, boot indicators 0x00 or 0x80.  Primaries are
 *    numbered 1-4 by slot; extended partitions (0x05, 0x0f, 0x85) are
 *    listed themselves and followed along their EBR chain, whose data
 *    partitions are numbered from 5 in chain order, as Linux does.  Every
 *    EBR lies inside its extended partition and strictly after the one
 *    that links to it, so a chain cannot loop; logical partitions lie
 *    inside the extended partition.
 *  - GPT: a protective MBR (a 0xee entry) means GPT.  The header at LBA 1
 *    and its entry array are checked (signature, header CRC32, its own
 *    LBA, usable range inside the disk, entry size a multiple of 8 and
 *    at least 128, the array at most 16 MiB and outside the usable range,
 *    array CRC32); if anything fails the backup header at the last LBA is
 *    used instead and a g_warning says why.  Without a protective MBR a
 *    GPT is still used (with a warning) when no valid MBR is there.
 *  - A partition running past the end of the disk makes the whole read
 *    fail (EINVAL) naming the partition: a truncated image is reported,
 *    not half-listed.
 *  - Sector size: 0 means "from the node": 4096 if its minimum block size
 *    is 4096, else 512; and if no GPT is found at that size, the other of
 *    512/4096 is tried, so 4K-sector images in plain files are found.  An
 *    explicit size (a power of two from 512 to 65536) is used alone.
 *
 * Errors are in BH_ERROR: ENOENT "no partition table", EINVAL for a
 * damaged table, EFBIG for an entry array over the limit, or the I/O
 * error of the read that failed.
 */
#ifndef BLKHOST_PARTITION_H
#define BLKHOST_PARTITION_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include <blkhost/node.h>

G_BEGIN_DECLS

typedef struct BhPartition {
    int number;            /* MBR: 1-4 primaries, 5.. logicals; GPT: entry index + 1 */
    const char *scheme;    /* "mbr" or "gpt" (static) */
    char *type;            /* MBR "0x83"; GPT type GUID "0FC63DAF-8483-..." */
    const char *type_name; /* "linux", "swap", "efi-system", ... or NULL (static) */
    char *uuid;            /* GPT unique GUID; MBR "1234abcd-05" like Linux's PARTUUID */
    char *label;           /* GPT name as UTF-8 (may be ""); NULL for MBR */
    uint64_t offset;       /* bytes from the start of the disk */
    uint64_t size;         /* bytes */
    bool bootable;         /* MBR boot indicator 0x80; GPT attribute bit 2 */
    uint64_t attributes;   /* GPT attribute bits; MBR: the boot indicator */
    bool logical;          /* MBR: inside an extended partition */
} BhPartition;

typedef struct BhPartitionTable {
    const char *scheme;    /* "mbr" or "gpt" (static) */
    uint32_t sector_size;  /* the sector size the table was read with */
    char *id;              /* GPT disk GUID; MBR disk signature "0x1234abcd" */
    bool backup_used;      /* GPT: the primary header was damaged */
    GPtrArray *partitions; /* BhPartition *, by number; owns them */
} BhPartitionTable;

void bh_partition_free(BhPartition *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BhPartition, bh_partition_free)

/* Read the partition table of disk.  sector_size 0: see above. */
BhPartitionTable *bh_partition_table_read(BhNode *disk, uint32_t sector_size,
                                          BhError **errp);
void bh_partition_table_free(BhPartitionTable *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BhPartitionTable, bh_partition_table_free)

/* Just the partitions (a GPtrArray that frees its BhPartitions). */
GPtrArray *bh_partitions_read(BhNode *disk, uint32_t sector_size,
                              BhError **errp);

/* What to look for: every field set must match (number 0 and NULL fields
 * match anything).  label matches exactly; uuid and type ignore case;
 * type also accepts an MBR type without "0x" or leading zeros ("83",
 * "0x83", "5"). */
typedef struct BhPartitionMatch {
    int number;
    const char *label;
    const char *uuid;
    const char *type;
    const char *type_name;
} BhPartitionMatch;

/* The one partition of parts matching m (borrowed from parts).  ENOENT
 * when none does (the message lists the partitions there are), EINVAL
 * when several do (the message lists them). */
const BhPartition *bh_partitions_find(GPtrArray *parts,
                                      const BhPartitionMatch *m,
                                      BhError **errp);

/* A window node over disk covering p: the raw driver with offset and
 * size.  A writable window over a read-only disk is refused (EPERM). */
BhNode *bh_partition_open(BhNode *disk, const BhPartition *p, bool readonly,
                          BhError **errp);

/* One line naming p for messages: "2 (gpt, linux, label 'root', 1 GiB at
 * 1 MiB)".  g_free the result. */
char *bh_partition_describe(const BhPartition *p);

G_END_DECLS

#endif
