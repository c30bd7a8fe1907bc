/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The file driver's submit path, with each aio mode (io_uring, native,
 * threads) and cache=none / writeback: random 4k/64k/1M writes and reads
 * against a reference buffer, several iovecs per request, FUA, flush,
 * discard and write-zeroes, reads past the end of a file truncated under
 * the node, a failing write (past RLIMIT_FSIZE) that completes with an
 * error instead of hanging, and 16 threads with many requests in flight.
 * Last, unaligned O_DIRECT writes at the end of the file racing with
 * aligned appends.
 * A mode the kernel or the build refuses is skipped with the reason.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "file-test.h"

#define KiB 1024
#define MiB (1024 * 1024)
#define IMG_SIZE (32 * MiB)

/* ---- waiting for submitted requests ---- */

typedef struct Waiter {
    GMutex lock;
    GCond cond;
    int pending;
    int ret;       /* first error */
    char *msg;
} Waiter;

static void waiter_init(Waiter *w)
{
    memset(w, 0, sizeof(*w));
    g_mutex_init(&w->lock);
    g_cond_init(&w->cond);
}

static void waiter_done(void *opaque, int ret, const BhError *err)
{
    Waiter *w = opaque;
    g_mutex_lock(&w->lock);
    if (ret < 0 && !w->ret) {
        w->ret = ret;
        w->msg = g_strdup(err ? bh_error_message(err) : "(no message)");
    }
    w->pending--;
    g_cond_broadcast(&w->cond);
    g_mutex_unlock(&w->lock);
}

static void waiter_submit(Waiter *w, BhNode *bs, BhOp op, uint64_t off,
                          uint64_t len, const struct iovec *iov, int niov,
                          uint32_t flags)
{
    g_mutex_lock(&w->lock);
    w->pending++;
    g_mutex_unlock(&w->lock);
    bh_node_submit(bh_request_new(bs, op, off, len, iov, niov, flags,
                                  waiter_done, w));
}

/* Wait until at most `left` requests are pending; the first error. */
static int waiter_wait(Waiter *w, int left)
{
    g_mutex_lock(&w->lock);
    while (w->pending > left)
        g_cond_wait(&w->cond, &w->lock);
    int ret = w->ret;
    g_mutex_unlock(&w->lock);
    return ret;
}

static void waiter_clear(Waiter *w)
{
    g_free(w->msg);
    g_cond_clear(&w->cond);
    g_mutex_clear(&w->lock);
}

/* One request, waited for: 0 or -errno (message in *msg if asked). */
static int sub1(BhNode *bs, BhOp op, uint64_t off, void *buf, uint64_t len,
                uint32_t flags, char **msg)
{
    Waiter w;
    waiter_init(&w);
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    waiter_submit(&w, bs, op, off, len, buf ? &iov : NULL, buf ? 1 : 0,
                  flags);
    int ret = waiter_wait(&w, 0);
    if (msg)
        *msg = g_steal_pointer(&w.msg);
    waiter_clear(&w);
    return ret;
}

static void *aligned_alloc0(size_t len)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, len) != 0)
        abort();
    memset(p, 0, len);
    return p;
}

/* ---- one mode ---- */

typedef struct Mode {
    const char *aio, *cache;
    char name[64];
} Mode;

/* Random writes of 4k, 64k and 1M (some unaligned, which O_DIRECT takes
 * through the bounce path), each read back; then the whole file read
 * with three iovecs and compared with the reference and the disk. */
