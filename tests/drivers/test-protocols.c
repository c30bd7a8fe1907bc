/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The null and memory protocol drivers: sizes, what reads return, block
 * status, the memory disk's sparseness (chunks allocated on non-zero
 * writes, freed by discard and may-unmap zeroing), truncate, refusals,
 * and the memory disk under concurrent readers and writers.
 */
#include <pthread.h>

#include "drv-test.h"
#include <blkhost/glib.h>

#define KiB 1024
#define MiB (1024 * 1024)
#define CHUNK (64 * KiB)

static void test_null(void)
{
    BhNode *bs = open_ok("null-disk", "format=null,size=1G");
    ok(bs != NULL, "null: opens with size=1G");
    if (!bs)
        return;
    is_int(bh_node_size(bs), 1024 * MiB, "null: size is 1 GiB");
    uint8_t buf[4096];
    memset(buf, 0x5a, sizeof buf);
    int ret = bh_node_pwrite(bs, buf, 4096, 4096, BH_IO_FUA, NULL);
    is_int(ret, 0, "null: FUA write succeeds");
    memset(buf, 0x5a, sizeof buf);
    ret = bh_node_pread(bs, buf, 4096, 4096, 0, NULL);
    ok(ret == 0 && all_zero(buf, 4096), "null: what was written reads as "
       "zeros");
    g_autofree char *map = extent_map(bs, 0, 1024 * MiB);
    ok(g_str_equal(map, "H0+1073741824"), "null: the whole disk is one "
       "HOLE|ZERO extent");
    ret = bh_node_write_zeroes(bs, 0, 1024 * MiB, BH_IO_FAST_ZERO, NULL);
    is_int(ret, 0, "null: fast write-zeroes of 1 GiB");
    is_int(bh_node_flush(bs, NULL), 0, "null: flush");
    ok(bh_node_allocated_size(bs) == 0, "null: allocates nothing");
    BhError *err = NULL;
    check_error(bh_node_pread(bs, buf, 1024 * MiB - 1, 2, 0, &err), &err,
                EINVAL, NULL, "null: read past the end refused with EINVAL");
    check_error(bh_node_pwrite(bs, buf, 1024 * MiB, 1, 0, &err), &err,
                ENOSPC, NULL, "null: write past the end refused with ENOSPC");
    bh_node_unref(bs);

    bs = open_ok("null-disk", "format=null,size=64K,readonly=on");
    if (bs) {
        check_error(bh_node_pwrite(bs, buf, 0, 1, 0, &err), &err, EPERM,
                    NULL, "null: write to a read-only node refused with "
                    "EPERM");
        bh_node_unref(bs);
    } else {
        ok(0, "null: opens read-only");
    }
    bs = open_ok("", "format=null,size=0");
    ok(bs && bh_node_size(bs) == 0, "null: size=0 and no filename is fine");
    if (bs)
        bh_node_unref(bs);
}

