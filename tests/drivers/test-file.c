/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The file driver, alone (format=file) and under raw: round trips, FUA and
 * flush, extents of a sparse file against what SEEK_DATA/SEEK_HOLE say,
 * discard and write-zeroes punching holes, the growable child under a
 * format, truncate, create, read-only and past-the-end refusals, and
 * cache=none (O_DIRECT) with requests of any alignment.
 */
#include <pthread.h>
#include <stdlib.h>

#include "drv-test.h"
#include <blkhost/glib.h>

#define MiB (1024 * 1024)

/* The extent map the kernel reports for filename, in extent_map()'s
 * notation (holes read as zeros: "H"). */
static char *seek_map(const char *filename, off_t size)
{
    GString *s = g_string_new(NULL);
    int fd = open(filename, O_RDONLY);
    off_t pos = 0;
    while (fd >= 0 && pos < size) {
        off_t data = lseek(fd, pos, SEEK_DATA);
        if (data < 0 || data > pos) {
            off_t end = data < 0 ? size : MIN(data, size);
            g_string_append_printf(s, "%sH%jd+%jd", s->len ? " " : "",
                                   (intmax_t)pos, (intmax_t)(end - pos));
            pos = end;
            continue;
        }
        off_t hole = MIN(lseek(fd, pos, SEEK_HOLE), size);
        g_string_append_printf(s, "%sD%jd+%jd", s->len ? " " : "",
                               (intmax_t)pos, (intmax_t)(hole - pos));
        pos = hole;
    }
    if (fd >= 0)
        close(fd);
    return g_string_free(s, FALSE);
}

static void test_round_trip(const char *fmt)
{
    const char *img = scratch("rt.img");
    make_sparse(img, 4 * MiB);
    g_autofree char *o = g_strdup_printf("format=%s", fmt);
    BhNode *bs = open_ok(img, o);
    ok(bs != NULL, "%s: open a 4 MiB file read-write", fmt);
    if (!bs)
        return;
    is_int(bh_node_size(bs), 4 * MiB, "%s: size is 4 MiB", fmt);

    uint8_t *w = g_malloc(300000), *r = g_malloc(300000);
    fill_pattern(w, 300000, 12345, 1);
    int ret = bh_node_pwrite(bs, w, 12345, 300000, 0, NULL);
    is_int(ret, 0, "%s: write 300000 bytes at 12345", fmt);
    ret = bh_node_pread(bs, r, 12345, 300000, 0, NULL);
    ok(ret == 0 && memcmp(w, r, 300000) == 0, "%s: read back the same bytes",
       fmt);
    g_autofree uint8_t *disk = peek(img, 12345, 300000);
    ok(memcmp(w, disk, 300000) == 0, "%s: the bytes are in the file at the "
       "same offset", fmt);

    fill_pattern(w, 4096, 8192, 2);
    ret = bh_node_pwrite(bs, w, 4 * MiB - 4096, 4096, BH_IO_FUA, NULL);
    is_int(ret, 0, "%s: FUA write of the last 4 KiB", fmt);
    is_int(bh_node_flush(bs, NULL), 0, "%s: flush", fmt);
    ret = bh_node_pread(bs, r, 0, 4096, 0, NULL);
    ok(ret == 0 && all_zero(r, 4096), "%s: unwritten start reads zeros", fmt);
    ok(bh_node_can_fua(bs) && bh_node_can_zero(bs), "%s: can FUA and zero",
       fmt);

    g_autoptr(BhInfo) info = bh_info_new();
    bh_node_info(bs, info);
    const BhInfoItem *it = bh_info_find(info, "virtual-size");
    ok(it && it->i == 4 * MiB, "%s: info virtual-size 4 MiB", fmt);
    it = bh_info_find(info, "actual-size");
    ok(it && it->i >= 300000 && it->i < 4 * MiB, "%s: info actual-size "
       "counts allocated blocks only (%" PRId64 ")", fmt, it ? it->i : -1);
    bh_node_unref(bs);
    g_free(w);
    g_free(r);
}

