/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Partition tables: MBR with its chain of EBRs, and GPT with its backup.
 * Everything read from the disk is checked before it is used as an offset
 * or a length; the rules and the error codes are in
 * include/blkhost/partition.h.  Partitions are only ever opened as raw
 * windows over the disk node, so this file does no data I/O of its own.
 */
#define G_LOG_DOMAIN "blkhost"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <zlib.h>

#include <blkhost/error.h>
#include <blkhost/partition.h>
#include <blkhost/glib.h>

#include "partition-types.h"

#define MBR_SIZE 512
#define MBR_TYPE_GPT 0xee
#define EBR_MAX 2048               /* logical partitions per extended one */
#define GPT_ARRAY_MAX (16u << 20)  /* bytes of entry array we accept */
#define GPT_HEADER_MIN 92

/* What every reader shares: the disk, its size and the sector size the
 * table is being read with. */
typedef struct PartDisk {
    BhNode *node;
    const char *name;     /* for messages */
    uint64_t size;        /* bytes */
    uint32_t ss;          /* sector size */
    uint64_t sectors;     /* whole sectors on the disk */
} PartDisk;

static uint16_t part_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t part_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t part_le64(const uint8_t *p)
{
    return (uint64_t)part_le32(p) | (uint64_t)part_le32(p + 4) << 32;
}

/* Read nsect sectors at lba, which the caller has checked lie on the disk. */
static bool part_read(PartDisk *d, uint64_t lba, uint64_t nsect, void *buf,
                      BhError **errp)
{
    int r = bh_node_pread(d->node, buf, lba * d->ss, (size_t)(nsect * d->ss),
                          0, errp);
    if (r < 0 && errp && !*errp)
        bh_error_set(errp, -r, "cannot read sector %" PRIu64 " of '%s': %s",
                     lba, d->name, g_strerror(-r));
    return r >= 0;
}

void bh_partition_free(BhPartition *p)
{
    if (!p)
        return;
    g_free(p->type);
    g_free(p->uuid);
    g_free(p->label);
    g_free(p);
}

void bh_partition_table_free(BhPartitionTable *t)
{
    if (!t)
        return;
    g_free(t->id);
    if (t->partitions)
        g_ptr_array_unref(t->partitions);
    g_free(t);
}

static BhPartition *part_add(BhPartitionTable *t, int number, uint64_t lba,
                             uint64_t nsect)
{
    BhPartition *p = g_new0(BhPartition, 1);
    p->number = number;
    p->scheme = t->scheme;
    p->offset = lba * t->sector_size;
    p->size = nsect * t->sector_size;
    g_ptr_array_add(t->partitions, p);
    return p;
}

/* ---- MBR ---- */

static const char *mbr_type_name(uint8_t type)
{
    for (size_t i = 0; i < G_N_ELEMENTS(mbr_names); i++)
        if (mbr_names[i].type == type)
            return mbr_names[i].name;
    return NULL;
}

static bool mbr_is_extended(uint8_t type)
{
    return type == 0x05 || type == 0x0f || type == 0x85;
}

typedef struct MbrEntry {
    uint8_t boot;
    uint8_t type;
    uint32_t start; /* relative LBA */
    uint32_t count;
} MbrEntry;

static MbrEntry mbr_entry(const uint8_t *sector, int slot)
{
    const uint8_t *e = sector + 446 + 16 * slot;
    MbrEntry m = { e[0], e[4], part_le32(e + 8), part_le32(e + 12) };
    return m;
}

static bool mbr_entry_empty(const MbrEntry *m)
{
    return m->type == 0 || m->count == 0;
}

/* A boot sector of a partitionless FAT disk also ends in 55 aa; its
 * "entries" are code and rarely have clean 0x00/0x80 boot indicators. */
static bool mbr_valid(const uint8_t *sector)
{
    if (sector[510] != 0x55 || sector[511] != 0xaa)
        return false;
    for (int i = 0; i < 4; i++) {
        uint8_t b = sector[446 + 16 * i];
        if (b != 0 && b != 0x80)
            return false;
    }
    return true;
}

static bool mbr_has_protective(const uint8_t *sector)
{
    for (int i = 0; i < 4; i++)
        if (mbr_entry(sector, i).type == MBR_TYPE_GPT)
            return true;
    return false;
}

