/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Drain (bh_node_drain_begin/end): with 16 writes held in flight by
 * holddrv, drain_begin returns only once they all completed, nothing
 * reaches the driver or completes inside the drained section, and what
 * arrived meanwhile completes after drain_end with the right data; a
 * format node's drain waits for its requests on the file child; drains
 * nest, and draining a file drains the format above it; truncate waits
 * for requests in flight; a qcow2 snapshot
 * taken while another thread writes leaves an image qemu-img check finds
 * clean.  Sleeps below only make the interesting interleaving likely;
 * no result depends on them.  argv: holddrv.so.
 */
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <blkhost/blkhost.h>

#include "open-spec.h"
#include "tap.h"

typedef struct {
    int received, completed, held, flushes, fua_writes, zeroes, discards;
    uint32_t seen_flags;
} HolddrvStats;

static HolddrvStats *hs;
static void (*holddrv_hold)(bool on);
static int (*holddrv_held)(void);
static void (*holddrv_release)(void);

#define BLK 4096

/* ---- callbacks counted ---- */

static gint completed;
static gint failed;

static void count_done(void *opaque, int ret, const BhError *err)
{
    if (ret < 0)
        g_atomic_int_inc(&failed);
    g_atomic_int_inc(&completed);
}

static uint8_t bufs[32][BLK];

static void fill(uint8_t *b, int i)
{
    memset(b, 0x40 + i, BLK);
    b[0] = (uint8_t)i;
}

/* An async write of block i (pattern i) to bs. */
static void submit_block(BhNode *bs, int i)
{
    struct iovec v = { bufs[i], BLK };
    fill(bufs[i], i);
    bh_node_submit(bh_request_new(bs, BH_OP_WRITE, (uint64_t)i * BLK, BLK,
                                  &v, 1, 0, count_done, NULL));
}

static void wait_for(gint *counter, int n)
{
    while (g_atomic_int_get(counter) < n)
        g_usleep(1000);
}

static bool block_ok(BhNode *bs, int i)
{
    uint8_t got[BLK], want[BLK];
    fill(want, i);
    return bh_node_pread(bs, got, (uint64_t)i * BLK, BLK, 0, NULL) == 0 &&
           memcmp(got, want, BLK) == 0;
}

static bool blocks_ok(BhNode *bs, int n)
{
    for (int i = 0; i < n; i++)
        if (!block_ok(bs, i))
            return false;
    return true;
}

/* ---- a thread that drains on request ---- */

typedef struct {
    BhNode *bs;
    GMutex lock;
    GCond cond;
    int state;              /* 1 drained, 2 may end, 3 ended */
    int completed_at_begin;
    int completed_at_end;
    int received_at_end;
} Drainer;

static void drainer_set(Drainer *d, int state)
{
    g_mutex_lock(&d->lock);
    d->state = state;
    g_cond_broadcast(&d->cond);
    g_mutex_unlock(&d->lock);
}

static void drainer_wait(Drainer *d, int state)
{
    g_mutex_lock(&d->lock);
    while (d->state < state)
        g_cond_wait(&d->cond, &d->lock);
    g_mutex_unlock(&d->lock);
}

static gpointer drainer_main(gpointer opaque)
{
    Drainer *d = opaque;
    bh_node_drain_begin(d->bs);
    d->completed_at_begin = g_atomic_int_get(&completed);
    drainer_set(d, 1);
    drainer_wait(d, 2);
    d->completed_at_end = g_atomic_int_get(&completed);
    d->received_at_end = g_atomic_int_get(&hs->received);
    bh_node_drain_end(d->bs);
    drainer_set(d, 3);
    return NULL;
}

/* A synchronous writer of one block, on its own thread. */
typedef struct {
    BhNode *bs;
    int block;
    gint done;
    int ret;
} SyncWriter;

static gpointer sync_writer_main(gpointer opaque)
{
    SyncWriter *s = opaque;
    fill(bufs[s->block], s->block);
    s->ret = bh_node_pwrite(s->bs, bufs[s->block],
                            (uint64_t)s->block * BLK, BLK, 0, NULL);
    g_atomic_int_set(&s->done, 1);
    return NULL;
}