static void test_extents(const char *fmt)
{
    const char *img = scratch("sparse.img");
    make_sparse(img, 8 * MiB);
    poke_pattern(img, 1 * MiB, 64 * 1024, 3);
    poke_pattern(img, 3 * MiB, 128 * 1024, 4);
    poke_pattern(img, 8 * MiB - 4096, 4096, 5);

    g_autofree char *o = g_strdup_printf("format=%s,readonly=on", fmt);
    BhNode *bs = open_ok(img, o);
    if (!bs) {
        ok(0, "%s: open sparse file", fmt);
        return;
    }
    g_autofree char *got = extent_map(bs, 0, 8 * MiB);
    g_autofree char *want = seek_map(img, 8 * MiB);
    const char *expect = "H0+1048576 D1048576+65536 H1114112+2031616 "
                         "D3145728+131072 H3276800+5107712 D8384512+4096";
    ok(g_str_equal(got, want), "%s: extents agree with SEEK_DATA/SEEK_HOLE",
       fmt);
    if (!g_str_equal(got, want))
        diag("driver: %s\nkernel: %s", got, want);
    ok(g_str_equal(got, expect), "%s: extents are the three written runs",
       fmt);
    if (!g_str_equal(got, expect))
        diag("got %s", got);

    /* A request starting inside a run and ending inside the next. */
    uint64_t pnum;
    uint32_t st;
    int ret = bh_node_block_status(bs, 1 * MiB + 4096, 100000, &pnum, &st,
                                   NULL);
    ok(ret == 0 && st == 0 && pnum == 65536 - 4096, "%s: status from inside "
       "a data run stops at its end", fmt);
    ret = bh_node_block_status(bs, 2 * MiB, 4096, &pnum, &st, NULL);
    ok(ret == 0 && st == (BH_BLOCK_HOLE | BH_BLOCK_ZERO) && pnum == 4096,
       "%s: status inside a hole is HOLE|ZERO, clipped to the request", fmt);
    ok(bh_node_can_block_status(bs), "%s: has block status", fmt);
    bh_node_unref(bs);
}

static void test_discard_zero(const char *fmt)
{
    const char *img = scratch("discard.img");
    make_sparse(img, 4 * MiB);
    poke_pattern(img, 0, 4 * MiB, 6);
    g_autofree char *o = g_strdup_printf("format=%s,discard=unmap", fmt);
    BhNode *bs = open_ok(img, o);
    if (!bs) {
        ok(0, "%s: open with discard=unmap", fmt);
        return;
    }
    ok(bh_node_can_discard(bs), "%s: discard=unmap can discard", fmt);
    off_t before = file_blocks(img);
    int ret = bh_node_discard(bs, 1 * MiB, 1 * MiB, NULL);
    is_int(ret, 0, "%s: discard 1 MiB at 1 MiB", fmt);
    ok(file_blocks(img) <= before - 1 * MiB, "%s: discard freed 1 MiB on "
       "disk (%jd -> %jd)", fmt, (intmax_t)before,
       (intmax_t)file_blocks(img));
    g_autofree char *map = extent_map(bs, 0, 4 * MiB);
    ok(g_str_equal(map, "D0+1048576 H1048576+1048576 D2097152+2097152"),
       "%s: discarded range is a hole", fmt);
    if (!g_str_equal(map, "D0+1048576 H1048576+1048576 D2097152+2097152"))
        diag("map %s", map);
    uint8_t *r = g_malloc(MiB);
    ret = bh_node_pread(bs, r, 1 * MiB, MiB, 0, NULL);
    ok(ret == 0 && all_zero(r, MiB), "%s: discarded range reads zeros", fmt);

    ret = bh_node_write_zeroes(bs, 2 * MiB, 512 * 1024, BH_IO_MAY_UNMAP,
                               NULL);
    is_int(ret, 0, "%s: write-zeroes may-unmap 512 KiB at 2 MiB", fmt);
    uint64_t pnum;
    uint32_t st;
    ret = bh_node_block_status(bs, 2 * MiB, 512 * 1024, &pnum, &st, NULL);
    ok(ret == 0 && (st & BH_BLOCK_HOLE) && pnum == 512 * 1024,
       "%s: may-unmap zeroing punched a hole", fmt);

    ret = bh_node_write_zeroes(bs, 3 * MiB + 100, 5000, 0, NULL);
    is_int(ret, 0, "%s: write-zeroes of an unaligned 5000 bytes", fmt);
    ret = bh_node_pread(bs, r, 3 * MiB, 8192, 0, NULL);
    g_autofree uint8_t *expect = g_malloc(8192);
    fill_pattern(expect, 8192, 3 * MiB, 6);
    memset(expect + 100, 0, 5000);
    ok(ret == 0 && memcmp(r, expect, 8192) == 0, "%s: exactly those bytes "
       "read as zeros", fmt);
    is_int(bh_node_size(bs), 4 * MiB, "%s: zeroing kept the size", fmt);
    g_free(r);
    bh_node_unref(bs);

    /* discard=ignore (the default) keeps the data. */
    g_autofree char *o2 = g_strdup_printf("format=%s", fmt);
    bs = open_ok(img, o2);
    before = file_blocks(img);
    ret = bs ? bh_node_discard(bs, 0, 1 * MiB, NULL) : -1;
    ok(ret == 0 && file_blocks(img) == before, "%s: discard without "
       "discard=unmap succeeds and frees nothing", fmt);
    if (bs)
        bh_node_unref(bs);
}