static void test_random_rw(const Mode *m, BhNode *bs, const char *img,
                           uint8_t *ref)
{
    static const size_t sizes[] = { 4 * KiB, 64 * KiB, MiB };
    GRand *rnd = g_rand_new_with_seed(42);
    uint8_t *w = aligned_alloc0(MiB + 8 * KiB), *r = aligned_alloc0(MiB + 8 * KiB);
    int bad = 0, errors = 0;

    for (int i = 0; i < 48; i++) {
        size_t len = sizes[i % 3];
        bool odd = i % 8 == 7;  /* unaligned offset, length and buffer */
        uint64_t off = (uint64_t)g_rand_int_range(rnd, 0, (IMG_SIZE - 2 * MiB) / 4096) * 4096;
        uint8_t *wb = odd ? w + 3 : w, *rb = odd ? r + 5 : r;
        if (odd) {
            off += 777;
            len -= 100;
        }
        fill_pattern(wb, len, off, i + 1);
        if (sub1(bs, BH_OP_WRITE, off, wb, len, 0, NULL) < 0)
            errors++;
        memcpy(ref + off, wb, len);
        if (sub1(bs, BH_OP_READ, off, rb, len, 0, NULL) < 0)
            errors++;
        else if (memcmp(rb, ref + off, len))
            bad++;
    }
    is_int(errors, 0, "%s: 48 random 4k/64k/1M writes and reads (6 "
           "unaligned) complete without error", m->name);
    is_int(bad, 0, "%s: each read returns what the reference holds", m->name);

    /* The whole file, in three iovecs of 4 KiB multiples. */
    uint8_t *all = aligned_alloc0(IMG_SIZE);
    struct iovec iov[3] = {
        { all, 4 * MiB },
        { all + 4 * MiB, 12 * KiB },
        { all + 4 * MiB + 12 * KiB, IMG_SIZE - 4 * MiB - 12 * KiB },
    };
    Waiter wt;
    waiter_init(&wt);
    waiter_submit(&wt, bs, BH_OP_READ, 0, IMG_SIZE, iov, 3, 0);
    is_int(waiter_wait(&wt, 0), 0, "%s: a 32 MiB read in three iovecs",
           m->name);
    waiter_clear(&wt);
    ok(memcmp(all, ref, IMG_SIZE) == 0, "%s: the whole file equals the "
       "reference", m->name);
    is_int(sub1(bs, BH_OP_FLUSH, 0, NULL, 0, 0, NULL), 0, "%s: flush",
           m->name);
    g_autofree uint8_t *disk = peek(img, 0, IMG_SIZE);
    ok(disk && memcmp(disk, ref, IMG_SIZE) == 0, "%s: after the flush the "
       "file on disk equals the reference", m->name);
    free(all);
    free(w);
    free(r);
    g_rand_free(rnd);
}

/* FUA, write-zeroes (with and without unmap), discard, a write split
 * over iovecs. */