static void test_sixteen_writers(void)
{
    BhNode *bs = open_spec("format=holddrv,size=1M");
    memset(hs, 0, sizeof *hs);
    g_atomic_int_set(&completed, 0);
    holddrv_hold(true);
    for (int i = 0; i < 16; i++)
        submit_block(bs, i);
    while (holddrv_held() < 16)
        g_usleep(1000);
    ok(g_atomic_int_get(&completed) == 0, "16 writes are in flight, held "
       "by the driver");

    Drainer d = { .bs = bs };
    g_mutex_init(&d.lock);
    g_cond_init(&d.cond);
    GThread *t = g_thread_new("drainer", drainer_main, &d);
    g_usleep(20000);        /* let drain_begin start waiting */
    holddrv_release();      /* completes the 16 here */
    drainer_wait(&d, 1);
    is_int(d.completed_at_begin, 16, "drain_begin returned only once all "
           "16 writes had completed");

    /* Inside the drained section: 4 async writes and a sync writer from
     * other threads than the drainer. */
    for (int i = 16; i < 20; i++)
        submit_block(bs, i);
    SyncWriter sw = { .bs = bs, .block = 20 };
    GThread *st = g_thread_new("sync-writer", sync_writer_main, &sw);
    g_usleep(20000);        /* give them a chance to slip through */
    ok(g_atomic_int_get(&hs->received) == 16 &&
       g_atomic_int_get(&completed) == 16 && !g_atomic_int_get(&sw.done),
       "inside the drained section no new request reaches the driver or "
       "completes (received %d, completed %d)",
       g_atomic_int_get(&hs->received), g_atomic_int_get(&completed));
    drainer_set(&d, 2);
    drainer_wait(&d, 3);
    ok(d.completed_at_end == 16 && d.received_at_end == 16,
       "nothing completed between drain_begin and drain_end");
    wait_for(&completed, 20);
    g_thread_join(st);
    g_thread_join(t);
    ok(g_atomic_int_get(&completed) == 20 && sw.ret == 0 &&
       g_atomic_int_get(&failed) == 0, "after drain_end the queued async "
       "writes and the blocked sync write complete, without error");
    ok(blocks_ok(bs, 21), "all 21 blocks hold what was written");
    g_mutex_clear(&d.lock);
    g_cond_clear(&d.cond);
    bh_node_unref(bs);
}

/* bh_node_truncate on its own thread: when did it return? */
typedef struct {
    BhNode *bs;
    int completed_at_return;
} Truncater;

static gpointer truncater_main(gpointer opaque)
{
    Truncater *t = opaque;
    bh_node_truncate(t->bs, 2 * 1024 * 1024, NULL);
    t->completed_at_return = g_atomic_int_get(&completed);
    return NULL;
}

static void test_format_and_nesting(void)
{
    BhNode *file = open_spec("format=holddrv,size=1M");
    g_autoptr(BhOpts) o = bh_opts_parse("readonly=off", NULL, NULL);
    BhError *err = NULL;
    BhNode *fmt = bh_node_open_over(file, "raw", o, &err);
    if (!fmt) {
        printf("Bail out! raw over holddrv: %s\n", bh_error_message(err));
        exit(1);
    }
    memset(hs, 0, sizeof *hs);
    g_atomic_int_set(&completed, 0);
    holddrv_hold(true);
    /* raw is synchronous: these run on the core's pool, and each waits
     * for its write on the file child, held there. */
    for (int i = 0; i < 4; i++)
        submit_block(fmt, i);
    while (holddrv_held() < 4)
        g_usleep(1000);
    Drainer d = { .bs = fmt };
    g_mutex_init(&d.lock);
    g_cond_init(&d.cond);
    GThread *t = g_thread_new("drainer", drainer_main, &d);
    g_usleep(20000);
    holddrv_release();
    drainer_wait(&d, 1);
    is_int(d.completed_at_begin, 4, "drain of a format node waited for its "
           "requests in flight on the file child");
    drainer_set(&d, 2);
    g_thread_join(t);

    /* Nesting, on this thread; another thread submits. */
    bh_node_drain_begin(fmt);
    bh_node_drain_begin(fmt);
    submit_block(fmt, 5);   /* ours: the drainer's own requests pass */
    wait_for(&completed, 5);
    ok(g_atomic_int_get(&completed) == 5, "the draining thread's own "
       "request passes the drained node");
    SyncWriter sw = { .bs = fmt, .block = 6 };
    GThread *st = g_thread_new("sync-writer", sync_writer_main, &sw);
    bh_node_drain_end(fmt);
    g_usleep(20000);
    ok(!g_atomic_int_get(&sw.done), "after one of two nested drain_end "
       "another thread's write still waits");
    bh_node_drain_end(fmt);
    g_thread_join(st);
    ok(sw.ret == 0 && g_atomic_int_get(&sw.done), "the second drain_end "
       "lets it through");

    /* Draining the file drains the format above it. */
    bh_node_drain_begin(file);
    sw = (SyncWriter){ .bs = fmt, .block = 7 };
    st = g_thread_new("sync-writer", sync_writer_main, &sw);
    g_usleep(20000);
    ok(!g_atomic_int_get(&sw.done) && g_atomic_int_get(&hs->received) == 6,
       "draining the file child holds back writes to the format above it");
    bh_node_drain_end(file);
    g_thread_join(st);
    ok(sw.ret == 0 && blocks_ok(fmt, 4) && block_ok(fmt, 5) &&
       block_ok(fmt, 6) && block_ok(fmt, 7), "after drain_end of the file "
       "the write completes; every block written reads back");

    /* Truncate runs drained: it waits for writes in flight below it. */
    int before = g_atomic_int_get(&completed);
    holddrv_hold(true);
    submit_block(fmt, 8);
    submit_block(fmt, 9);
    while (holddrv_held() < 2)
        g_usleep(1000);
    Truncater tr = { .bs = fmt };
    GThread *tt = g_thread_new("truncater", truncater_main, &tr);
    g_usleep(20000);
    holddrv_release();
    g_thread_join(tt);
    is_int(tr.completed_at_return, before + 2, "bh_node_truncate returned "
           "only after the writes in flight had completed");
    g_mutex_clear(&d.lock);
    g_cond_clear(&d.cond);
    bh_node_unref(fmt);
    bh_node_unref(file);
}