static void test_refusals(const char *fmt)
{
    const char *img = scratch("ro.img");
    make_sparse(img, 1 * MiB);
    poke_pattern(img, 0, 4096, 7);
    g_autofree char *o = g_strdup_printf("format=%s,readonly=on", fmt);
    BhNode *bs = open_ok(img, o);
    if (!bs) {
        ok(0, "%s: open read-only", fmt);
        return;
    }
    BhError *err = NULL;
    uint8_t buf[8192] = { 1 };
    check_error(bh_node_pwrite(bs, buf, 0, 512, 0, &err), &err, EPERM,
                "read-only", "%s: write to a read-only node refused with EPERM",
                fmt);
    check_error(bh_node_write_zeroes(bs, 0, 512, 0, &err), &err, EPERM, NULL,
                "%s: write-zeroes on a read-only node refused with EPERM",
                fmt);
    check_error(bh_node_discard(bs, 0, 512, &err), &err, EPERM, NULL,
                "%s: discard on a read-only node refused with EPERM", fmt);
    check_error(bh_node_truncate(bs, 2 * MiB, &err), &err, EPERM, NULL,
                "%s: truncate of a read-only node refused with EPERM", fmt);
    g_autofree uint8_t *disk = peek(img, 0, 4096);
    uint8_t expect[4096];
    fill_pattern(expect, 4096, 0, 7);
    ok(memcmp(disk, expect, 4096) == 0 && file_size(img) == MiB,
       "%s: refused writes changed nothing", fmt);

    check_error(bh_node_pread(bs, buf, MiB - 512, 1024, 0, &err), &err,
                EINVAL, "past the end", "%s: read past the end refused with "
                "EINVAL", fmt);
    check_error(bh_node_pread(bs, buf, MiB + 4096, 1, 0, &err), &err,
                EINVAL, NULL, "%s: read starting past the end refused with "
                "EINVAL", fmt);
    uint64_t pnum;
    uint32_t st;
    check_error(bh_node_block_status(bs, MiB, 1, &pnum, &st, &err), &err,
                EINVAL, NULL, "%s: block status past the end refused with "
                "EINVAL", fmt);
    bh_node_unref(bs);

    o[strlen(o) - strlen(",readonly=on")] = 0;
    bs = open_ok(img, o);
    if (!bs)
        return;
    check_error(bh_node_pwrite(bs, buf, MiB - 512, 1024, 0, &err), &err,
                ENOSPC, "past the end", "%s: write past the end refused with "
                "ENOSPC", fmt);
    check_error(bh_node_write_zeroes(bs, MiB, 512, 0, &err), &err, ENOSPC,
                NULL, "%s: write-zeroes past the end refused with ENOSPC", fmt);
    check_error(bh_node_pread(bs, buf, UINT64_MAX - 10, 100, 0, &err), &err,
                EINVAL, "overflows", "%s: read at offset 2^64-11 + 100 "
                "(overflow) refused with EINVAL", fmt);
    ok(file_size(img) == MiB, "%s: refused writes did not grow the file",
       fmt);
    bh_node_unref(bs);
}