static void test_fua_zero(const Mode *m, BhNode *bs, const char *img,
                          uint8_t *ref)
{
    uint8_t *b = aligned_alloc0(256 * KiB);
    fill_pattern(b, 64 * KiB, 5 * MiB, 99);
    is_int(sub1(bs, BH_OP_WRITE, 5 * MiB, b, 64 * KiB, BH_IO_FUA, NULL), 0,
           "%s: a FUA write", m->name);
    memcpy(ref + 5 * MiB, b, 64 * KiB);
    g_autofree uint8_t *disk = peek(img, 5 * MiB, 64 * KiB);
    ok(disk && memcmp(disk, b, 64 * KiB) == 0, "%s: the FUA write is in the "
       "file", m->name);

    is_int(sub1(bs, BH_OP_WRITE_ZEROES, 5 * MiB, NULL, 64 * KiB, 0, NULL), 0,
           "%s: write-zeroes of 64 KiB", m->name);
    is_int(sub1(bs, BH_OP_WRITE_ZEROES, 6 * MiB, NULL, 128 * KiB,
                BH_IO_MAY_UNMAP, NULL), 0,
           "%s: write-zeroes with unmap of 128 KiB", m->name);
    memset(ref + 5 * MiB, 0, 64 * KiB);
    memset(ref + 6 * MiB, 0, 128 * KiB);
    memset(b, 0xff, 256 * KiB);
    ok(sub1(bs, BH_OP_READ, 5 * MiB, b, 64 * KiB, 0, NULL) == 0 &&
       all_zero(b, 64 * KiB), "%s: the zeroed range reads zeros", m->name);
    ok(sub1(bs, BH_OP_READ, 6 * MiB, b, 128 * KiB, 0, NULL) == 0 &&
       all_zero(b, 128 * KiB), "%s: the unmapped range reads zeros", m->name);
    /* Discard is advisory: the bytes are old ones or zeros. */
    is_int(sub1(bs, BH_OP_DISCARD, 8 * MiB, NULL, MiB, 0, NULL), 0,
           "%s: discard of 1 MiB", m->name);
    ok(sub1(bs, BH_OP_READ, 8 * MiB, b, 256 * KiB, 0, NULL) == 0 &&
       (all_zero(b, 256 * KiB) || memcmp(b, ref + 8 * MiB, 256 * KiB) == 0),
       "%s: the discarded range reads zeros or its old bytes", m->name);
    if (all_zero(b, 256 * KiB))
        memset(ref + 8 * MiB, 0, MiB);

    /* A write from four iovecs, read back in one. */
    uint8_t *parts = aligned_alloc0(64 * KiB);
    fill_pattern(parts, 64 * KiB, 9 * MiB, 7);
    struct iovec iov[4] = {
        { parts + 48 * KiB, 16 * KiB }, { parts + 32 * KiB, 16 * KiB },
        { parts + 16 * KiB, 16 * KiB }, { parts, 16 * KiB },
    };
    Waiter w;
    waiter_init(&w);
    waiter_submit(&w, bs, BH_OP_WRITE, 9 * MiB, 64 * KiB, iov, 4, 0);
    is_int(waiter_wait(&w, 0), 0, "%s: a write gathered from four iovecs",
           m->name);
    waiter_clear(&w);
    for (int i = 0; i < 4; i++)
        memcpy(ref + 9 * MiB + i * 16 * KiB, iov[i].iov_base, 16 * KiB);
    ok(sub1(bs, BH_OP_READ, 9 * MiB, b, 64 * KiB, 0, NULL) == 0 &&
       memcmp(b, ref + 9 * MiB, 64 * KiB) == 0, "%s: it reads back in iovec "
       "order", m->name);
    free(parts);
    free(b);
}

/* 16 threads, each with 8 requests in flight on its own 1 MiB: 4k and
 * 16k writes to its 64 slots, then reads compared. */
typedef struct Worker {
    BhNode *bs;
    int id;
    int errors, bad;
} Worker;

/* Slot i of a worker's 1 MiB: 16 KiB apart, 4 KiB long (every fourth
 * 16 KiB). */
static size_t slot_len(int i) { return i % 4 == 3 ? 16 * KiB : 4 * KiB; }
static uint64_t slot_off(int i) { return (uint64_t)i * 16 * KiB; }

/* All 64 slots of op between base and buf, 8 in flight. */
static void worker_pass(Worker *wk, Waiter *w, BhOp op, uint64_t base,
                        uint8_t *buf)
{
    for (int i = 0; i < 64; i++) {
        struct iovec iov = { buf + slot_off(i), slot_len(i) };
        waiter_wait(w, 7);
        waiter_submit(w, wk->bs, op, base + slot_off(i), slot_len(i), &iov,
                      1, 0);
    }
    if (waiter_wait(w, 0) < 0)
        wk->errors++;
}

static void *worker_run(void *opaque)
{
    Worker *wk = opaque;
    uint64_t base = 16 * MiB + (uint64_t)wk->id * MiB;
    uint8_t *buf = aligned_alloc0(MiB), *rd = aligned_alloc0(MiB);
    Waiter w;

    fill_pattern(buf, MiB, base, 1000 + wk->id);
    waiter_init(&w);
    worker_pass(wk, &w, BH_OP_WRITE, base, buf);
    worker_pass(wk, &w, BH_OP_READ, base, rd);
    for (int i = 0; i < 64; i++)
        if (memcmp(rd + slot_off(i), buf + slot_off(i), slot_len(i)))
            wk->bad++;
    waiter_clear(&w);
    free(buf);
    free(rd);
    return NULL;
}