static void mbr_fill(BhPartition *p, const MbrEntry *m, uint32_t disk_sig)
{
    p->type = g_strdup_printf("0x%02x", m->type);
    p->type_name = mbr_type_name(m->type);
    p->uuid = g_strdup_printf("%08" PRIx32 "-%02x", disk_sig, p->number);
    p->bootable = m->boot == 0x80;
    p->attributes = m->boot;
}

/* Follow the EBR chain of the extended partition ext (primary number
 * ext_no, at LBA ext_start, ext_count sectors long), appending logical
 * partitions numbered from *next.  Each EBR holds one logical partition,
 * relative to the EBR itself, and a link to the next EBR, relative to the
 * start of the extended partition; every link must go strictly forward
 * inside the extended partition, which bounds the walk. */
static bool mbr_read_chain(PartDisk *d, BhPartitionTable *t, int ext_no,
                           uint64_t ext_start, uint64_t ext_count,
                           uint32_t disk_sig, int *next, BhError **errp)
{
    uint64_t ext_end = ext_start + ext_count; /* exclusive */
    uint64_t ebr = ext_start;
    g_autofree uint8_t *buf = g_malloc(d->ss);

    for (int hops = 0;; hops++) {
        if (hops >= EBR_MAX)
            return bh_error_set(errp, EINVAL, "'%s': extended partition %d "
                                "has more than %d EBRs", d->name, ext_no,
                                EBR_MAX), false;
        if (!part_read(d, ebr, 1, buf, errp))
            return false;
        if (buf[510] != 0x55 || buf[511] != 0xaa) {
            /* A fresh, empty extended partition may not have an EBR yet;
             * a link to an unsigned sector is damage. */
            if (hops == 0)
                return true;
            return bh_error_set(errp, EINVAL, "'%s': the EBR at LBA %" PRIu64
                                " in extended partition %d has no 55 aa "
                                "signature", d->name, ebr, ext_no), false;
        }
        bool have_link = false;
        uint64_t link = 0;
        for (int i = 0; i < 4; i++) {
            MbrEntry m = mbr_entry(buf, i);
            if (mbr_entry_empty(&m))
                continue;
            if (mbr_is_extended(m.type)) {
                if (!have_link) {
                    have_link = true;
                    link = ext_start + m.start;
                }
                continue;
            }
            uint64_t start = ebr + m.start;
            uint64_t end = start + m.count;
            if (m.start == 0 || start < ext_start || end > ext_end)
                return bh_error_set(errp, EINVAL, "'%s': logical partition "
                                    "%d (sectors %" PRIu64 "..%" PRIu64 ", "
                                    "from the EBR at LBA %" PRIu64 ") lies "
                                    "outside extended partition %d (sectors "
                                    "%" PRIu64 "..%" PRIu64 ")", d->name,
                                    *next, start, end - 1, ebr, ext_no,
                                    ext_start, ext_end - 1), false;
            BhPartition *p = part_add(t, (*next)++, start, m.count);
            p->logical = true;
            mbr_fill(p, &m, disk_sig);
        }
        if (!have_link)
            return true;
        if (link == ebr)
            return bh_error_set(errp, EINVAL, "'%s': the EBR at LBA %" PRIu64
                                " links to itself", d->name, ebr), false;
        if (link < ebr)
            return bh_error_set(errp, EINVAL, "'%s': the EBR at LBA %" PRIu64
                                " links back to LBA %" PRIu64 " (each EBR "
                                "must come after the one linking to it)",
                                d->name, ebr, link), false;
        if (link >= ext_end)
            return bh_error_set(errp, EINVAL, "'%s': the EBR at LBA %" PRIu64
                                " links to LBA %" PRIu64 ", outside extended "
                                "partition %d (sectors %" PRIu64 "..%" PRIu64
                                ")", d->name, ebr, link, ext_no, ext_start,
                                ext_end - 1), false;
        ebr = link;
    }
}