/* The file under a format is growable: qcow2 relies on reading zeros past
 * its end and on writes extending it, with the size kept current. */
static void test_growable(void)
{
    const char *img = scratch("grow.img");
    make_sparse(img, 64 * 1024);
    BhNode *bs = open_ok(img, "format=raw");
    BhNode *file = bs ? bh_node_child(bs, "file") : NULL;
    ok(file != NULL, "raw has a file child");
    if (!file) {
        if (bs)
            bh_node_unref(bs);
        return;
    }
    uint8_t buf[8192];
    memset(buf, 0xaa, sizeof buf);
    int ret = bh_node_pread(file, buf, 1 * MiB, 8192, 0, NULL);
    ok(ret == 0 && all_zero(buf, 8192), "growable file child reads zeros "
       "past its end");
    fill_pattern(buf, 8192, 1 * MiB, 8);
    ret = bh_node_pwrite(file, buf, 1 * MiB, 8192, 0, NULL);
    is_int(ret, 0, "growable file child accepts a write past its end");
    is_int(bh_node_size(file), 1 * MiB + 8192, "its size follows the write");
    is_int(file_size(img), 1 * MiB + 8192, "and so does the file's");
    ret = bh_node_write_zeroes(file, 2 * MiB, 4096, BH_IO_MAY_UNMAP, NULL);
    is_int(ret, 0, "write-zeroes past the end of the growable child");
    is_int(bh_node_size(file), 2 * MiB + 4096, "zeroing past the end grew "
           "the child");
    ret = bh_node_truncate(file, 100000, NULL);
    ok(ret == 0 && bh_node_size(file) == 100000 && file_size(img) == 100000,
       "truncate of the child to 100000 bytes");
    bh_node_unref(bs);

    bs = open_ok(img, "format=file");
    ret = bs ? bh_node_truncate(bs, 3 * MiB, NULL) : -1;
    ok(ret == 0 && bh_node_size(bs) == 3 * MiB && file_size(img) == 3 * MiB,
       "file: truncate grows the node and the file to 3 MiB");
    if (bs)
        bh_node_unref(bs);
}

static void test_create(void)
{
    BhError *err = NULL;
    const char *img = scratch("created.raw");
    g_autoptr(BhOpts) o = bh_opts_parse("size=5M", NULL, NULL);
    bool r = bh_create(img, "raw", o, &err);
    ok(r && file_size(img) == 5 * MiB, "create raw size=5M makes a 5 MiB "
       "file");
    if (err)
        diag("%s", bh_error_message(err));
    bh_error_clear(&err);
    ok(file_blocks(img) < MiB, "the created file is sparse");

    poke_pattern(img, 0, 4096, 9);
    g_autoptr(BhOpts) o2 = bh_opts_parse("size=64K", NULL, NULL);
    r = bh_create(img, "file", o2, &err);
    g_autofree uint8_t *head = peek(img, 0, 4096);
    ok(r && file_size(img) == 65536 && all_zero(head, 4096),
       "create file size=64K over an existing file empties it");
    bh_error_clear(&err);

    g_autoptr(BhOpts) o3 = bh_opts_parse("size=lots", NULL, NULL);
    r = bh_create(scratch("nope.raw"), "raw", o3, &err);
    ok(!r && err && bh_error_errno(err) == EINVAL && strstr(bh_error_message(err), "lots"),
       "create with size=lots refused with EINVAL naming the value");
    bh_error_clear(&err);
}

/* cache=none: every request, aligned or not, must behave as buffered I/O
 * would.  A model buffer holds what the file should contain. */