static void test_threads(const Mode *m, BhNode *bs)
{
    pthread_t th[16];
    Worker wk[16];
    int errors = 0, bad = 0;
    for (int i = 0; i < 16; i++) {
        wk[i] = (Worker){ .bs = bs, .id = i };
        pthread_create(&th[i], NULL, worker_run, &wk[i]);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(th[i], NULL);
        errors += wk[i].errors;
        bad += wk[i].bad;
    }
    is_int(errors, 0, "%s: 16 threads x 128 requests, 8 in flight each, "
           "all complete without error", m->name);
    is_int(bad, 0, "%s: every thread reads back what it wrote", m->name);
}

/* Reads past the end of a file truncated under the node: zeros, as the
 * synchronous path gives, and no hang.  A write past RLIMIT_FSIZE fails
 * with EFBIG and a message naming the file. */
static void test_failures(const Mode *m, BhNode *bs, const char *img)
{
    uint8_t *b = aligned_alloc0(64 * KiB);
    if (truncate(img, 20 * MiB + 512) < 0)
        diag("truncate: %s", strerror(errno));
    memset(b, 0xaa, 64 * KiB);
    int ret = sub1(bs, BH_OP_READ, 20 * MiB, b, 64 * KiB, 0, NULL);
    ok(ret == 0 && all_zero(b + 512, 64 * KiB - 512),
       "%s: a read across the end of a file truncated under the node "
       "completes, the part past the end reading zeros", m->name);

    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 24 * MiB;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    char *msg = NULL;
    ret = sub1(bs, BH_OP_WRITE, 28 * MiB, b, 64 * KiB, 0, &msg);
    setrlimit(RLIMIT_FSIZE, &old);
    ok(ret == -EFBIG && msg && strstr(msg, img),
       "%s: a write past RLIMIT_FSIZE completes with EFBIG and a message "
       "naming the file", m->name);
    if (msg)
        diag("%d: %s", ret, msg);
    g_free(msg);
    free(b);
}

/*
 * cache=none: unaligned writes that extend the file (they used to write
 * whole blocks and cut the file back) racing with aligned writes that
 * append further: no appended block may be lost.  The file is emptied
 * under the node, so that every write extends it.
 */
typedef struct Racer {
    BhNode *bs;
    bool aligned;
    int errors;
} Racer;

#define RACE_STEPS 1500

static void *racer_run(void *opaque)
{
    Racer *r = opaque;
    uint8_t *b = aligned_alloc0(4096);
    for (int k = 0; k < RACE_STEPS; k++) {
        uint64_t off = (uint64_t)k * 8192 + (r->aligned ? 4096 : 100);
        size_t len = r->aligned ? 4096 : 1000;
        fill_pattern(b, len, off, 3);
        if (bh_node_pwrite(r->bs, b, off, len, 0, NULL) < 0)
            r->errors++;
    }
    free(b);
    return NULL;
}