static bool mbr_read(PartDisk *d, const uint8_t *sector, BhPartitionTable *t,
                     BhError **errp)
{
    uint32_t disk_sig = part_le32(sector + 440);
    MbrEntry e[4];

    t->scheme = "mbr";
    t->id = g_strdup_printf("0x%08" PRIx32, disk_sig);
    for (int i = 0; i < 4; i++) {
        e[i] = mbr_entry(sector, i);
        if (mbr_entry_empty(&e[i]))
            continue;
        uint64_t end = (uint64_t)e[i].start + e[i].count;
        if (e[i].start == 0)
            return bh_error_set(errp, EINVAL, "'%s': partition %d starts at "
                                "sector 0, over the MBR", d->name, i + 1),
                   false;
        if (end > d->sectors)
            return bh_error_set(errp, EINVAL, "'%s': partition %d (sectors "
                                "%" PRIu32 "..%" PRIu64 ") runs past the end "
                                "of the disk (%" PRIu64 " sectors of %" PRIu32
                                " bytes)", d->name, i + 1, e[i].start,
                                end - 1, d->sectors, d->ss), false;
        BhPartition *p = part_add(t, i + 1, e[i].start, e[i].count);
        mbr_fill(p, &e[i], disk_sig);
    }
    /* Logical partitions come after all primaries, numbered from 5 in
     * chain order, as Linux numbers them. */
    int next = 5;
    for (int i = 0; i < 4; i++) {
        if (mbr_entry_empty(&e[i]) || !mbr_is_extended(e[i].type))
            continue;
        if (!mbr_read_chain(d, t, i + 1, e[i].start, e[i].count, disk_sig,
                            &next, errp))
            return false;
    }
    return true;
}

/* ---- GPT ---- */

static const char *gpt_type_name(const char *guid)
{
    for (size_t i = 0; i < G_N_ELEMENTS(gpt_names); i++)
        if (g_ascii_strcasecmp(gpt_names[i].guid, guid) == 0)
            return gpt_names[i].name;
    return NULL;
}

/* GUIDs are stored mixed-endian: the first three fields little-endian,
 * the last eight bytes in order. */
static char *gpt_guid_string(const uint8_t *g)
{
    return g_strdup_printf("%08" PRIX32 "-%04X-%04X-%02X%02X-"
                           "%02X%02X%02X%02X%02X%02X", part_le32(g),
                           part_le16(g + 4), part_le16(g + 6), g[8], g[9],
                           g[10], g[11], g[12], g[13], g[14], g[15]);
}

static bool gpt_guid_is_zero(const uint8_t *g)
{
    for (int i = 0; i < 16; i++)
        if (g[i])
            return false;
    return true;
}

/* The 36 UTF-16LE code units of a name, up to the first NUL; unpaired
 * surrogates become U+FFFD so the result is always valid UTF-8. */
static char *gpt_name_utf8(const uint8_t *p, int units)
{
    GString *s = g_string_new(NULL);
    for (int i = 0; i < units; i++) {
        gunichar c = part_le16(p + 2 * i);
        if (c == 0)
            break;
        if (c >= 0xd800 && c < 0xdc00 && i + 1 < units) {
            gunichar lo = part_le16(p + 2 * (i + 1));
            if (lo >= 0xdc00 && lo < 0xe000) {
                c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                i++;
            } else {
                c = 0xfffd;
            }
        } else if (c >= 0xd800 && c < 0xe000) {
            c = 0xfffd;
        }
        g_string_append_unichar(s, c);
    }
    return g_string_free(s, FALSE);
}

typedef struct GptHeader {
    uint64_t my_lba, alt_lba, first_usable, last_usable, entries_lba;
    uint32_t count, entry_size, entries_crc;
    uint8_t disk_guid[16];
    uint8_t *entries;   /* count * entry_size bytes, CRC checked */
} GptHeader;

/* Read and check the header at lba and its entry array.  *seen tells
 * whether an "EFI PART" signature was there at all, so that a disk with
 * no GPT is told apart from a damaged one.  Messages name only the
 * problem; the caller says which header it was. */