static void test_memory_basics(void)
{
    BhNode *bs = open_ok("ram", "format=memory,size=64M,discard=unmap");
    ok(bs != NULL, "memory: opens with size=64M");
    if (!bs)
        return;
    is_int(bh_node_size(bs), 64 * MiB, "memory: size is 64 MiB");
    is_int(bh_node_allocated_size(bs), 0, "memory: nothing allocated at "
           "first");
    g_autofree char *map0 = extent_map(bs, 0, 64 * MiB);
    ok(g_str_equal(map0, "H0+67108864"), "memory: a fresh disk is one hole");

    /* A write crossing a chunk boundary allocates both chunks. */
    uint8_t *w = g_malloc(3 * CHUNK), *r = g_malloc(3 * CHUNK);
    fill_pattern(w, 100000, CHUNK - 5000, 1);
    int ret = bh_node_pwrite(bs, w, CHUNK - 5000, 100000, 0, NULL);
    ret |= bh_node_pread(bs, r, CHUNK - 5000, 100000, 0, NULL);
    ok(ret == 0 && memcmp(w, r, 100000) == 0, "memory: round trip of 100000 "
       "bytes across a chunk boundary");
    is_int(bh_node_allocated_size(bs), 3 * CHUNK, "memory: it allocated "
           "the three chunks it touches");
    ret = bh_node_pread(bs, r, 0, CHUNK - 5000, 0, NULL);
    ok(ret == 0 && all_zero(r, CHUNK - 5000), "memory: the unwritten part "
       "of an allocated chunk reads zeros");
    g_autofree char *map1 = extent_map(bs, 0, 64 * MiB);
    ok(g_str_equal(map1, "D0+196608 H196608+66912256"), "memory: extents "
       "show the allocated chunks as data");
    if (!g_str_equal(map1, "D0+196608 H196608+66912256"))
        diag("map %s", map1);

    memset(w, 0, CHUNK);
    ret = bh_node_pwrite(bs, w, 10 * CHUNK, CHUNK, 0, NULL);
    ok(ret == 0 && bh_node_allocated_size(bs) == 3 * CHUNK, "memory: a write "
       "of zeros into a hole allocates nothing");

    ret = bh_node_discard(bs, 0, 2 * CHUNK, NULL);
    ok(ret == 0 && bh_node_allocated_size(bs) == 1 * CHUNK, "memory: discard "
       "of two whole chunks frees them");
    ret = bh_node_pread(bs, r, 0, 3 * CHUNK, 0, NULL);
    fill_pattern(w, 100000, CHUNK - 5000, 1);
    ok(ret == 0 && all_zero(r, 2 * CHUNK) &&
       memcmp(r + 2 * CHUNK, w + CHUNK + 5000, 100000 - CHUNK - 5000) == 0,
       "memory: discarded chunks read zeros, the third kept its data");

    ret = bh_node_write_zeroes(bs, 2 * CHUNK + 10, 20, 0, NULL);
    ret |= bh_node_pread(bs, r, 2 * CHUNK, 64, 0, NULL);
    ok(ret == 0 && all_zero(r + 10, 20) && r[9] != 0 && r[30] != 0,
       "memory: write-zeroes of 20 bytes inside a chunk clears just those");
    ret = bh_node_write_zeroes(bs, 2 * CHUNK, CHUNK, 0, NULL);
    ok(ret == 0 && bh_node_allocated_size(bs) == CHUNK, "memory: zeroing a "
       "whole chunk without may-unmap keeps it allocated");
    ret = bh_node_write_zeroes(bs, 2 * CHUNK, CHUNK, BH_IO_MAY_UNMAP, NULL);
    ok(ret == 0 && bh_node_allocated_size(bs) == 0, "memory: zeroing it with "
       "may-unmap frees it");

    fill_pattern(w, 4096, 64 * MiB - 4096, 2);
    ret = bh_node_pwrite(bs, w, 64 * MiB - 4096, 4096, BH_IO_FUA, NULL);
    ret |= bh_node_pread(bs, r, 64 * MiB - 4096, 4096, 0, NULL);
    ok(ret == 0 && memcmp(w, r, 4096) == 0, "memory: FUA round trip of the "
       "last 4 KiB");

    BhError *err = NULL;
    check_error(bh_node_pread(bs, r, 64 * MiB, 1, 0, &err), &err, EINVAL,
                NULL, "memory: read past the end refused with EINVAL");
    check_error(bh_node_pwrite(bs, w, 64 * MiB - 1, 2, 0, &err), &err,
                ENOSPC, NULL, "memory: write past the end refused with "
                "ENOSPC");

    /* Shrinking drops the data past the new end; growing shows zeros. */
    ret = bh_node_truncate(bs, 32 * MiB + 100, NULL);
    ret |= bh_node_truncate(bs, 64 * MiB, NULL);
    ret |= bh_node_pread(bs, r, 64 * MiB - 4096, 4096, 0, NULL);
    ok(ret == 0 && all_zero(r, 4096) && bh_node_allocated_size(bs) == 0,
       "memory: shrink then grow back reads zeros and frees the memory");

    g_autoptr(BhInfo) info = bh_info_new();
    bh_node_info(bs, info);
    const BhInfoItem *it = bh_info_find(info, "chunk-size");
    ok(it && it->i == CHUNK, "memory: info reports the 64 KiB chunk size");
    g_free(w);
    g_free(r);
    bh_node_unref(bs);

    bs = open_ok("ram", "format=memory,size=1P");
    ret = bs ? bh_node_pwrite(bs, "x", (1ull << 50) - 1, 1, 0, NULL) : -1;
    uint8_t c = 0;
    if (bs)
        bh_node_pread(bs, &c, (1ull << 50) - 1, 1, 0, NULL);
    ok(ret == 0 && c == 'x' && bh_node_allocated_size(bs) == CHUNK,
       "memory: a 1 PiB disk holds a byte at its very end in one chunk");
    if (bs)
        bh_node_unref(bs);
}