/* ---- a snapshot while another thread writes ---- */

typedef struct {
    BhNode *bs;
    gint stop;
    int writes;
    int errors;
    char *msg;
} LoopWriter;

static gpointer loop_writer_main(gpointer opaque)
{
    LoopWriter *l = opaque;
    uint8_t b[65536];
    uint64_t x = 12345;
    while (!g_atomic_int_get(&l->stop)) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t off = (x >> 20) % (16 * 1024 * 1024 / 512) * 512;
        size_t len = 512 * (1 + (x >> 50) % 128);
        if (off + len > 16 * 1024 * 1024)
            off = 16 * 1024 * 1024 - len;
        memset(b, (int)(x >> 40), len);
        BhError *err = NULL;
        if (bh_node_pwrite(l->bs, b, off, len, 0, &err) < 0) {
            if (!l->msg)
                l->msg = g_strdup(err ? bh_error_message(err) : "?");
            l->errors++;
        }
        bh_error_clear(&err);
        l->writes++;
    }
    return NULL;
}

static void test_snapshot_under_writes(void)
{
    g_autofree char *qemu_img = g_find_program_in_path("qemu-img");
    g_autofree char *dir = g_dir_make_tmp("drain-XXXXXX", NULL);
    g_autofree char *img = g_build_filename(dir, "disk.qcow2", NULL);
    BhError *err = NULL;
    g_autoptr(BhOpts) co = bh_opts_parse("size=16M", NULL, NULL);

    if (!bh_create(img, "qcow2", co, &err)) {
        ok(0, "create a qcow2 image: %s", bh_error_message(err));
        bh_error_clear(&err);
        ok(0, "snapshots under writes (no image)");
        ok(0, "qemu-img check (no image)");
        return;
    }
    g_autoptr(BhOpts) oo = bh_opts_parse("format=qcow2", NULL, NULL);
    BhNode *bs = bh_node_open(img, oo, &err);
    LoopWriter l = { .bs = bs };
    GThread *t = g_thread_new("loop-writer", loop_writer_main, &l);
    int r = 0;
    for (int i = 0; i < 6 && r == 0; i++) {
        g_usleep(5000);
        BhSnapshotInfo *sn = bh_snapshot_info_new();
        sn->name = g_strdup_printf("s%d", i);
        r = bh_node_snapshot_create(bs, sn, &err);
        bh_snapshot_info_free(sn);
        if (r == 0 && i == 3)
            r = bh_node_snapshot_delete(bs, "s1", &err);
    }
    g_usleep(5000);
    g_atomic_int_set(&l.stop, 1);
    g_thread_join(t);
    ok(r == 0, "6 snapshots taken (and one deleted) on a qcow2 node while "
       "another thread writes: %s", err ? bh_error_message(err) : "no error");
    bh_error_clear(&err);
    ok(l.errors == 0 && l.writes > 0, "the writer saw no error in %d "
       "writes%s%s", l.writes, l.msg ? ": " : "", l.msg ? l.msg : "");
    bh_node_unref(bs);
    if (!qemu_img) {
        printf("ok %d - # SKIP qemu-img not installed\n", ++tap_count);
    } else {
        g_autofree char *out = NULL;
        int status = -1;
        char *argv[] = { qemu_img, "check", "-f", "qcow2", img, NULL };
        g_spawn_sync(NULL, argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                     NULL, &out, NULL, &status, NULL);
        ok(status == 0, "qemu-img check finds the image clean afterwards");
        if (status != 0 && out)
            diag("%s", out);
    }
    unlink(img);
    rmdir(dir);
    g_free(l.msg);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("1..0 # SKIP needs holddrv\n");
        return 0;
    }
    BhError *err = NULL;
    const BhPluginRecord *rec = bh_plugin_load(argv[1], &err);
    void *h = rec && !rec->error ? dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD)
                                 : NULL;
    hs = h ? dlsym(h, "holddrv_stats") : NULL;
    holddrv_hold = h ? (void (*)(bool))dlsym(h, "holddrv_hold") : NULL;
    holddrv_held = h ? (int (*)(void))dlsym(h, "holddrv_held") : NULL;
    holddrv_release = h ? (void (*)(void))dlsym(h, "holddrv_release") : NULL;
    if (!hs || !holddrv_hold || !holddrv_held || !holddrv_release) {
        printf("Bail out! cannot load holddrv from %s\n", argv[1]);
        return 1;
    }
    plan(16);
    test_sixteen_writers();
    test_format_and_nesting();
    test_snapshot_under_writes();
    return done();
}