static bool gpt_load(PartDisk *d, uint64_t lba, GptHeader *h, bool *seen,
                     BhError **errp)
{
    g_autofree uint8_t *buf = g_malloc(d->ss);

    *seen = false;
    memset(h, 0, sizeof(*h));
    if (!part_read(d, lba, 1, buf, errp))
        return false;
    if (memcmp(buf, "EFI PART", 8) != 0)
        return bh_error_set(errp, ENOENT, "no 'EFI PART' signature"), false;
    *seen = true;

    uint32_t hsize = part_le32(buf + 12);
    if (hsize < GPT_HEADER_MIN || hsize > d->ss)
        return bh_error_set(errp, EINVAL, "header size %" PRIu32 " is not "
                            "between %d and the sector size %" PRIu32, hsize,
                            GPT_HEADER_MIN, d->ss), false;
    uint32_t stored = part_le32(buf + 16);
    memset(buf + 16, 0, 4);
    /* GPT's CRC-32 is zlib's (IEEE polynomial, reflected, inverted). */
    uint32_t crc = (uint32_t)crc32(0, buf, hsize);
    if (crc != stored)
        return bh_error_set(errp, EINVAL, "header CRC32 field is 0x%08"
                            PRIx32 " but the header's CRC32 is 0x%08" PRIx32,
                            stored, crc), false;

    h->my_lba = part_le64(buf + 24);
    h->alt_lba = part_le64(buf + 32);
    h->first_usable = part_le64(buf + 40);
    h->last_usable = part_le64(buf + 48);
    memcpy(h->disk_guid, buf + 56, 16);
    h->entries_lba = part_le64(buf + 72);
    h->count = part_le32(buf + 80);
    h->entry_size = part_le32(buf + 84);
    h->entries_crc = part_le32(buf + 88);

    if (h->my_lba != lba)
        return bh_error_set(errp, EINVAL, "the header says it is at LBA %"
                            PRIu64, h->my_lba), false;
    if (h->first_usable > h->last_usable || h->last_usable >= d->sectors)
        return bh_error_set(errp, EINVAL, "usable LBAs %" PRIu64 "..%" PRIu64
                            " do not fit the disk (%" PRIu64 " sectors of %"
                            PRIu32 " bytes)", h->first_usable, h->last_usable,
                            d->sectors, d->ss), false;
    if (h->entry_size < 128 || h->entry_size % 8)
        return bh_error_set(errp, EINVAL, "partition entry size %" PRIu32
                            " is not a multiple of 8 of at least 128",
                            h->entry_size), false;
    uint64_t bytes = (uint64_t)h->count * h->entry_size;
    if (bytes > GPT_ARRAY_MAX)
        return bh_error_set(errp, EFBIG, "partition entry array of %" PRIu32
                            " entries of %" PRIu32 " bytes is larger than "
                            "the %u MiB allowed", h->count, h->entry_size,
                            GPT_ARRAY_MAX >> 20), false;
    uint64_t nsect = (bytes + d->ss - 1) / d->ss;
    uint64_t a = h->entries_lba;
    bool inside = a >= 1 && a < d->sectors && nsect <= d->sectors - a;
    bool clash = (lba >= a && lba < a + nsect) ||
                 (a <= h->last_usable && a + nsect > h->first_usable);
    if (!inside || clash)
        return bh_error_set(errp, EINVAL, "partition entry array at LBA %"
                            PRIu64 " (%" PRIu64 " sectors) is %s", a, nsect,
                            !inside ? "not on the disk"
                                    : "over the header or the usable LBAs"),
               false;

    h->entries = g_malloc(nsect * d->ss);
    if (!part_read(d, a, nsect, h->entries, errp)) {
        g_clear_pointer(&h->entries, g_free);
        return false;
    }
    crc = (uint32_t)crc32(0, h->entries, (uInt)bytes);
    if (crc != h->entries_crc) {
        g_clear_pointer(&h->entries, g_free);
        return bh_error_set(errp, EINVAL, "the header gives partition entry "
                            "array CRC32 0x%08" PRIx32 " but the array's "
                            "CRC32 is 0x%08" PRIx32, h->entries_crc, crc),
               false;
    }
    return true;
}