/* Threads write disjoint, interleaved 48 KiB slots (so neighbours share
 * chunks), re-read them while others write, and discard and rewrite; in
 * the end every slot must hold its owner's last pattern. */
#define NTHREADS 4
#define SLOT (48 * KiB)
#define NSLOTS 256
#define ROUNDS 6

typedef struct {
    BhNode *bs;
    int id;
    int errors;
} Worker;

static void *worker(void *opaque)
{
    Worker *wk = opaque;
    uint8_t *w = g_malloc(SLOT), *r = g_malloc(SLOT);
    for (int round = 0; round < ROUNDS; round++) {
        for (int slot = wk->id; slot < NSLOTS; slot += NTHREADS) {
            uint64_t off = (uint64_t)slot * SLOT;
            fill_pattern(w, SLOT, off, round * 100 + wk->id);
            if (bh_node_pwrite(wk->bs, w, off, SLOT, 0, NULL) < 0 ||
                bh_node_pread(wk->bs, r, off, SLOT, 0, NULL) < 0 ||
                memcmp(w, r, SLOT) != 0)
                wk->errors++;
            if (round == ROUNDS - 2 &&
                bh_node_write_zeroes(wk->bs, off, SLOT, BH_IO_MAY_UNMAP,
                                     NULL) < 0)
                wk->errors++;
        }
    }
    g_free(w);
    g_free(r);
    return NULL;
}

static void test_memory_threads(void)
{
    BhNode *bs = open_ok("ram", "format=memory,size=12M,discard=unmap");
    if (!bs) {
        ok(0, "memory: opens for the thread test");
        return;
    }
    ok(bh_node_is_parallel(bs), "memory: the node is parallel");
    pthread_t t[NTHREADS];
    Worker wk[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        wk[i] = (Worker){ .bs = bs, .id = i };
        pthread_create(&t[i], NULL, worker, &wk[i]);
    }
    int errors = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        errors += wk[i].errors;
    }
    is_int(errors, 0, "memory: %d threads writing neighbouring slots each "
           "read back their own data", NTHREADS);
    uint8_t *r = g_malloc(SLOT), *w = g_malloc(SLOT);
    int bad = 0;
    for (int slot = 0; slot < NSLOTS; slot++) {
        uint64_t off = (uint64_t)slot * SLOT;
        fill_pattern(w, SLOT, off, (ROUNDS - 1) * 100 + slot % NTHREADS);
        if (bh_node_pread(bs, r, off, SLOT, 0, NULL) < 0 ||
            memcmp(w, r, SLOT) != 0)
            bad++;
    }
    is_int(bad, 0, "memory: after the threads, every slot holds its "
           "owner's last write");
    g_free(r);
    g_free(w);
    bh_node_unref(bs);
}

int main(void)
{
    plan(35);
    test_null();
    test_memory_basics();
    test_memory_threads();
    return done();
}