static void test_tail_race(void)
{
    const char *img = scratch("race.img");
    make_sparse(img, RACE_STEPS * 8192);
    BhNode *bs = open_ok(img, "format=file,cache=none");
    if (!bs) {
        skip(2, "cannot open with cache=none");
        return;
    }
    if (truncate(img, 0) < 0)
        diag("truncate: %s", strerror(errno));
    Racer r[2] = { { bs, false, 0 }, { bs, true, 0 } };
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, racer_run, &r[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    is_int(r[0].errors + r[1].errors, 0, "cache=none: 1500 unaligned "
           "writes extending the file race 1500 aligned appends");
    g_autofree uint8_t *disk = peek(img, 0, RACE_STEPS * 8192);
    uint8_t *want = g_malloc(4096);
    int lost = 0;
    for (int k = 0; k < RACE_STEPS && disk; k++) {
        uint64_t off = (uint64_t)k * 8192;
        fill_pattern(want, 1000, off + 100, 3);
        if (memcmp(disk + off + 100, want, 1000))
            lost++;
        fill_pattern(want, 4096, off + 4096, 3);
        if (memcmp(disk + off + 4096, want, 4096))
            lost++;
    }
    ok(disk && lost == 0, "cache=none: every write of both is in the file "
       "(none cut off by another's extension)");
    if (lost)
        diag("%d writes lost", lost);
    g_free(want);
    bh_node_unref(bs);
}

static bool refused_by_kernel(const BhError *err)
{
    return err && (bh_error_errno(err) == EPERM || bh_error_errno(err) == ENOSYS ||
                   bh_error_errno(err) == ENOTSUP || bh_error_errno(err) == EACCES);
}

#define TESTS_PER_MODE 21

static void test_mode(const char *aio, const char *cache)
{
    Mode m = { aio, cache, "" };
    g_snprintf(m.name, sizeof(m.name), "aio=%s cache=%s", aio, cache);
    g_autofree char *fname = g_strdup_printf("%s-%s.img", aio, cache);
    const char *img = scratch(fname);
    make_sparse(img, IMG_SIZE);
    g_autofree char *o = g_strdup_printf("format=file,aio=%s,cache=%s", aio,
                                         cache);
    BhError *err = NULL;
    BhNode *bs = open_node(img, o, &err);

    if (!bs && g_str_equal(aio, "native") && g_str_equal(cache, "writeback")) {
        ok(err && bh_error_errno(err) == EINVAL && strstr(bh_error_message(err), "cache=none"),
           "%s: refused, native AIO needs O_DIRECT", m.name);
        skip(TESTS_PER_MODE - 1, "%s: not a valid combination", m.name);
        bh_error_clear(&err);
        return;
    }
    if (!bs && refused_by_kernel(err)) {
        skip(TESTS_PER_MODE, "%s: %s", m.name, bh_error_message(err));
        bh_error_clear(&err);
        return;
    }
    ok(bs != NULL, "%s: open a 32 MiB file", m.name);
    if (!bs) {
        diag("%s", err ? bh_error_message(err) : "?");
        bh_error_clear(&err);
        skip(TESTS_PER_MODE - 1, "%s: open failed", m.name);
        return;
    }
    uint8_t *ref = g_malloc0(IMG_SIZE);
    test_random_rw(&m, bs, img, ref);
    test_fua_zero(&m, bs, img, ref);
    test_threads(&m, bs);
    test_failures(&m, bs, img);
    bh_node_unref(bs);
    g_free(ref);
}

int main(void)
{
    static const char *const aios[] = { "io_uring", "native", "threads" };
    static const char *const caches[] = { "none", "writeback" };

    plan(3 * 2 * TESTS_PER_MODE + 4);
    for (int a = 0; a < 3; a++)
        for (int c = 0; c < 2; c++)
            test_mode(aios[a], caches[c]);

    /* Without aio=, an O_DIRECT file still opens (io_uring, native or
     * threads, whichever the kernel grants) and a bogus mode is named. */
    const char *img = scratch("auto.img");
    make_sparse(img, MiB);
    BhNode *bs = open_ok(img, "format=file,cache=none");
    ok(bs && sub1(bs, BH_OP_FLUSH, 0, NULL, 0, 0, NULL) == 0,
       "cache=none without aio= opens and flushes");
    if (bs)
        bh_node_unref(bs);
    BhError *err = NULL;
    bs = open_node(img, "format=file,aio=bogus", &err);
    check_open_fails(bs, &err, EINVAL, "io_uring",
                     "aio=bogus is refused, listing the modes");
    test_tail_race();
    scratch_cleanup();
    return done();
}