static bool gpt_parse_entries(PartDisk *d, const GptHeader *h,
                              BhPartitionTable *t, BhError **errp)
{
    for (uint32_t i = 0; i < h->count; i++) {
        const uint8_t *e = h->entries + (size_t)i * h->entry_size;
        if (gpt_guid_is_zero(e))
            continue;
        uint64_t first = part_le64(e + 32), last = part_le64(e + 40);
        int number = (int)i + 1;
        if (first > last)
            return bh_error_set(errp, EINVAL, "'%s': GPT partition %d ends "
                                "(LBA %" PRIu64 ") before it starts (LBA %"
                                PRIu64 ")", d->name, number, last, first),
                   false;
        if (last >= d->sectors)
            return bh_error_set(errp, EINVAL, "'%s': partition %d (LBA %"
                                PRIu64 "..%" PRIu64 ") runs past the end of "
                                "the disk (%" PRIu64 " sectors of %" PRIu32
                                " bytes)", d->name, number, first, last,
                                d->sectors, d->ss), false;
        if (first < h->first_usable || last > h->last_usable)
            return bh_error_set(errp, EINVAL, "'%s': partition %d (LBA %"
                                PRIu64 "..%" PRIu64 ") lies outside the "
                                "usable LBAs %" PRIu64 "..%" PRIu64, d->name,
                                number, first, last, h->first_usable,
                                h->last_usable), false;
        BhPartition *p = part_add(t, number, first, last - first + 1);
        p->type = gpt_guid_string(e);
        p->type_name = gpt_type_name(p->type);
        p->uuid = gpt_guid_string(e + 16);
        p->attributes = part_le64(e + 48);
        p->bootable = (p->attributes & (1u << 2)) != 0;
        p->label = gpt_name_utf8(e + 56, 36);
    }
    return true;
}

/* Read the GPT at the current sector size.  Returns false with *absent
 * set when neither header has a signature (so the caller may try another
 * sector size or report "no partition table"). */
static bool gpt_read(PartDisk *d, BhPartitionTable *t, bool *absent,
                     BhError **errp)
{
    GptHeader h;
    bool seen1 = false, seen2 = false;
    g_autoptr(BhError) e1 = NULL;
    g_autoptr(BhError) e2 = NULL;
    uint64_t backup = d->sectors - 1;

    *absent = false;
    if (d->sectors < 3) {
        *absent = true;
        return bh_error_set(errp, ENOENT, "disk too small for a GPT"), false;
    }
    if (!gpt_load(d, 1, &h, &seen1, &e1)) {
        if (!gpt_load(d, backup, &h, &seen2, &e2)) {
            if (!seen1 && !seen2 && bh_error_errno(e1) == ENOENT &&
                bh_error_errno(e2) == ENOENT) {
                *absent = true;
                return bh_error_set(errp, ENOENT, "no GPT header at LBA 1 "
                                    "or %" PRIu64, backup), false;
            }
            /* Report the primary's problem code: it is the header users
             * and tools look at first. */
            int code = seen1 ? bh_error_errno(e1) : bh_error_errno(e2);
            return bh_error_set(errp, code, "'%s': no valid GPT (sector size "
                                "%" PRIu32 "): primary header at LBA 1: %s; "
                                "backup header at LBA %" PRIu64 ": %s",
                                d->name, d->ss, bh_error_message(e1), backup,
                                bh_error_message(e2)), false;
        }
        g_warning("'%s': the primary GPT header at LBA 1 is damaged (%s); "
                  "using the backup header at LBA %" PRIu64, d->name,
                  bh_error_message(e1), backup);
        t->backup_used = true;
    }
    t->scheme = "gpt";
    t->id = gpt_guid_string(h.disk_guid);
    bool ok = gpt_parse_entries(d, &h, t, errp);
    g_free(h.entries);
    return ok;
}

/* ---- the table ---- */

static int part_cmp_number(gconstpointer a, gconstpointer b)
{
    const BhPartition *pa = *(BhPartition *const *)a;
    const BhPartition *pb = *(BhPartition *const *)b;
    return (pa->number > pb->number) - (pa->number < pb->number);
}

static BhPartitionTable *part_table_new(uint32_t ss)
{
    BhPartitionTable *t = g_new0(BhPartitionTable, 1);
    t->sector_size = ss;
    t->partitions = g_ptr_array_new_with_free_func(
        (GDestroyNotify)bh_partition_free);
    return t;
}

/* Try GPT at sector size ss; NULL with *absent when there is none. */
static BhPartitionTable *part_try_gpt(PartDisk *d, uint32_t ss, bool *absent,
                                      BhError **errp)
{
    d->ss = ss;
    d->sectors = d->size / ss;
    BhPartitionTable *t = part_table_new(ss);
    if (!gpt_read(d, t, absent, errp)) {
        bh_partition_table_free(t);
        return NULL;
    }
    return t;
}

/* Look for a GPT at each of the sizes in turn.  When none is found, the
 * error is the most telling one: damage at some size beats absence. */
