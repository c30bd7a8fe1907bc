/* SPDX-License-Identifier: BSD-3-Clause */
/* The C API of core/partition.c on tables built by hand in a memory node:
 * CRC-32 vectors, error codes (ENOENT, EINVAL, EFBIG) that Lua cannot see,
 * 4096-byte sectors from the node's block size, MBR types and numbering,
 * GPT names with surrogate pairs, find and describe. */
#include <errno.h>
#include <string.h>
#include <zlib.h>

#include <blkhost/blkhost.h>

#include "tap.h"

#define MiB (1024 * 1024)

static BhNode *disk_new(uint64_t size)
{
    g_autoptr(BhOpts) o = bh_opts_new();
    g_autofree char *s = g_strdup_printf("%" PRIu64, size);
    bh_opts_set(o, "format", "memory");
    bh_opts_set(o, "size", s);
    BhError *err = NULL;
    BhNode *bs = bh_node_open(NULL, o, &err);
    if (!bs) {
        diag("cannot open a memory node: %s", bh_error_message(err));
        exit(1);
    }
    return bs;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static void mbr_entry(uint8_t *sec, int slot, uint8_t boot, uint8_t type,
                      uint32_t start, uint32_t count)
{
    uint8_t *e = sec + 446 + 16 * slot;
    e[0] = boot;
    e[4] = type;
    put32(e + 8, start);
    put32(e + 12, count);
    sec[510] = 0x55;
    sec[511] = 0xaa;
}

static void wr(BhNode *bs, uint64_t off, const void *buf, size_t len)
{
    BhError *err = NULL;
    if (bh_node_pwrite(bs, buf, off, len, 0, &err) < 0) {
        diag("write failed: %s", bh_error_message(err));
        exit(1);
    }
}

/* A GPT at sector size ss with one entry (type: linux), named name (128
 * UTF-16 bytes given raw). */
static void gpt_write(BhNode *bs, uint32_t ss, uint64_t sectors,
                      const uint8_t *name, size_t name_len)
{
    uint8_t *mbr = g_malloc0(ss);
    mbr_entry(mbr, 0, 0, 0xee, 1, (uint32_t)MIN(sectors - 1, 0xffffffffu));
    wr(bs, 0, mbr, ss);
    g_free(mbr);

    uint32_t count = 128, esize = 128;
    uint64_t asect = (count * esize + ss - 1) / ss;
    uint8_t *arr = g_malloc0(asect * ss);
    static const uint8_t linux_type[16] = {
        0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
        0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4 };
    memcpy(arr, linux_type, 16);
    for (int i = 0; i < 16; i++)
        arr[16 + i] = (uint8_t)(i + 1);
    put64(arr + 32, 2 + asect);
    put64(arr + 40, 2 + asect + 7);
    put64(arr + 48, 1ull << 2 | 1ull << 60);
    memcpy(arr + 56, name, MIN(name_len, 72));
    uint32_t acrc = (uint32_t)crc32(0, arr, count * esize);

    for (int which = 0; which < 2; which++) {
        uint64_t lba = which ? sectors - 1 : 1;
        uint64_t alba = which ? sectors - 1 - asect : 2;
        uint8_t *h = g_malloc0(ss);
        memcpy(h, "EFI PART", 8);
        put32(h + 8, 0x10000);
        put32(h + 12, 92);
        put64(h + 24, lba);
        put64(h + 32, which ? 1 : sectors - 1);
        put64(h + 40, 2 + asect);
        put64(h + 48, sectors - 2 - asect);
        memset(h + 56, 0xab, 16);
        put64(h + 72, alba);
        put32(h + 80, count);
        put32(h + 84, esize);
        put32(h + 88, acrc);
        put32(h + 16, (uint32_t)crc32(0, h, 92));
        wr(bs, lba * ss, h, ss);
        wr(bs, alba * ss, arr, asect * ss);
        g_free(h);
    }
    g_free(arr);
}

static void test_crc(void)
{
    is_int(crc32(0, (const Bytef *)"123456789", 9), 0xcbf43926u, "crc32('123456789') is 0xcbf43926");
    is_int(crc32(0, (const Bytef *)"", 0), 0, "crc32 of nothing is 0");
    uLong part = crc32(0, (const Bytef *)"12345", 5);
    is_int(crc32(part, (const Bytef *)"6789", 4), 0xcbf43926u, "crc32 continues across pieces");
}

static void test_errors(void)
{
    BhError *err = NULL;
    g_autoptr(BhNode) zero = disk_new(MiB);
    bool r = bh_partitions_read(zero, 0, &err) != NULL;
    ok(!r && err && bh_error_errno(err) == ENOENT &&
       strstr(bh_error_message(err), "no partition table"),
       "zeros: ENOENT 'no partition table' (%s)", err ? bh_error_message(err) : "-");
    bh_error_clear(&err);

    g_autoptr(BhNode) d = disk_new(MiB);
    uint8_t sec[512] = { 0 };
    mbr_entry(sec, 0, 0x80, 0x83, 2048, 4096); /* 2 MiB on a 1 MiB disk */
    wr(d, 0, sec, 512);
    r = bh_partitions_read(d, 0, &err) != NULL;
    ok(!r && err && bh_error_errno(err) == EINVAL &&
       strstr(bh_error_message(err), "partition 1 (sectors 2048..6143) runs past the end"),
       "partition past the end: EINVAL (%s)", err ? bh_error_message(err) : "-");
    bh_error_clear(&err);

    ok(!bh_partitions_read(d, 3000, &err) && err && bh_error_errno(err) == EINVAL,
       "sector size 3000: EINVAL");
    bh_error_clear(&err);

    /* Both GPT headers claim 2^31 entries. */
    g_autoptr(BhNode) g = disk_new(MiB);
    uint8_t name[4] = { 'x', 0 };
    gpt_write(g, 512, MiB / 512, name, 2);
    for (int which = 0; which < 2; which++) {
        uint64_t lba = which ? MiB / 512 - 1 : 1;
        uint8_t h[512];
        bh_node_pread(g, h, lba * 512, 512, 0, NULL);
        put32(h + 80, 0x80000000u);
        put32(h + 16, 0);
        put32(h + 16, (uint32_t)crc32(0, h, 92));
        wr(g, lba * 512, h, 512);
    }
    r = bh_partitions_read(g, 0, &err) != NULL;
    ok(!r && err && bh_error_errno(err) == EFBIG,
       "GPT entry count 2^31: EFBIG (%s)", err ? bh_error_message(err) : "-");
    bh_error_clear(&err);
}

static void test_mbr(void)
{
    BhError *err = NULL;
    g_autoptr(BhNode) d = disk_new(8 * MiB);
    uint8_t sec[512] = { 0 };
    put32(sec + 440, 0xdeadbeef);
    mbr_entry(sec, 1, 0x00, 0x0c, 2048, 2048);  /* slot 2; slot 1 empty */
    mbr_entry(sec, 2, 0x00, 0x0f, 4096, 8192);  /* LBA extended */
    wr(d, 0, sec, 512);
    /* An EBR with two data entries (Linux takes both) and a link. */
    uint8_t ebr[512] = { 0 };
    mbr_entry(ebr, 0, 0, 0x83, 64, 1000);
    mbr_entry(ebr, 1, 0, 0x82, 1100, 500);
    mbr_entry(ebr, 2, 0, 0x05, 2048, 4096);
    wr(d, 4096 * 512ull, ebr, 512);
    uint8_t ebr2[512] = { 0 };
    mbr_entry(ebr2, 0, 0, 0x8e, 1, 4095);
    wr(d, (4096 + 2048) * 512ull, ebr2, 512);

    g_autoptr(BhPartitionTable) t = bh_partition_table_read(d, 0, &err);
    if (!ok(t != NULL, "hand-made MBR with 0x0f extended read")) {
        diag("%s", bh_error_message(err));
        bh_error_clear(&err);
        return;
    }
    GPtrArray *p = t->partitions;
    is_int(p->len, 5, "five partitions: 2, 3, and logicals 5, 6, 7");
    GString *nums = g_string_new(NULL);
    for (guint i = 0; i < p->len; i++)
        g_string_append_printf(nums, "%d ", ((BhPartition *)p->pdata[i])->number);
    ok(strcmp(nums->str, "2 3 5 6 7 ") == 0, "numbers %s", nums->str);
    g_string_free(nums, TRUE);
    BhPartition *p2 = p->pdata[0], *p6 = p->pdata[3], *p7 = p->pdata[4];
    ok(strcmp(p2->type, "0x0c") == 0 && strcmp(p2->type_name, "fat32") == 0,
       "type 0x0c is fat32");
    ok(strcmp(p2->uuid, "deadbeef-02") == 0, "MBR uuid deadbeef-02");
    is_int(p6->offset, (4096 + 1100) * 512ull, "second data entry of one EBR is partition 6");
    is_int(p7->offset, (4096 + 2048 + 1) * 512ull, "logical 7 is relative to its own EBR");
    ok(strcmp(t->id, "0xdeadbeef") == 0, "table id 0xdeadbeef");

    BhPartitionMatch m = { .type_name = "swap" };
    const BhPartition *hit = bh_partitions_find(p, &m, &err);
    ok(hit && hit->number == 6, "find type_name=swap -> 6");
    BhPartitionMatch none = { .label = "x" };
    ok(!bh_partitions_find(p, &none, &err) && bh_error_errno(err) == ENOENT,
       "find label=x on MBR: ENOENT");
    bh_error_clear(&err);
    BhPartitionMatch all = { .type = "83" };
    hit = bh_partitions_find(p, &all, &err);
    ok(hit && hit->number == 5, "find type=83 -> 5");
    BhPartitionMatch two = { 0 };
    hit = bh_partitions_find(p, &two, &err);
    ok(!hit && err && bh_error_errno(err) == EINVAL &&
       strstr(bh_error_message(err), "5 partitions have (anything)"),
       "find with no selector: EINVAL ambiguous (%s)", err ? bh_error_message(err) : "-");
    bh_error_clear(&err);
    char *desc = bh_partition_describe(p2);
    ok(strstr(desc, "2 (mbr, fat32, 1 MiB at offset 1048576)") != NULL,
       "describe: %s", desc);
    g_free(desc);

    g_autoptr(BhNode) w = bh_partition_open(d, p7, true, &err);
    ok(w && bh_node_size(w) == 4095 * 512 && bh_node_is_readonly(w),
       "window over 7: 4095 sectors, read-only");
}

static void test_gpt(void)
{
    BhError *err = NULL;
    /* "ok" + U+1F600 (a surrogate pair) + an unpaired low surrogate. */
    uint8_t name[] = { 'o', 0, 'k', 0, 0x3d, 0xd8, 0x00, 0xde, 0x00, 0xdc, 0, 0 };

    for (int k = 0; k < 2; k++) {
        uint32_t ss = k ? 4096 : 512;
        g_autoptr(BhNode) g = disk_new(4 * MiB);
        gpt_write(g, ss, 4 * MiB / ss, name, sizeof(name));
        g_autoptr(BhPartitionTable) t = bh_partition_table_read(g, 0, &err);
        if (!ok(t && t->partitions->len == 1, "GPT with %u-byte sectors found", ss)) {
            diag("%s", err ? bh_error_message(err) : "-");
            bh_error_clear(&err);
            continue;
        }
        BhPartition *p = t->partitions->pdata[0];
        is_int(t->sector_size, ss, "sector size %u detected", ss);
        uint64_t asect = (128 * 128 + ss - 1) / ss;
        is_int(p->offset, (2 + asect) * ss, "partition offset in %u-byte sectors", ss);
        is_int(p->size, 8ull * ss, "partition size is 8 sectors");
        ok(strcmp(p->label, "ok\xf0\x9f\x98\x80\xef\xbf\xbd") == 0,
           "UTF-16LE name with a surrogate pair and a lone one -> UTF-8");
        ok(strcmp(p->uuid, "04030201-0605-0807-090A-0B0C0D0E0F10") == 0,
           "unique GUID mixed-endian: %s", p->uuid);
        ok(p->bootable && p->attributes == (1ull << 2 | 1ull << 60),
           "attribute bits kept, bit 2 is bootable");
        ok(strcmp(t->id, "ABABABAB-ABAB-ABAB-ABAB-ABABABABABAB") == 0, "disk GUID");
    }
}

int main(void)
{
    plan(37);
    test_crc();
    test_errors();
    test_mbr();
    test_gpt();
    return done();
}