static void test_direct(void)
{
    const char *img = scratch("direct.img");
    const size_t size = 3 * MiB + 1000;  /* deliberately not aligned */
    make_sparse(img, size);
    poke_pattern(img, 0, size, 10);
    BhError *err = NULL;
    BhNode *bs = open_node(img, "format=raw,cache=none", &err);
    if (!bs && err && bh_error_errno(err) == EINVAL) {
        for (int i = 0; i < 13; i++)
            ok(1, "# SKIP cache=none: %s", bh_error_message(err));
        bh_error_clear(&err);
        return;
    }
    ok(bs != NULL, "open with cache=none (O_DIRECT)");
    if (!bs) {
        diag("%s", err ? bh_error_message(err) : "?");
        bh_error_clear(&err);
        return;
    }
    uint32_t min;
    bh_node_block_limits(bs, &min, NULL, NULL);
    ok(min >= 512 && (min & (min - 1)) == 0, "cache=none: minimum block "
       "size is a power of two >= 512 (%u)", min);

    uint8_t *model = g_malloc(size + 8192);
    fill_pattern(model, size, 0, 10);
    uint8_t *r = g_malloc(3 * MiB);
    int ret = bh_node_pread(bs, r + 1, 1, 1000, 0, NULL);
    ok(ret == 0 && memcmp(r + 1, model + 1, 1000) == 0, "cache=none: read of "
       "1000 bytes at offset 1 into an odd buffer");
    ret = bh_node_pread(bs, r, size - 3000, 3000, 0, NULL);
    ok(ret == 0 && memcmp(r, model + size - 3000, 3000) == 0, "cache=none: "
       "read of the unaligned tail of the file");

    uint8_t *w = g_malloc(2 * MiB + 200);
    struct { uint64_t off; size_t len; size_t bufoff; const char *what; }
    cases[] = {
        { 4097, 3000, 0, "3000 bytes at 4097" },
        { 512 * 3 + 5, 10, 0, "10 bytes inside one block" },
        { 8192, 4096, 3, "an aligned range from a misaligned buffer" },
        { 777, 2 * MiB + 123, 0, "2 MiB + 123 bytes at 777 (several bounce "
          "chunks)" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        fill_pattern(w + cases[i].bufoff, cases[i].len, cases[i].off,
                     20 + i);
        memcpy(model + cases[i].off, w + cases[i].bufoff, cases[i].len);
        ret = bh_node_pwrite(bs, w + cases[i].bufoff, cases[i].off,
                             cases[i].len, 0, NULL);
        is_int(ret, 0, "cache=none: write %s", cases[i].what);
    }
    g_autofree uint8_t *disk = peek(img, 0, size);
    ok(memcmp(disk, model, size) == 0, "cache=none: the file holds exactly "
       "what was written, neighbours intact");
    ret = bh_node_pread(bs, r, 0, 3 * MiB, 0, NULL);
    ok(ret == 0 && memcmp(r, model, 3 * MiB) == 0, "cache=none: reading it "
       "back through the node agrees");
    is_int(file_size(img), size, "cache=none: writes inside the file kept "
           "its unaligned size");

    /* Extending an unaligned file: the whole-block write must not leave
     * the file longer than the request. */
    BhNode *file = bh_node_child(bs, "file");
    fill_pattern(w, 100, size, 30);
    ret = bh_node_pwrite(file, w, size, 100, BH_IO_FUA, NULL);
    ok(ret == 0 && file_size(img) == (off_t)size + 100 &&
       bh_node_size(file) == (int64_t)size + 100, "cache=none: FUA write of "
       "100 bytes at the unaligned end grows the file by exactly 100");
    g_free(disk);
    disk = peek(img, size, 100);
    ok(memcmp(disk, w, 100) == 0, "cache=none: the appended bytes landed");
    g_free(model);
    g_free(r);
    g_free(w);
    bh_node_unref(bs);
}

/* Unaligned O_DIRECT writes from several threads into neighbouring
 * 300-byte slots, so that many share a 512-byte block: the driver's
 * read-modify-write must not let one undo another. */
#define DT_THREADS 4
#define DT_SLOT 300
#define DT_SLOTS 2000
#define DT_ROUNDS 4

typedef struct {
    BhNode *bs;
    int id;
    int errors;
} DirectWorker;

static void *direct_worker(void *opaque)
{
    DirectWorker *wk = opaque;
    uint8_t buf[DT_SLOT];
    for (int round = 0; round < DT_ROUNDS; round++) {
        for (int slot = wk->id; slot < DT_SLOTS; slot += DT_THREADS) {
            uint64_t off = 7 + (uint64_t)slot * DT_SLOT;
            fill_pattern(buf, DT_SLOT, off, 40 + round);
            if (bh_node_pwrite(wk->bs, buf, off, DT_SLOT, 0, NULL) < 0)
                wk->errors++;
        }
    }
    return NULL;
}

static void test_direct_threads(void)
{
    const char *img = scratch("direct-mt.img");
    make_sparse(img, 1 * MiB);
    BhNode *bs = open_node(img, "format=raw,cache=none", NULL);
    if (!bs) {
        ok(1, "# SKIP cache=none is not available here");
        ok(1, "# SKIP cache=none is not available here");
        return;
    }
    pthread_t t[DT_THREADS];
    DirectWorker wk[DT_THREADS];
    for (int i = 0; i < DT_THREADS; i++) {
        wk[i] = (DirectWorker){ .bs = bs, .id = i };
        pthread_create(&t[i], NULL, direct_worker, &wk[i]);
    }
    int errors = 0;
    for (int i = 0; i < DT_THREADS; i++) {
        pthread_join(t[i], NULL);
        errors += wk[i].errors;
    }
    is_int(errors, 0, "cache=none: %d threads wrote unaligned neighbouring "
           "slots", DT_THREADS);
    uint8_t *want = g_malloc0(DT_SLOTS * DT_SLOT);
    fill_pattern(want, DT_SLOTS * DT_SLOT, 7, 40 + DT_ROUNDS - 1);
    g_autofree uint8_t *disk = peek(img, 7, DT_SLOTS * DT_SLOT);
    ok(memcmp(disk, want, DT_SLOTS * DT_SLOT) == 0, "cache=none: every slot "
       "holds its last write (no lost read-modify-write)");
    g_free(want);
    bh_node_unref(bs);
}

/* With discard=unmap, zeroing past the end of a growable child punches
 * holes and must still extend the file. */
static void test_growable_unmap(void)
{
    const char *img = scratch("grow-unmap.img");
    make_sparse(img, 64 * 1024);
    poke_pattern(img, 0, 64 * 1024, 11);
    BhNode *bs = open_ok(img, "format=raw,discard=unmap");
    BhNode *file = bs ? bh_node_child(bs, "file") : NULL;
    int ret = file ? bh_node_write_zeroes(file, 32 * 1024, 1 * MiB,
                                          BH_IO_MAY_UNMAP, NULL) : -1;
    ok(ret == 0 && file_size(img) == 32 * 1024 + MiB &&
       bh_node_size(file) == 32 * 1024 + MiB, "may-unmap zeroing across the "
       "end of a growable child extends it");
    g_autofree uint8_t *head = peek(img, 0, 64 * 1024);
    uint8_t *want = g_malloc(64 * 1024);
    fill_pattern(want, 32 * 1024, 0, 11);
    memset(want + 32 * 1024, 0, 32 * 1024);
    ok(memcmp(head, want, 64 * 1024) == 0 && file_blocks(img) <= 32 * 1024,
       "and punched the old tail (%jd bytes allocated)",
       (intmax_t)file_blocks(img));
    g_free(want);
    if (bs)
        bh_node_unref(bs);
}

int main(void)
{
    plan(108);
    const char *fmts[] = { "file", "raw" };
    for (int i = 0; i < 2; i++) {
        test_round_trip(fmts[i]);
        test_extents(fmts[i]);
        test_discard_zero(fmts[i]);
        test_refusals(fmts[i]);
    }
    test_growable();
    test_create();
    test_direct();
    test_direct_threads();
    test_growable_unmap();
    scratch_cleanup();
    return done();
}