static BhPartitionTable *part_find_gpt(PartDisk *d, const uint32_t *sizes,
                                       int nsizes, bool protective,
                                       BhError **errp)
{
    g_autoptr(BhError) best = NULL;
    for (int i = 0; i < nsizes; i++) {
        BhError *err = NULL;
        bool absent = false;
        if (d->size / sizes[i] < 3)
            continue;
        BhPartitionTable *t = part_try_gpt(d, sizes[i], &absent, &err);
        if (t)
            return t;
        if (!best || (bh_error_errno(best) == ENOENT &&
                      bh_error_errno(err) != ENOENT)) {
            bh_error_clear(&best);
            best = err;
        } else {
            bh_error_free(err);
        }
    }
    if (best && bh_error_errno(best) != ENOENT) {
        bh_error_propagate(errp, g_steal_pointer(&best));
    } else if (protective) {
        bh_error_set(errp, EINVAL, "'%s': the MBR is a GPT protective MBR "
                     "but no GPT header was found", d->name);
    } else {
        bh_error_set(errp, ENOENT, "'%s': no partition table (no MBR "
                     "signature 55 aa at byte 510 and no GPT header)",
                     d->name);
    }
    return NULL;
}

BhPartitionTable *bh_partition_table_read(BhNode *disk, uint32_t sector_size,
                                          BhError **errp)
{
    PartDisk d = { .node = disk, .name = bh_node_filename(disk) };
    if (!d.name)
        d.name = bh_node_driver_name(disk);

    if (sector_size &&
        (sector_size < 512 || sector_size > 65536 ||
         (sector_size & (sector_size - 1))))
        return bh_error_set(errp, EINVAL, "sector size %" PRIu32 " is not "
                            "a power of two from 512 to 65536", sector_size),
               NULL;
    uint32_t sizes[2];
    int nsizes = 1;
    if (sector_size) {
        sizes[0] = sector_size;
    } else {
        uint32_t min, pref, max;
        bh_node_block_limits(disk, &min, &pref, &max);
        sizes[0] = min == 4096 ? 4096 : 512;
        sizes[1] = sizes[0] == 4096 ? 512 : 4096;
        nsizes = 2;
    }

    int64_t size = bh_node_size(disk);
    if (size < 0)
        return bh_error_set(errp, (int)-size, "cannot get the size of '%s'",
                            d.name), NULL;
    d.size = (uint64_t)size;
    if (d.size < MBR_SIZE || d.size < sizes[0])
        return bh_error_set(errp, ENOENT, "'%s': no partition table (the "
                            "disk is only %" PRIu64 " bytes)", d.name,
                            d.size), NULL;

    uint8_t mbr[MBR_SIZE];
    if (bh_node_pread(disk, mbr, 0, sizeof(mbr), 0, errp) < 0)
        return NULL;
    bool has_mbr = mbr_valid(mbr);
    bool protective = has_mbr && mbr_has_protective(mbr);

    BhPartitionTable *t = NULL;
    if (protective || !has_mbr) {
        /* A protective MBR says GPT; with no MBR at all a GPT is still
         * worth finding (a wiped first sector, a bare GPT image). */
        t = part_find_gpt(&d, sizes, nsizes, protective, errp);
        if (!t)
            return NULL;
        if (!protective)
            g_warning("'%s': GPT found without a protective MBR", d.name);
    } else {
        d.ss = sizes[0];
        d.sectors = d.size / d.ss;
        t = part_table_new(d.ss);
        if (!mbr_read(&d, mbr, t, errp)) {
            bh_partition_table_free(t);
            return NULL;
        }
    }
    g_ptr_array_sort(t->partitions, part_cmp_number);
    return t;
}

GPtrArray *bh_partitions_read(BhNode *disk, uint32_t sector_size,
                              BhError **errp)
{
    BhPartitionTable *t = bh_partition_table_read(disk, sector_size, errp);
    if (!t)
        return NULL;
    GPtrArray *parts = g_steal_pointer(&t->partitions);
    bh_partition_table_free(t);
    return parts;
}

/* ---- finding and opening ---- */

/* "16 MiB", three significant digits as qemu-img prints sizes (glib's
 * g_format_size puts a no-break space in, which messages do not want). */
static char *part_human_size(uint64_t bytes)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB",
                                         "PiB", "EiB" };
    double v = (double)bytes;
    int u = 0;
    while (v >= 1000.0 && u < 6) {
        v /= 1024.0;
        u++;
    }
    return g_strdup_printf("%.3g %s", v, units[u]);
}

char *bh_partition_describe(const BhPartition *p)
{
    GString *s = g_string_new(NULL);
    g_autofree char *size = part_human_size(p->size);
    g_string_append_printf(s, "%d (%s, %s", p->number, p->scheme,
                           p->type_name ? p->type_name : p->type);
    if (p->label && *p->label)
        g_string_append_printf(s, ", label '%s'", p->label);
    g_string_append_printf(s, ", %s at offset %" PRIu64 ")", size, p->offset);
    return g_string_free(s, FALSE);
}

/* MBR types compare as numbers so "83", "0x83" and "0x083" are one type. */
static bool part_type_matches(const BhPartition *p, const char *want)
{
    if (g_ascii_strcasecmp(p->type, want) == 0)
        return true;
    if (strcmp(p->scheme, "mbr") != 0)
        return false;
    const char *w = want;
    if (w[0] == '0' && (w[1] == 'x' || w[1] == 'X'))
        w += 2;
    guint64 v;
    if (!*w || !g_ascii_string_to_unsigned(w, 16, 0, 0xff, &v, NULL))
        return false;
    return v == g_ascii_strtoull(p->type + 2, NULL, 16);
}

static bool part_matches(const BhPartition *p, const BhPartitionMatch *m)
{
    if (m->number && p->number != m->number)
        return false;
    if (m->label && g_strcmp0(p->label, m->label) != 0)
        return false;
    if (m->uuid && g_ascii_strcasecmp(p->uuid, m->uuid) != 0)
        return false;
    if (m->type && !part_type_matches(p, m->type))
        return false;
    if (m->type_name && g_strcmp0(p->type_name, m->type_name) != 0)
        return false;
    return true;
}

static char *part_match_describe(const BhPartitionMatch *m)
{
    GString *s = g_string_new(NULL);
    if (m->number)
        g_string_append_printf(s, " number %d", m->number);
    if (m->label)
        g_string_append_printf(s, " label '%s'", m->label);
    if (m->uuid)
        g_string_append_printf(s, " uuid %s", m->uuid);
    if (m->type)
        g_string_append_printf(s, " type %s", m->type);
    if (m->type_name)
        g_string_append_printf(s, " type_name '%s'", m->type_name);
    if (!s->len)
        g_string_append(s, " (anything)");
    return g_string_free(s, FALSE);
}

static char *part_list(GPtrArray *parts, const BhPartitionMatch *m)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < parts->len; i++) {
        if (m && !part_matches(parts->pdata[i], m))
            continue;
        g_autofree char *d = bh_partition_describe(parts->pdata[i]);
        g_string_append_printf(s, "%s%s", s->len ? "; " : "", d);
    }
    return g_string_free(s, FALSE);
}

const BhPartition *bh_partitions_find(GPtrArray *parts,
                                      const BhPartitionMatch *m,
                                      BhError **errp)
{
    const BhPartition *hit = NULL;
    guint n = 0;
    for (guint i = 0; i < parts->len; i++) {
        if (part_matches(parts->pdata[i], m)) {
            hit = parts->pdata[i];
            n++;
        }
    }
    if (n == 1)
        return hit;
    g_autofree char *want = part_match_describe(m);
    if (n == 0) {
        g_autofree char *all = part_list(parts, NULL);
        bh_error_set(errp, ENOENT, "no partition with%s; the table has %s",
                     want, parts->len ? all : "no partitions");
    } else {
        g_autofree char *list = part_list(parts, m);
        bh_error_set(errp, EINVAL, "%u partitions have%s: %s; say which "
                     "one by number or uuid", n, want, list);
    }
    return NULL;
}

BhNode *bh_partition_open(BhNode *disk, const BhPartition *p, bool readonly,
                          BhError **errp)
{
    g_autoptr(BhOpts) opts = bh_opts_new();
    g_autofree char *off = g_strdup_printf("%" PRIu64, p->offset);
    g_autofree char *size = g_strdup_printf("%" PRIu64, p->size);
    bh_opts_set(opts, "offset", off);
    bh_opts_set(opts, "size", size);
    bh_opts_set(opts, "readonly", readonly ? "on" : "off");
    return bh_node_open_over(disk, "raw", opts, errp);
}
